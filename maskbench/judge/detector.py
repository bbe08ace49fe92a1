"""The judge's detector: AIZOO's real-photo face-mask detector, in plain numpy.

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
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from maskbench.geometry import best_match, greedy_nms

INPUT_PX = 260


FEATURE_MAPS = (33, 17, 9, 5, 3)


ANCHOR_SIZES = ((0.04, 0.056), (0.08, 0.11), (0.16, 0.22), (0.32, 0.45), (0.64, 0.72))


ANCHOR_RATIOS = (1.0, 0.62, 0.42)


VARIANCES = (0.1, 0.1, 0.2, 0.2)


SCORE_THRESHOLD = 0.5


NMS_IOU = 0.4
#: A detection is the labelled face when it overlaps the label's box by this IoU (else the largest
#: face is judged): chosen, not fitted; a masked face's detected box is often shifted down the face,
#: so the bar is lower than the evaluator's 0.4.
JUDGE_MATCH_IOU = 0.3


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
    candidates = np.flatnonzero(score > SCORE_THRESHOLD)
    kept = [int(candidates[k]) for k in greedy_nms(boxes[candidates], score[candidates], NMS_IOU)]  # all classes
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
    """The face an image is judged by: the detection overlapping ``box_px`` best (IoU >=
    :data:`JUDGE_MATCH_IOU`), else the largest; None when there is none."""
    if not faces:
        return None
    k = None if box_px is None else best_match(box_px, [f.box_px for f in faces], JUDGE_MATCH_IOU)
    if k is not None:
        return faces[k]
    return max(faces, key=lambda f: (f.box_px[2] - f.box_px[0]) * (f.box_px[3] - f.box_px[1]))
