"""The ``detected`` landmark source: 68 landmarks from what two published networks see in the pixels.

1. RetinaFace MobileNet-0.25 (the WIDER FACE release, :mod:`maskbench.models.pretrained`) finds the faces in
   the whole image (letterboxed to :data:`DETECT_SIZE`). The face meant is the detection overlapping the
   sample's labelled box most (IoU >= :data:`MATCH_IOU`): the only thing read from the annotation, and a
   choice between detections, so nudging the label does not move the mask.
2. 3DDFA_V2 MobileNet x0.5 (trained on 300W_LP, profiles included) crops that box by its authors' box rule
   (:func:`box_roi`) and its landmark head gives 68 points (iBUG order, 3D-projected like AFLW2000's);
   a second pass on the crop its own landmarks give (:func:`landmark_roi`, the authors' rule) refines them.

Both releases are MIT-licensed and ship inside the package (``maskbench/models/weights/`` with their
licences), so the default placement works offline in any install. The networks are loaded once per
process. A face the detector misses raises :class:`~maskbench.synthesis.landmarks.NoLandmarks`; the caller
writes it unmasked and lists it (never a fall-back to the annotation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from maskbench import geometry
from maskbench.models import box_utils
from maskbench.models.canvas import letterbox, to_tensor
from maskbench.models.weights import RETINAFACE_WEIGHTS, TDDFA_MEAN_STD, TDDFA_WEIGHTS
from maskbench.types import BBox

#: Side of the square canvas RetinaFace sees first (the image letterboxed into it). On the AFLW2000 dev
#: half 320 found as many faces as 480 but one (of 156 at |yaw| >= 60), with the same landmarks, in 40 %
#: less time.
DETECT_SIZE = 320
#: The second look, when the first finds no confident face on the labelled one: the image at its own
#: size (never enlarged), up to this side. Small faces (BIWI's, about 100 px in 640 x 480 frames) need it.
#: Looks in order: confident faces at 320, then at full size, then any face down to the low score at
#: 320, then at full size; the first look with a detection on the labelled face decides.
FULL_SIZE_MAX = 640
#: Face score a detection needs (RetinaFace's demo uses 0.5). In the second look, when no such detection is
#: on the labelled face, detections down to :data:`LOW_SCORE_THRESHOLD` are taken (2 of 156 profile faces of
#: the dev half scored 0.13 and 0.47; the sample data's rendered BIWI heads score 0.09-1.0).
SCORE_THRESHOLD = 0.5
LOW_SCORE_THRESHOLD = 0.05
#: A detection is the labelled face when it overlaps the labelled box by this IoU. Low, because the
#: datasets' boxes differ in shape from RetinaFace's (AFLW2000's landmark box is tight, BIWI's head box loose).
MATCH_IOU = 0.1
#: 3DDFA_V2's input side (pixels).
TDDFA_SIZE = 120


@dataclass(frozen=True)
class DetectedFace:
    """The face found: RetinaFace's box and score, 3DDFA_V2's 68 landmarks (pixels of the image)."""

    box_px: tuple[float, float, float, float]
    score: float
    landmarks_px: np.ndarray


class NotDetected(Exception):
    """No detection on the labelled face (the message says what was found)."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread while the networks run: results are then the same bytes in a worker pool and in
    one process (a convolution's sums are ordered by its thread count), and workers do not oversubscribe."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@lru_cache(maxsize=1)
def _networks() -> tuple[torch.nn.Module, torch.nn.Module]:
    from maskbench.models.pretrained import init_model
    from maskbench.models.published import load_3ddfa_v2

    detector, _ = init_model(RETINAFACE_WEIGHTS, {})
    del detector.heads["pose6d"]  # the release has no pose head (it would start untrained): not run
    return detector.eval(), load_3ddfa_v2(TDDFA_WEIGHTS, TDDFA_MEAN_STD, landmark_head=True)


def box_roi(box: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """3DDFA_V2's crop for a face box: (x, y, side) of a square of 1.58 x the mean of width and height,
    its centre 0.14 of that mean below the box's centre."""
    x0, y0, x1, y1 = box
    size = ((x1 - x0) + (y1 - y0)) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.14 * size
    side = 1.58 * size
    return cx - side / 2, cy - side / 2, side


def landmark_roi(landmarks_px: np.ndarray) -> tuple[float, float, float]:
    """3DDFA_V2's crop for 68 landmarks: a square centred on their box, its side the box's diagonal."""
    (x0, y0), (x1, y1) = landmarks_px.min(axis=0), landmarks_px.max(axis=0)
    side = float(np.hypot(x1 - x0, y1 - y0))
    return (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2, side


def crop(image_bgr: np.ndarray, roi: tuple[float, float, float]) -> np.ndarray:
    """The roi resampled to 120 x 120 (bilinear), zero outside the image (padded, never clipped)."""
    x, y, side = roi
    k = TDDFA_SIZE / side
    affine = np.array([[k, 0.0, -x * k], [0.0, k, -y * k]])
    return cv2.warpAffine(image_bgr, affine, (TDDFA_SIZE, TDDFA_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _tddfa_input(image_bgr: np.ndarray, rois: list[tuple[float, float, float]]) -> torch.Tensor:
    """3DDFA_V2's input for each roi: the 120 px crop (:func:`crop`), BGR, (x - 127.5) / 128, NCHW."""
    crops = np.stack([crop(image_bgr, r) for r in rois]).astype(np.float32)
    return torch.from_numpy((crops - 127.5) / 128.0).permute(0, 3, 1, 2)


@torch.no_grad()
def box_rotation(image_bgr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The head rotation (maskbench convention) 3DDFA_V2 reads from a face box's crop (:func:`box_roi`): its
    3x4 camera's rotation, from its y-up model frame (as the ``3ddfa-v2-mb05`` model card reads it). An
    image-only estimate, used to bin faces by |yaw| where no label is trusted (real masked photos)."""
    _, tddfa = _networks()
    with one_thread():
        camera = geometry.camera_3x4_to_matrix(tddfa(_tddfa_input(image_bgr, [box_roi(box)]))[0].numpy())
    return geometry.FLIP_YZ @ geometry.orthonormalize(camera) @ geometry.FLIP_YZ  # type: ignore[no-any-return]


@torch.no_grad()
def roi_landmarks(image_bgr: np.ndarray, rois: list[tuple[float, float, float]]) -> list[np.ndarray]:
    """3DDFA_V2's 68 landmarks (image pixels) for each roi of one image, in one forward pass."""
    _, tddfa = _networks()
    with one_thread():
        unit = tddfa.landmarks(_tddfa_input(image_bgr, rois)).numpy().astype(np.float64)
    return [(u + 1.0) * (r[2] / 2.0) + np.array([r[0], r[1]]) for u, r in zip(unit, rois, strict=True)]


def full_size(shape: tuple[int, ...]) -> int:
    """The second look's canvas side: the image's longer side rounded up to 32, at most :data:`FULL_SIZE_MAX`."""
    return min(FULL_SIZE_MAX, -(-max(shape[:2]) // 32) * 32)


@torch.no_grad()
def detect_faces(image_bgr: np.ndarray, size: int = DETECT_SIZE,
                 min_score: float = LOW_SCORE_THRESHOLD) -> list[tuple[tuple[float, float, float, float], float]]:
    """RetinaFace's faces (box in image pixels, score) scoring at least ``min_score`` on a ``size`` canvas,
    best first, after NMS (IoU 0.4)."""
    detector, _ = _networks()
    canvas, scale = letterbox(image_bgr, size)
    with one_thread():
        out = detector(to_tensor(canvas)[None])
    scores = out["conf"][0].softmax(-1)[:, 1]
    keep = (scores >= min_score).nonzero().flatten()
    if not len(keep):
        return []
    boxes = box_utils.decode_boxes(out["loc"][0][keep], _priors(size)[keep]) * (size / scale)
    order = box_utils.nms(boxes, scores[keep], 0.4)
    return [(tuple(float(v) for v in boxes[k]), float(scores[keep][k])) for k in order]


@lru_cache(maxsize=4)
def _priors(size: int) -> torch.Tensor:
    return box_utils.priors(size, size)


def find_face(image_bgr: np.ndarray, labelled_box: BBox) -> DetectedFace:
    """The labelled face as the networks see it (module docstring); NotDetected when none matches."""
    target = (labelled_box.x_min, labelled_box.y_min, labelled_box.x_max, labelled_box.y_max)
    seen: dict[int, list[tuple[tuple[float, float, float, float], float]]] = {}
    full = full_size(image_bgr.shape)
    for size, min_score in ((DETECT_SIZE, SCORE_THRESHOLD), (full, SCORE_THRESHOLD),
                            (DETECT_SIZE, LOW_SCORE_THRESHOLD), (full, LOW_SCORE_THRESHOLD)):
        if size not in seen:
            seen[size] = detect_faces(image_bgr, size)
        tier = [f for f in seen[size] if f[1] >= min_score]
        k = geometry.best_match(target, [b for b, _ in tier], MATCH_IOU)
        if k is not None:
            box, score = tier[k]
            break
    else:
        found = seen[full]
        best = float(geometry.box_iou(target, [b for b, _ in found]).max()) if found else 0.0
        raise NotDetected(f"RetinaFace found {len(found)} face(s) scoring >= {LOW_SCORE_THRESHOLD}"
                          + (f", none on the labelled face (best IoU {best:.2f})" if found else ""))
    first = roi_landmarks(image_bgr, [box_roi(box)])[0]
    return DetectedFace(box, score, roi_landmarks(image_bgr, [landmark_roi(first)])[0])
