"""The evaluation protocol: which suites exist, what a model receives for a face, how its answer is read.

* Suites: :data:`SUITES` (name -> the command that creates it); the one list every caller uses.
* ``--protocol crop``: the ground-truth box enlarged by :data:`CROP_MARGIN` (25 %) on every side,
  clipped to the image (:class:`EvalItem`); TorchScript/ONNX inputs are that crop resized to
  :data:`TORCHSCRIPT_SIZE_PX` square (:func:`crop_rgb224`). ``--protocol full``: the whole image, the
  detection overlapping the labelled box by :data:`FULL_MATCH_IOU` is scored. :data:`PROTOCOL_TEXT`
  says so in reports, built from these constants.
* Labels: :func:`label_euler_deg` (as the dataset states them); predictions: :func:`predicted_euler_deg`
  (``--euler fixed|closest``).
* :func:`mean_axis_mae_deg`: the trainer's validation score, the same protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from maskbench import geometry
from maskbench.datasets import threeddfa
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, label_matrix
from maskbench.errors import DatasetError
from maskbench.evaluation.metrics import angle_errors_deg
from maskbench.io.atomic import read_image
from maskbench.types import BBox, Sample

#: Suite name -> the command that creates it when it is missing.
SUITES: dict[str, str] = {
    "BIWI": "maskbench sample --dataset BIWI   (or point --data-root at a real BIWI copy)",
    "BIWI_masked": "maskbench synthesize --src BIWI --out BIWI_masked",
    "BIWI_rotated": "maskbench rotate --src BIWI --range -45 45",
    "AFLW2000": "maskbench sample --dataset AFLW2000   (or point --data-root at a real AFLW2000 copy)",
    "AFLW2000_masked": "maskbench synthesize --src AFLW2000",
    "AFLW2000_rotated": "maskbench rotate --src AFLW2000 --range -45 45",
    "300W_LP_masked": "maskbench synthesize --src 300W_LP",
}
CROP_MARGIN = geometry.PROTOCOL_CROP_MARGIN
#: ``--protocol full``: a detection must overlap the labelled box by this IoU to count as found.
FULL_MATCH_IOU = 0.4
TORCHSCRIPT_SIZE_PX = 224


@dataclass(frozen=True)
class EvalItem:
    """One face to score: its id, image, ground-truth box, camera and the crop a model receives."""

    sample_id: str
    image_bgr: np.ndarray
    bbox: BBox
    camera_matrix: np.ndarray | None
    #: the model's input for this face, made by the adapter's ``prepare`` in the decode threads
    prepared: Any = None
    #: (68, 2) landmarks of the sample, when the dataset has them (a model card may crop on them)
    landmarks_px: np.ndarray | None = None
    #: the labelled AFLW 21 points (``pt2d`` with x > 0), AFLW2000-format samples only
    aflw21_px: np.ndarray | None = None

    def crop_box(self) -> tuple[int, int, int, int]:
        return geometry.protocol_crop_box(self.bbox, self.image_bgr.shape[:2], CROP_MARGIN)

    def crop_bgr(self) -> np.ndarray:
        """The crop a model receives (a view of the image), BGR."""
        x0, y0, x1, y1 = self.crop_box()
        return self.image_bgr[y0:y1, x0:x1]

    def crop_rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.crop_bgr(), cv2.COLOR_BGR2RGB)


class PoseModel(Protocol):
    """What the evaluator calls. An adapter may also define ``prepare(item) -> input`` (pure,
    thread-safe): the evaluator then runs it in its decode threads, overlapping the model, and passes
    the result as ``item.prepared`` (``--protocol crop`` only)."""

    name: str

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]: ...


def resize_crop(crop_bgr: np.ndarray, size_px: int) -> np.ndarray:
    """A crop resized to ``size_px`` square: area averaging when it shrinks by 2x or more (no
    aliasing), bilinear otherwise (OpenCV's area resize at fractional factors costs ~5x as much
    for nearly the same pixels)."""
    h, w = crop_bgr.shape[:2]
    area = h >= 2 * size_px and w >= 2 * size_px
    return cv2.resize(crop_bgr, (size_px, size_px), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def crop_rgb224(item: EvalItem) -> np.ndarray:
    """One TorchScript/ONNX input before scaling: the crop resized to 224x224 (:func:`resize_crop`),
    RGB, uint8 (224, 224, 3). The adapters' ``prepare`` (it runs in the decode threads)."""
    return cv2.cvtColor(resize_crop(item.crop_bgr(), TORCHSCRIPT_SIZE_PX), cv2.COLOR_BGR2RGB)


def load_item(sample: Any, prepare: Callable[[EvalItem], Any] | None = None) -> EvalItem:
    item = EvalItem(sample.id, read_image(sample.image_path), sample.bbox, sample.camera_matrix,
                    landmarks_px=sample.landmarks_px, aflw21_px=threeddfa.aflw21_points(sample))
    return item if prepare is None else dataclasses.replace(item, prepared=prepare(item))


def try_load_item(sample: Any, prepare: Callable[[EvalItem], Any] | None, suite_dir: Path) -> EvalItem | str:
    """:func:`load_item`, or the one-line reason ("path: problem", relative to the suite) it failed."""
    try:
        return load_item(sample, prepare)
    except DatasetError as exc:
        return f"{_relative(exc.path, suite_dir)}: {exc.problem}"


def _relative(path: str, suite_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(suite_dir.resolve()).as_posix()
    except ValueError:
        return Path(path).name


#: How a predicted rotation becomes (yaw, pitch, roll) for the per-axis errors.
EULER_MODES = {
    "fixed": "fixed (each predicted rotation decomposed once in the maskbench convention, yaw in [-90, 90], "
             "as published evaluations do)",
    "closest": "closest (of the two Euler triples of each predicted rotation, the one nearer the label)",
}


def predicted_euler_deg(pred_matrix: np.ndarray, label_deg: tuple[float, float, float],
                        euler: str = "fixed") -> tuple[float, float, float]:
    """(yaw, pitch, roll) of a predicted rotation for the per-axis comparison with ``label_deg``:
    ``fixed`` decomposes it once (:func:`geometry.matrix_to_euler_deg`, the literature's way; near
    |yaw| = 90 a small rotation error can read as large pitch and roll errors, and a label beyond
    yaw 90 is never matched exactly); ``closest`` takes the nearer of its two triples."""
    if euler == "fixed":
        return geometry.matrix_to_euler_deg(pred_matrix)
    if euler == "closest":
        return geometry.closest_euler_deg(pred_matrix, label_deg)
    raise ValueError(f"euler must be one of {', '.join(EULER_MODES)}, got {euler!r}")


def label_euler_deg(sample: Sample, biwi_labels: str = DEFAULT_BIWI_LABELS) -> tuple[float, float, float]:
    """A sample's (yaw, pitch, roll) degrees as its dataset states them: the stored ``Pose_Para`` of
    the 3DDFA formats (which may lie beyond the matrix decomposition's yaw range, e.g. yaw 95, or be
    unwrapped, e.g. roll -972), else the decomposition of its label rotation (BIWI in the
    ``biwi_labels`` convention, by the Hopenet/FSA-Net formulas)."""
    raw = threeddfa.stored_angles_deg(sample)
    if raw is not None:
        return raw["yaw_deg"], raw["pitch_deg"], raw["roll_deg"]
    return geometry.matrix_to_euler_deg(label_matrix(sample, biwi_labels))


PROTOCOL_TEXT = {
    "crop": f"crop (ground-truth box + {CROP_MARGIN * 100:.0f} % margin)",
    "full": f"full (whole image; the detection with IoU >= {FULL_MATCH_IOU:g} to the labelled box, else a miss)",
}


def mean_axis_mae_deg(model: PoseModel, samples: Sequence[Sample], biwi_labels: str = DEFAULT_BIWI_LABELS) -> float:
    """The mean of the yaw/pitch/roll MAE of ``model`` on ``samples`` under the crop protocol, each
    prediction compared per axis by its closest Euler triple (``--euler closest``); missed faces are
    left out. The trainer's validation score (``best.pth``), so it lives below both the trainer and
    the evaluator."""
    if not samples:
        return float("nan")
    items = [load_item(s) for s in samples]
    errs = []
    for r, s in zip(model.predict(items), samples):
        if r is None:
            continue
        label = label_euler_deg(s, biwi_labels)
        errs.append(angle_errors_deg(np.array(predicted_euler_deg(r, label, "closest")), np.array(label)).mean())
    return float(np.mean(errs)) if errs else float("nan")
