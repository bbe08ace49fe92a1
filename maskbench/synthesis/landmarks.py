"""Where a sample's 68 landmarks come from: ``detected`` (the default), ``gt``, ``dlib`` or ``pose``.

* ``detected``: what two published networks see in the pixels (:mod:`maskbench.synthesis.detected`:
  RetinaFace finds the face, 3DDFA_V2's landmark head places 68 points). The annotation only picks which
  detection is the labelled face; a face the detector misses raises :class:`NoLandmarks` (the
  ``synthesize`` transform writes it unmasked and lists it). The default for every split maskbench
  writes: test masks that carry nothing of the annotation.
* ``gt``: the dataset's own landmarks (AFLW2000 ``pt3d_68``, 300W_LP ``pt2d``).
* ``dlib``: dlib's 68-point shape predictor run on the sample's own face box (every dataset has
  one; mapped to the framing dlib's detector would give, :func:`dlib_box`), so no face is missed
  and no detector runs; the model file comes from the ``face_recognition_models`` package (located
  without importing it, since its ``__init__`` needs ``pkg_resources``, which recent setuptools no
  longer ships). :func:`dlib_detected_landmarks` is the detector route, kept for comparisons.
* ``pose``: the generic 3D landmarks of maskbench's average procedural head, rotated by the
  ground-truth pose and projected: with the BIWI camera and head centre when known (the head
  centre taken as BIWI defines it, :data:`~maskbench.render.head.BIWI_HEAD_CENTER_MM`), else scaled
  and centred to the face box.

``gt`` and ``pose`` read the annotation (``pose`` the pose label itself; ``gt`` landmarks that come from
the same 3DMM fit as the pose label in AFLW2000 and 300W_LP), and so does ``dlib``, which is run on a box
made from the annotated landmarks: choices for training variants (:data:`READS_ANNOTATION`). With all
but ``pose`` the mask is oriented by the landmarks
(:func:`maskbench.synthesis.landmark_pose.landmark_rotation`). With ``detected``, changing the labels
(pose, landmarks, box) leaves the masked image and its occlusion map byte-identical (tested).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from maskbench import geometry
from maskbench.render.head import BIWI_HEAD_CENTER_MM, Head, Identity
from maskbench.types import BBox, Sample

SOURCES = ("detected", "gt", "dlib", "pose")
DEFAULT_SOURCE = "detected"
#: Sources whose masks carry the annotation (a model trained on such masks can read the label off them).
READS_ANNOTATION = ("gt", "dlib", "pose")


#: dlib's HOG face box relative to the box of landmarks 17-67 and the chin (brows to chin), as
#: measured on the even-indexed photos of the AFLW2000 dev half (379 detections): the centre
#: +0.013 widths right and 0.107 heights up, the (square) side 1.12 heights. The shape predictor
#: was trained on boxes like these, so it is given one here instead of running the detector.
#: ``docs/fit_constants.py`` refits them; tests assert on odd-indexed dev photos only.
DLIB_BOX_SHIFT = (0.013, -0.107)
DLIB_BOX_SIDE = 1.12
INNER_LANDMARKS = list(range(17, 68)) + [8]

#: dlib's box relative to BIWI's head box (the 220 mm square at the head centre): centre 0.068
#: sides up, side 0.66 of it; the medians over 200 sample renders (seed 11, yaw within +-75) of the
#: box :func:`dlib_box` draws around the generic face (renders only: no photo was used).
HEAD_BOX_SHIFT_UP = 0.068
HEAD_BOX_SIDE = 0.66

#: dlib's detection is the labelled face when it overlaps the label's box by this IoU: chosen low,
#: because dlib's HOG box is a tight square on the inner face, far smaller than the datasets' boxes.
DLIB_MATCH_IOU = 0.1


class NoLandmarks(Exception):
    """The requested source has no landmarks for this sample (the message says why)."""


@lru_cache(maxsize=1)
def generic_head() -> Head:
    """The average procedural head: the 3D landmark template and the surface masks are fitted on."""
    return Head(Identity.average())


def dlib_model_path() -> Path:
    """Path of ``shape_predictor_68_face_landmarks.dat`` inside ``face_recognition_models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise NoLandmarks("package face_recognition_models is not installed (pip install face_recognition_models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise NoLandmarks(f"dlib landmark model not found at {path}")
    return path


@lru_cache(maxsize=1)
def dlib_models():  # type: ignore[no-untyped-def]
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_model_path()))


def dlib_box(landmarks_px: np.ndarray) -> BBox:
    """The box dlib's detector would draw around a face with these (approximate) 68 landmarks."""
    pts = landmarks_px[INNER_LANDMARKS]
    pts = pts[np.isfinite(pts).all(axis=1)]
    b = BBox.from_points(pts)
    cx = (b.x_min + b.x_max) / 2 + DLIB_BOX_SHIFT[0] * b.width_px
    cy = (b.y_min + b.y_max) / 2 + DLIB_BOX_SHIFT[1] * b.height_px
    half = DLIB_BOX_SIDE * b.height_px / 2
    return BBox(cx - half, cy - half, cx + half, cy + half)


def dlib_box_from_head_box(box: BBox) -> BBox:
    """The box dlib's detector would draw for a BIWI head box (no landmarks, no pose label)."""
    cx, cy = box.center_px
    cy -= HEAD_BOX_SHIFT_UP * box.height_px
    half = HEAD_BOX_SIDE * max(box.width_px, box.height_px) / 2
    return BBox(cx - half, cy - half, cx + half, cy + half)


def dlib_landmarks(image_bgr: np.ndarray, sample: Sample) -> np.ndarray:
    """68 landmarks from dlib's shape predictor run on the sample's face box (no detector).

    The box comes from the dataset's landmarks where it has them (:func:`dlib_box`), else from the
    dataset's head box (BIWI: :func:`dlib_box_from_head_box`); never from the pose label.
    """
    import cv2
    import dlib

    _, predictor = dlib_models()
    lm = sample.landmarks_px
    b = (dlib_box(lm) if lm is not None and np.isfinite(lm[INNER_LANDMARKS]).all()
         else dlib_box_from_head_box(sample.bbox))
    if not (b.width_px >= 8 and np.isfinite([b.x_min, b.y_min]).all()):
        raise NoLandmarks(f"face box {b} too small for dlib's shape predictor")
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    rect = dlib.rectangle(int(round(b.x_min)), int(round(b.y_min)), int(round(b.x_max)), int(round(b.y_max)))
    shape = predictor(grey, rect)
    return np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], dtype=np.float64)


def dlib_detected_landmarks(image_bgr: np.ndarray, face_box: BBox) -> np.ndarray:
    """68 landmarks the MaskTheFace way: dlib's HOG detector, then the predictor on the detection
    best overlapping ``face_box`` (IoU >= :data:`DLIB_MATCH_IOU`). Kept for comparisons (benchmarks)."""
    import cv2
    import dlib

    detector, predictor = dlib_models()
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    dets = list(detector(rgb, 1))
    if not dets:
        raise NoLandmarks("dlib found no face")
    target = (face_box.x_min, face_box.y_min, face_box.x_max, face_box.y_max)
    found = [(d.left(), d.top(), d.right(), d.bottom()) for d in dets]
    best = geometry.best_match(target, found, DLIB_MATCH_IOU)
    if best is None:
        best_iou = float(geometry.box_iou(target, found).max())
        raise NoLandmarks(f"dlib found {len(dets)} face(s), none on the labelled face (best IoU {best_iou:.2f})")
    d = dets[best]
    shape = predictor(rgb, dlib.rectangle(d.left(), d.top(), d.right(), d.bottom()))
    return np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], dtype=np.float64)


def pose_landmarks(sample: Sample) -> np.ndarray:
    """Generic 3D landmarks posed with the ground-truth rotation and projected."""
    if sample.camera_matrix is not None and sample.head_center_mm is not None:
        lm_cam = (generic_head().landmarks_mm - BIWI_HEAD_CENTER_MM) @ sample.pose.matrix.T
        return geometry.project_points(lm_cam + np.asarray(sample.head_center_mm), sample.camera_matrix)
    lm_cam = generic_head().landmarks_mm @ sample.pose.matrix.T
    # orthographic: scale the generic face to the box, centre it on the box
    xy = lm_cam[:, :2]
    span = xy.max(axis=0) - xy.min(axis=0)
    scale = min(sample.bbox.width_px / span[0], sample.bbox.height_px / span[1])
    mid = (xy.max(axis=0) + xy.min(axis=0)) / 2
    return (xy - mid) * scale + np.array(sample.bbox.center_px)


def landmarks_for(sample: Sample, image_bgr: np.ndarray, source: str) -> tuple[np.ndarray, str]:
    """(68, 2) landmarks and the source actually used; NoLandmarks when ``source`` has none."""
    if source not in SOURCES:
        raise ValueError(f"landmark source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "detected":
        from maskbench.synthesis.detected import NotDetected, find_face

        try:
            return find_face(image_bgr, sample.bbox).landmarks_px, "detected"
        except NotDetected as exc:
            raise NoLandmarks(str(exc)) from None
    if source == "gt":
        lm = sample.landmarks_px
        if lm is not None and np.all(np.isfinite(lm)):
            return lm, "gt"
        raise NoLandmarks("no ground-truth landmarks in this dataset")
    if source == "dlib":
        return dlib_landmarks(image_bgr, sample), "dlib"
    return pose_landmarks(sample), "pose"
