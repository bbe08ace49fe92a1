"""Grading masked faces with the detector: which faces (a seeded sample), pass or fail per face, and
rates with Wilson intervals per mask type, colour and |yaw| bin."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from maskbench.io.labels import MISSED_SOURCE, YAW_BINS_DEG, yaw_bin  # noqa: F401 (bins re-exported)
from maskbench.judge.detector import Face, detect, judged_face
from maskbench.types import HeadPose, Sample

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
    #: |yaw| read from the image (3DDFA_V2 on the judged face's box): set by :func:`grade`
    estimated_abs_yaw_deg: float | None = None


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
    """What is graded in a folder: its labels.csv ``rows`` (box, mask type, |yaw|; a face the mask placement's
    detector missed is unmasked and not graded: the manifest lists it), or every image."""
    if rows:
        rows = [r for r in rows if r.get("landmark_source") != MISSED_SOURCE]
        return [Item(r["id"], str(folder / r["image"]),
                     tuple(float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")),  # type: ignore[arg-type]
                     r.get("mask_type", ""), abs(float(r["yaw_deg"])), r.get("mask_color", ""), r.get("source_id", ""))
                for r in sorted(rows, key=lambda r: r["id"])]
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and "occlusion" not in p.parts and not p.name.startswith("."))
    return [Item(p.relative_to(folder).as_posix(), str(p)) for p in paths]


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
                          ("by_abs_yaw_deg", lambda it: None if it.abs_yaw_deg is None else yaw_bin(it.abs_yaw_deg)),
                          ("by_estimated_abs_yaw_deg", lambda it: None if it.estimated_abs_yaw_deg is None
                           else yaw_bin(it.estimated_abs_yaw_deg)),
                          ("by_mask_type_and_abs_yaw_deg", lambda it: None if not it.mask_type or it.abs_yaw_deg is None
                           else f"{it.mask_type} {yaw_bin(it.abs_yaw_deg)}"),
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
        for item, image, faces in zip(batch, images, found):
            face = judged_face(faces, item.box_px)
            judged.append((estimated_yaw(item, image, face), face))
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


def estimated_yaw(item: Item, image: np.ndarray, face: Face | None) -> Item:
    """``item`` with its |yaw| as the image shows it: 3DDFA_V2 (:func:`maskbench.synthesis.detected.box_rotation`)
    on the judged face's box, else on the item's box; unchanged when it has neither. The same estimate bins
    real masked photos (:data:`REAL_MASKS`), so synthetic and real masks are compared on one yaw scale."""
    from maskbench.synthesis.detected import box_rotation  # torch: loaded when a face is judged

    box = face.box_px if face is not None else item.box_px
    if box is None or not (box[2] - box[0] > 4 and box[3] - box[1] > 4):
        return item
    return replace(item, estimated_abs_yaw_deg=round(abs(HeadPose(box_rotation(image, tuple(box))).yaw_deg), 2))


#: ``maskbench judge`` names the three mask colours that read least as masks among those worn by at
#: least this many judged faces (fewer say little: 3 passes of 5 is a 95 % interval of 23-88 %).
COLOUR_MIN_FACES = 10


def lowest_colours(summary: Mapping, k: int = 3, min_faces: int = COLOUR_MIN_FACES) -> list[tuple[float, str, int]]:
    """(pass rate, "type pattern/colour", faces) of the ``k`` mask colours that read least as masks
    among those worn by at least ``min_faces`` judged faces (a palette the detector does not read
    as a mask stands out here; every colour is in realism.json)."""
    groups = summary["by_mask_type_and_color"].items()
    return sorted((st["pass_rate"], group, st["n"]) for group, st in groups if st["n"] >= min_faces)[:k]


def sources_for(sources_dir: Path, items: Sequence[Item], folder: Path) -> dict[str, Source]:
    """Source id -> :class:`Source` (image path and face box) of the originals in ``sources_dir`` that
    ``items`` were made from; ValueError when ``folder`` has no source ids or none is there."""
    from maskbench.datasets.registry import open_reader

    wanted = {it.source_id for it in items if it.source_id}
    if not wanted:
        raise ValueError(f"--sources: {folder} has no labels.csv with source ids (is it a maskbench split?)")
    reader = open_reader(sources_dir)
    out = {}
    for key in sorted(wanted & set(reader.keys)):  # every format's keys are its sample ids
        sample = reader.read(key)
        if sample is not None and sample.image_path is not None:
            out[sample.id] = Source.of(sample)
    if not out:
        raise ValueError(f"--sources: none of the {len(wanted)} source ids of {folder} is a sample of {sources_dir}")
    return out
