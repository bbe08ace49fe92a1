"""A real-photo face-mask detector as the judge of synthetic masks (``maskbench judge``, and the
``realism.json`` that ``maskbench synthesize`` writes).

The detector is AIZOO's FaceMaskDetection model (MIT, ``LICENSE-aizoo`` beside this file), trained by
its authors on real photos (WIDER FACE + MAFA): a small SSD of 3x3 convolutions and 2x2 max-pools
with location and class heads on five feature maps. Its weights ship here as plain arrays
(``aizoo_mask_detector.npz``, key ``"<layer>/<0 weights | 1 bias>"``); the network below is written
from the published architecture in plain numpy: each 3x3 convolution is one matrix product of the
image's 3x3 patches (im2col, numpy's BLAS), and Caffe's pooling rounds up. Not torch: importing
torch alone took about 1.2 s, more than judging the default sample of 1,005 faces, and the matrix
products run as fast as torch's convolutions here (about 27 ms per image on 2 cores; the bias rides
in the product as a last row of the weights, and pooling takes the larger of each row pair, then of
each column pair: a max over two strided axes at once was 2.7x slower).

Input: the whole image resized (bilinear, no letterbox) to 260x260 RGB in [0, 1]. Outputs per
anchor: SSD box deltas (variances 0.1, 0.1, 0.2, 0.2) and two independent sigmoids, p(mask) and
p(no mask). A face is an anchor whose larger class probability exceeds 0.5, after NMS at IoU 0.4;
it "passes" (reads as a masked face) when p(mask) > p(no mask). The judged face of an image is the
detection overlapping its labelled box best, else the largest one; an image without a detection
fails with p(mask) 0.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from maskbench.geometry import box_iou
from maskbench.types import Sample

INPUT_PX = 260
FEATURE_MAPS = (33, 17, 9, 5, 3)
ANCHOR_SIZES = ((0.04, 0.056), (0.08, 0.11), (0.16, 0.22), (0.32, 0.45), (0.64, 0.72))
ANCHOR_RATIOS = (1.0, 0.62, 0.42)
VARIANCES = (0.1, 0.1, 0.2, 0.2)
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.4
#: Backbone: (layer, pad) of each 3x3 convolution; a 2x2 max-pool follows the first six.
BACKBONE = (("conv2d_0", 1), ("conv2d_1", 1), ("conv2d_2", 1), ("conv2d_3", 1), ("conv2d_4", 1), ("conv2d_5", 1),
            ("conv2d_6", 1), ("conv2d_7", 0))
#: Backbone outputs the five heads read (feature maps 33, 17, 9, 5, 3).
HEAD_INPUTS = ("conv2d_3", "conv2d_4", "conv2d_5", "conv2d_6", "conv2d_7")


@functools.lru_cache(maxsize=1)
def _weights() -> dict[str, np.ndarray]:
    """Each convolution as one (9 * in + 1, out) matrix: the im2col weights in (row, column,
    channel) order, then the bias; the two heads' first convolutions on one feature map are one
    matrix (location columns first).
    Subnormal weights (27 in the first layer, below 1.2e-38) are flushed to zero: they change no
    output and made the first layer's product several times slower."""
    ref = importlib.resources.files("maskbench.judge") / "aizoo_mask_detector.npz"
    with importlib.resources.as_file(ref) as path, np.load(path) as data:
        raw = {k: np.asarray(data[k], dtype=np.float32) for k in data.files}
    for a in raw.values():
        a[np.abs(a) < np.finfo(np.float32).tiny] = 0.0
    out = {}
    for key in raw:
        if key.endswith("/0"):
            name = key[:-2]
            w = raw[key]
            out[name] = np.vstack([w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]), raw[f"{name}/1"].reshape(1, -1)])
    for k in range(len(HEAD_INPUTS)):
        out[f"insert_{k}"] = np.hstack([out.pop(f"loc_{k}_insert_conv2d"), out.pop(f"cls_{k}_insert_conv2d")])
    return out


@functools.lru_cache(maxsize=1)
def anchors() -> np.ndarray:
    """(5972, 4) anchors (cx, cy, w, h), normalised: per cell each size at ratio 1, then the first
    size at the other ratios; rows outer, columns inner, maps from fine to coarse."""
    out = []
    for fm, sizes in zip(FEATURE_MAPS, ANCHOR_SIZES):
        shapes = [(s, s) for s in sizes] + [(sizes[0] * np.sqrt(r), sizes[0] / np.sqrt(r)) for r in ANCHOR_RATIOS[1:]]
        for i in range(fm):
            for j in range(fm):
                out += [((j + 0.5) / fm, (i + 0.5) / fm, w, h) for w, h in shapes]
    return np.array(out, dtype=np.float64)


def _conv(x: np.ndarray, name: str, pad: int = 1, relu: bool = True) -> np.ndarray:
    """3x3 convolution (stride 1) of (N, H, W, C) float32 maps as one matrix product (im2col)."""
    w = _weights()[name]
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    n, h, wd, c = x.shape
    cols = np.empty((n * (h - 2) * (wd - 2), 9 * c + 1), np.float32)  # the patches, then a 1 for the bias
    np.copyto(cols[:, :-1].reshape(n, h - 2, wd - 2, 3, 3, c),
              sliding_window_view(x, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3))
    cols[:, -1] = 1.0
    y = cols @ w
    if relu:
        np.maximum(y, 0.0, out=y)
    return y.reshape(n, h - 2, wd - 2, -1)


def _max_pool(x: np.ndarray) -> np.ndarray:
    """2x2 max-pool, stride 2, rounding up as Caffe does (an odd edge is pooled alone)."""
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
    rows = x.reshape(n, (h + 1) // 2, 2, w + w % 2, c)  # the larger of each row pair, then of each column pair
    pairs = np.maximum(rows[:, :, 0], rows[:, :, 1]).reshape(n, (h + 1) // 2, (w + 1) // 2, 2, c)
    return np.maximum(pairs[..., 0, :], pairs[..., 1, :])


def forward(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 260, 260, 3) float32 RGB in [0, 1] -> box deltas (N, 5972, 4) and class probabilities
    (N, 5972, 2), anchors in :func:`anchors` order."""
    feats = {}
    x = np.ascontiguousarray(batch, dtype=np.float32)
    for k, (name, pad) in enumerate(BACKBONE):
        x = _conv(x, name, pad)
        feats[name] = x
        if k < 6:
            x = _max_pool(x)
    locs, clss = [], []
    for k, name in enumerate(HEAD_INPUTS):
        inserted = _conv(feats[name], f"insert_{k}")
        half = inserted.shape[-1] // 2
        locs.append(_conv(inserted[..., :half], f"loc_{k}_conv", relu=False).reshape(len(x), -1, 4))
        logits = _conv(inserted[..., half:], f"cls_{k}_conv", relu=False).reshape(len(x), -1, 2)
        clss.append(1.0 / (1.0 + np.exp(-logits)))
    return np.concatenate(locs, 1), np.concatenate(clss, 1)


@dataclass(frozen=True)
class Face:
    """One detection: box (x_min, y_min, x_max, y_max) in image pixels and its two probabilities."""

    box_px: tuple[float, float, float, float]
    p_mask: float
    p_no_mask: float

    @property
    def passes(self) -> bool:
        return self.p_mask > self.p_no_mask


def _decode(loc: np.ndarray, probs: np.ndarray, width: int, height: int) -> list[Face]:
    a = anchors()
    cx = loc[:, 0] * VARIANCES[0] * a[:, 2] + a[:, 0]
    cy = loc[:, 1] * VARIANCES[1] * a[:, 3] + a[:, 1]
    w = np.exp(loc[:, 2] * VARIANCES[2]) * a[:, 2]
    h = np.exp(loc[:, 3] * VARIANCES[3]) * a[:, 3]
    boxes = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * [width, height, width, height]
    score = probs.max(axis=1)
    order = np.argsort(-score, kind="stable")
    order = order[score[order] > SCORE_THRESHOLD]
    kept: list[int] = []
    for i in order:  # greedy NMS over all classes together
        if not kept or (box_iou(boxes[i], boxes[kept]) <= NMS_IOU).all():
            kept.append(i)
    return [Face(tuple(float(v) for v in boxes[i]), float(probs[i, 0]), float(probs[i, 1])) for i in kept]


def _faces_in(image_bgr: np.ndarray) -> list[Face]:
    x = cv2.cvtColor(cv2.resize(image_bgr, (INPUT_PX, INPUT_PX), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    loc, probs = forward(x[None].astype(np.float32) / np.float32(255.0))
    return _decode(loc[0].astype(np.float64), probs[0].astype(np.float64), image_bgr.shape[1], image_bgr.shape[0])


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def detect(images_bgr: Sequence[np.ndarray]) -> list[list[Face]]:
    """The faces the detector finds in each BGR uint8 image.

    The images are judged in parallel, one per core, each on one BLAS thread: the im2col copies and
    the pooling run on one thread whatever BLAS does, so this took 0.65 s for 32 dev-half photos on
    2 cores against 1.15 s for one image at a time on two BLAS threads (the same numbers)."""
    images = list(images_bgr)
    threads = max(1, min(_cores(), len(images)))
    if threads == 1:
        return [_faces_in(im) for im in images]
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        return list(pool.map(_faces_in, images))


def judged_face(faces: Sequence[Face], box_px: Sequence[float] | None = None) -> Face | None:
    """The face an image is judged by: the detection overlapping ``box_px`` best (IoU >= 0.3), else
    the largest; None when there is none."""
    if not faces:
        return None
    if box_px is not None:
        ious = box_iou(box_px, np.array([f.box_px for f in faces]))
        if ious.max() >= 0.3:
            return faces[int(ious.argmax())]
    return max(faces, key=lambda f: (f.box_px[2] - f.box_px[0]) * (f.box_px[3] - f.box_px[1]))


# ------------------------------------------------------------------------------------------------
# Grading a folder: realism.json and a contact sheet of the lowest-scoring faces
# ------------------------------------------------------------------------------------------------
REALISM_JSON = "realism.json"
CONTACT_SHEET = "realism_lowest.png"
#: The kind a realism report's manifest declares, and the files :func:`write_realism` writes.
REPORT_KIND = "realism report"
REPORT_FILES = (REALISM_JSON, CONTACT_SHEET)
YAW_BINS_DEG = (0.0, 30.0, 60.0, 181.0)
#: Faces judged by default (``sample="auto"``): a seeded sample of :data:`SAMPLE_FRACTION` of the
#: faces, at least :data:`SAMPLE_MIN` and at most :data:`SAMPLE_MAX`. The detector runs at about 45
#: images/s on 2 CPU cores (1,005 photos in 22 s), several times slower than masking: every face
#: would more than double ``synthesize``'s time. The pass rate's 95 % interval says what a sample can tell.
SAMPLE_FRACTION = 0.03
SAMPLE_MIN = 32
SAMPLE_MAX = 200
SAMPLE_RULE = f"{SAMPLE_FRACTION:.0%} of the faces, at least {SAMPLE_MIN}, at most {SAMPLE_MAX}"
AUTO = "auto"


def default_sample(n_faces: int) -> int:
    """How many of ``n_faces`` are judged by default."""
    return int(min(SAMPLE_MAX, max(SAMPLE_MIN, math.ceil(SAMPLE_FRACTION * n_faces))))


def wilson_interval(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a pass rate of ``passed`` out of ``n`` (nan, nan for none)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Item:
    """An image to judge: id, file, labelled face box (or None), mask type, mask colour (or
    ``pattern/palette``), |yaw| and the id of the original it was made from, when known."""

    id: str
    path: str
    box_px: tuple[float, float, float, float] | None = None
    mask_type: str = ""
    abs_yaw_deg: float | None = None
    mask_color: str = ""
    source_id: str = ""


@dataclass(frozen=True)
class Source:
    """The unmasked original of judged images: its file and face box (or None: the largest face)."""

    path: str
    box_px: tuple[float, float, float, float] | None = None

    @classmethod
    def of(cls, sample: Sample) -> Source:
        """A dataset sample as the original of judged images: its image file and labelled box."""
        box = sample.bbox
        return cls(str(sample.image_path), (box.x_min, box.y_min, box.x_max, box.y_max))


def items_of(folder: Path, rows: Sequence[dict[str, str]] | None) -> list[Item]:
    """What is graded in a folder: its labels.csv ``rows`` (box, mask type, |yaw|), or every image."""
    if rows:
        return [Item(r["id"], str(folder / r["image"]),
                     tuple(float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")),  # type: ignore[arg-type]
                     r.get("mask_type", ""), abs(float(r["yaw_deg"])), r.get("mask_color", ""), r.get("source_id", ""))
                for r in sorted(rows, key=lambda r: r["id"])]
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and "occlusion" not in p.parts and not p.name.startswith("."))
    return [Item(p.relative_to(folder).as_posix(), str(p)) for p in paths]


def _bin(abs_yaw: float) -> str:
    for lo, hi in zip(YAW_BINS_DEG[:-1], YAW_BINS_DEG[1:]):
        if lo <= abs_yaw < hi:
            return f"{lo:g}-{min(hi, 180):g}"
    return "other"


def read_as_masked(face: Face | None) -> bool:
    """The verdict on one judged image: its face found and p(mask) > p(no mask) (no face found: a fail)."""
    return face is not None and face.passes


def _stats(scores: list[tuple[Item, Face | None]]) -> dict[str, float | int | list[float]]:
    p = [0.0 if f is None else f.p_mask for _, f in scores]
    passed = [read_as_masked(f) for _, f in scores]
    return {"n": len(scores), "pass_rate": float(np.mean(passed)) if scores else float("nan"),
            "pass_rate_ci95": [round(v, 4) for v in wilson_interval(sum(passed), len(scores))],
            "mean_p_mask": float(np.mean(p)) if scores else float("nan")}


def _breakdowns(judged: Sequence[tuple[Item, Face | None]]) -> dict[str, dict]:
    """:func:`_stats` per mask type, per |yaw| bin, per both, and per mask type and colour."""
    out: dict[str, dict] = {}
    for key, group_of in (("by_mask_type", lambda it: it.mask_type or None),
                          ("by_abs_yaw_deg", lambda it: None if it.abs_yaw_deg is None else _bin(it.abs_yaw_deg)),
                          ("by_mask_type_and_abs_yaw_deg", lambda it: None if not it.mask_type or it.abs_yaw_deg is None
                           else f"{it.mask_type} {_bin(it.abs_yaw_deg)}"),
                          ("by_mask_type_and_color", lambda it: None if not it.mask_type or not it.mask_color
                           else f"{it.mask_type} {it.mask_color}")):
        groups: dict[str, list[tuple[Item, Face | None]]] = {}
        for it, f in judged:
            g = group_of(it)
            if g is not None:
                groups.setdefault(g, []).append((it, f))
        out[key] = {g: _stats(v) for g, v in sorted(groups.items())}
    return out


def grade(items: Sequence[Item], sample: int | str | None = AUTO, seed: int = 0, progress: bool = False,
          sources: Mapping[str, Source] | None = None) -> tuple[dict, list[tuple[Item, Face | None]]]:
    """Judge ``items`` (None: all; a count; ``"auto"``: :func:`default_sample` of them, a seeded
    sample): the realism summary (pass rate with its 95 % interval and mean p(mask), overall, per
    mask type, per |yaw| bin, both, and per mask type and colour: a palette the detector does not read
    as a mask shows there) and every judged (item, face), lowest p(mask) first. An unreadable
    image is counted as such, not judged.

    ``sources`` (source id -> the unmasked original's image path and face box): each judged face's
    original is judged too (on its own box: a rotated copy's box is not the original's; a rotated
    split's control is its unrotated original), and the summary gains ``sources``: how many
    originals were judged, how many faces the detector finds unmasked, how many unmasked faces it
    reads as masked (its false alarms), and the pass rates counted only on the faces it finds
    unmasked (``where_source_found``: a fail there is the mask's, not the detector's reach)."""
    from maskbench.errors import DatasetError
    from maskbench.io.atomic import read_image
    from maskbench.progress import progress_bar

    chosen = list(items)
    sample_asked = "all" if sample is None else sample
    if sample == AUTO:
        sample = default_sample(len(chosen))
    if sample is not None and len(chosen) > int(sample):
        keep = np.sort(np.random.default_rng(seed).choice(len(chosen), size=sample, replace=False))
        chosen = [chosen[k] for k in keep]
    judged: list[tuple[Item, Face | None]] = []
    originals: dict[str, Face | None] = {}  # item id -> the face judged on its unmasked original
    unreadable: list[str] = []
    step = 16

    def readable(paths: list[tuple[Item, str]]) -> tuple[list[Item], list[np.ndarray]]:  # unreadable ones listed
        kept, images = [], []
        for item, path in paths:
            try:
                images.append(read_image(path))  # type: ignore[arg-type]
                kept.append(item)
            except DatasetError as exc:
                unreadable.append(str(exc))
        return kept, images

    source_faces: dict[str, Face | None] = {}  # source id -> its original's face: judged once per original
    for start in progress_bar(range(0, len(chosen), step), desc="judge", unit="batch", disable=not progress):
        batch, images = readable([(item, item.path) for item in chosen[start : start + step]])
        first: dict[str, Item] = {}  # an original not judged yet, by its first item here (rotated splits share one)
        for item in batch:
            if sources is not None and item.source_id in sources and item.source_id not in source_faces:
                first.setdefault(item.source_id, item)
        with_source, source_images = readable([(item, sources[sid].path) for sid, item in first.items()])  # type: ignore[index]
        found = detect(images + source_images)
        for item, faces in zip(batch, found):
            judged.append((item, judged_face(faces, item.box_px)))
        for item, faces in zip(with_source, found[len(batch) :]):
            source_faces[item.source_id] = judged_face(faces, sources[item.source_id].box_px)  # type: ignore[index]
        originals.update((item.id, source_faces[item.source_id]) for item in batch if item.source_id in source_faces)
    judged.sort(key=lambda t: (0.0 if t[1] is None else t[1].p_mask, t[0].id))
    summary: dict = {
        "detector": "AIZOO FaceMaskDetection (MIT), real photos (WIDER FACE + MAFA); pass = p(mask) > p(no mask) "
                    "of the face on the labelled box (else the largest; no face detected = fail)",
        "judged": len(judged), "of": len(items), "sample_seed": seed if len(chosen) < len(items) else None,
        "sample_rule": f"auto: {SAMPLE_RULE}" if sample_asked == AUTO else str(sample_asked),
        "unreadable": unreadable, "overall": _stats(judged), **_breakdowns(judged),
        "no_face_detected": sum(f is None for _, f in judged),
        "lowest": [{"id": it.id, "p_mask": 0.0 if f is None else round(f.p_mask, 4)} for it, f in judged[:16]],
    }
    if sources is not None:
        where_found = [(it, f) for it, f in judged if originals.get(it.id) is not None]
        summary["sources"] = {
            "judged": len(originals), "face_found": len(where_found),
            "read_as_masked": sum(read_as_masked(f) for f in originals.values()),
            "where_source_found": {"overall": _stats(where_found), **_breakdowns(where_found)},
        }
    return summary, judged


def contact_sheet(judged: Sequence[tuple[Item, Face | None]], cell_px: int = 160, columns: int = 4) -> np.ndarray:
    """A BGR image of the (up to) 16 lowest-scoring faces: each crop (its box + 25 %, or the whole
    image) with its p(mask) and id written under it."""
    from maskbench.io.atomic import read_image

    cells = []
    for item, face in list(judged)[:16]:
        image = read_image(item.path)  # type: ignore[arg-type]
        box = item.box_px or (face.box_px if face is not None else None)
        if box is not None:
            x0, y0, x1, y1 = box
            m = 0.25 * max(x1 - x0, y1 - y0)
            h, w = image.shape[:2]
            xa, ya = int(max(0, x0 - m)), int(max(0, y0 - m))
            xb, yb = int(min(w, x1 + m)), int(min(h, y1 + m))
            if xb > xa and yb > ya:
                image = image[ya:yb, xa:xb]
        cell = np.full((cell_px + 28, cell_px, 3), 255, np.uint8)
        s = cell_px / max(image.shape[:2])
        small = cv2.resize(image, (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        cell[: small.shape[0], : small.shape[1]] = small
        p = 0.0 if face is None else face.p_mask
        text = f"{p:.2f} {item.id}"[:24]
        cv2.putText(cell, text, (3, cell_px + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        cells.append(cell)
    if not cells:
        return np.full((cell_px + 28, cell_px, 3), 255, np.uint8)
    while len(cells) % columns:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.hstack(cells[k : k + columns]) for k in range(0, len(cells), columns)]
    return np.vstack(rows)


def summary_line(summary: dict) -> str:
    o = summary["overall"]
    lo, hi = o["pass_rate_ci95"]
    line = (f"realism (AIZOO real-photo mask detector, {summary['judged']} of {summary['of']} faces): "
            f"{o['pass_rate']:.1%} read as masked (95 % interval {lo:.1%}-{hi:.1%}), mean p(mask) "
            f"{o['mean_p_mask']:.3f}")
    src = summary.get("sources")
    if src:
        line += (f"; unmasked originals: {src['face_found']} of {src['judged']} faces found, "
                 f"{src['read_as_masked']} read as masked; on the faces found unmasked "
                 f"{src['where_source_found']['overall']['pass_rate']:.1%} read as masked")
    return line


def write_realism(out_dir: Path, items: Sequence[Item], sample: int | str | None = AUTO, seed: int = 0,
                  progress: bool = False, sources: Mapping[str, Source] | None = None) -> dict:
    """Grade ``items`` (:func:`grade`) and write ``realism.json`` and ``realism_lowest.png`` into
    ``out_dir`` (atomically); return the summary."""
    import json

    from maskbench.io.atomic import atomic_write_bytes, atomic_write_text, encode_image

    summary, judged = grade(items, sample=sample, seed=seed, progress=progress, sources=sources)
    atomic_write_text(out_dir / REALISM_JSON, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    atomic_write_bytes(out_dir / CONTACT_SHEET, encode_image(contact_sheet(judged), ".png"))
    return summary
