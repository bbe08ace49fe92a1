"""BIWI Kinect Head Pose database, raw layout.

Expected tree (``root`` may be the ``hpdb`` folder itself or a folder containing ``hpdb/``)::

    BIWI/
    └── hpdb/
        ├── 01/
        │   ├── rgb.cal                 RGB intrinsics K, extrinsics (R_cal, T_cal), image size
        │   ├── depth.cal               (optional, copied through)
        │   ├── frame_00003_rgb.png     640x480
        │   ├── frame_00003_pose.txt    3 rows of R (depth frame), blank line, head centre (mm)
        │   └── ...                     (frame_XXXXX_depth.bin is not needed and not copied)
        ├── 02/
        └── ...

Sample id: ``<sequence>/frame_<n>`` (``01/frame_00003``). Pose: ``R_cal @ R_depth`` (RGB camera
frame, see :mod:`maskbench.geometry`): what the image shows, used for every pixel operation.
Labels (what is trained on, scored and written to ``labels.csv``) come in two conventions
(:data:`BIWI_LABELS`, :func:`label_matrix`): ``literature`` (default), the depth-frame rotation of
the ``_pose.txt`` files as FSA-Net's and 6DRepNet's BIWI scripts decompose it, which is what
published BIWI numbers are measured against; ``calibrated``, the RGB-frame pose (Biwi+).
Head centre: ``R_cal @ t + T_cal`` (mm, RGB frame), kept in
``Sample.native["head_center_mm"]``. Box: a square of side ``FACE_BOX_MM`` mm at the head centre's
depth, centred on the projected head centre. BIWI has no 2D landmarks (``landmarks_px`` is None).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets.base import DatasetError, guarded, list_files, require_file
from maskbench.io.atomic import atomic_write, atomic_write_bytes, atomic_write_text, image_bytes
from maskbench.types import BBox, HeadPose, Sample

#: BIWI label conventions (see the module docstring).
BIWI_LABELS = {
    "literature": "literature (depth-frame rotation of the _pose.txt files, as FSA-Net's and 6DRepNet's BIWI "
                  "scripts convert it; what published BIWI numbers use)",
    "calibrated": "calibrated (RGB camera frame: R_cal @ R_depth, the Biwi+ convention)",
}
DEFAULT_BIWI_LABELS = "literature"


def check_biwi_labels(biwi_labels: str) -> str:
    if biwi_labels not in BIWI_LABELS:
        raise ValueError(f"biwi_labels must be one of {', '.join(BIWI_LABELS)}, got {biwi_labels!r}")
    return biwi_labels


def label_matrix(sample: Sample | None, biwi_labels: str = DEFAULT_BIWI_LABELS,
                 rotation: np.ndarray | None = None) -> np.ndarray:
    """The label rotation of a sample in a BIWI label convention (:func:`label_rotation` of its pose,
    or of ``rotation``, e.g. its pose after a flip); a sample of another dataset (or None, with
    ``rotation``) keeps the rotation as it is."""
    calibration = None if sample is None else sample.native.get("calibration")
    return label_rotation(sample.pose.matrix if rotation is None else rotation, calibration, biwi_labels)


def label_rotation(rotation: np.ndarray, calibration: Calibration | None,
                   biwi_labels: str = DEFAULT_BIWI_LABELS) -> np.ndarray:
    """An RGB-frame rotation in a BIWI label convention: with a BIWI ``rgb.cal`` and ``literature``,
    ``R_cal.T @ rotation`` (the depth-frame rotation, exactly what the pose file stores for an
    original frame); otherwise the rotation itself (other formats have no calibration)."""
    if check_biwi_labels(biwi_labels) == "literature" and calibration is not None:
        return geometry.matrix_to_biwi(rotation, calibration.rotation)
    return np.asarray(rotation)


#: Physical side of the face box (mm). 220 mm at the 880 mm of fixture frame 01/00003 gives a
#: 129 px box; the hand-checked Biwi+ box of that frame is 132 px.
FACE_BOX_MM = 220.0


@dataclass(frozen=True)
class Calibration:
    """Contents of ``rgb.cal``: ``p_rgb = rotation @ p_depth + translation_mm``."""

    camera_matrix: np.ndarray
    rotation: np.ndarray
    translation_mm: np.ndarray
    size_px: tuple[int, int]

    def to_text(self) -> str:
        """Serialise in the original layout (trailing spaces, blank separator lines)."""

        def rows(m: np.ndarray) -> str:
            return "".join(" ".join(f"{v:.10g}" for v in row) + " \n" for row in np.atleast_2d(m))

        return (
            rows(self.camera_matrix) + "\n0 0 0 0 \n\n" + rows(self.rotation) + "\n"
            + rows(self.translation_mm) + "\n" + f"{self.size_px[0]} {self.size_px[1]}\n"
        )


def _numbers(path: Path) -> list[list[float]]:
    text = guarded(path, "text file", lambda: path.read_text(encoding="ascii"))
    rows = [line.split() for line in text.splitlines() if line.strip()]
    return guarded(path, "numbers", lambda: [[float(v) for v in row] for row in rows])


def read_calibration(path: Path) -> Calibration:
    """Parse ``rgb.cal``; DatasetError naming the file when it is missing or malformed."""
    require_file(path, "calibration file rgb.cal")
    rows = _numbers(path)
    if len(rows) != 9 or any(len(r) != n for r, n in zip(rows, [3, 3, 3, 4, 3, 3, 3, 3, 2])):
        raise DatasetError(path, "expected K (3 rows), distortion (4), R (3 rows), T (3), size (2)")
    arr = np.array(rows[0:3])
    rot = np.array(rows[4:7])
    if not geometry.is_rotation_matrix(rot, tol=1e-3):
        raise DatasetError(path, "extrinsic rotation is not a rotation matrix")
    return Calibration(arr, geometry.orthonormalize(rot), np.array(rows[7]), (int(rows[8][0]), int(rows[8][1])))


def read_pose_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``frame_XXXXX_pose.txt`` into (R_depth 3x3, head centre mm (3,))."""
    require_file(path, "pose file")
    rows = _numbers(path)
    if len(rows) != 4 or any(len(r) != 3 for r in rows):
        raise DatasetError(path, "expected 3 rows of a rotation matrix and one head-centre row of 3 numbers")
    arr = np.array(rows)
    if not np.all(np.isfinite(arr)):
        raise DatasetError(path, "contains NaN/inf")
    if not geometry.is_rotation_matrix(arr[:3], tol=1e-3):
        raise DatasetError(path, "the 3x3 block is not a rotation matrix")
    return geometry.orthonormalize(arr[:3]), arr[3]


def pose_text(rotation_depth: np.ndarray, center_depth_mm: np.ndarray) -> str:
    """The ``_pose.txt`` layout (rows, blank line, centre, trailing spaces) as in the original.

    The original stores 6 significant digits; maskbench writes 10 so that recomputed labels
    survive a write/read cycle to well under 1e-6 degrees. Parsers that split on whitespace
    and call float() read both.
    """
    body = "".join(" ".join(f"{v:.10g}" for v in row) + " \n" for row in rotation_depth)
    return body + "\n" + " ".join(f"{v:.10g}" for v in center_depth_mm) + " \n\n"


def face_box(center_mm: np.ndarray, camera_matrix: np.ndarray, side_mm: float = FACE_BOX_MM) -> BBox:
    """Square box of ``side_mm`` at the head centre's depth, centred on its projection."""
    (u, v), = geometry.project_points(center_mm[None], camera_matrix)
    half = 0.5 * side_mm * camera_matrix[0, 0] / center_mm[2]
    return BBox(float(u - half), float(v - half), float(u + half), float(v + half))


class _Biwi:
    name = "BIWI"
    image_suffix = ".png"

    @staticmethod
    def _base(root: Path) -> Path:
        return root / "hpdb" if (root / "hpdb").is_dir() else root

    def image_rel(self, sample_id: str) -> str:
        """Path of a sample's image relative to the dataset root, as the writer lays it out."""
        return f"hpdb/{sample_id}_rgb.png"

    def looks_like(self, root: Path) -> bool:
        return any(self._base(root).glob("*/frame_*_pose.txt"))

    def discover(self, root: Path) -> list[str]:
        base = self._base(root)
        return [f"{p.parent.name}/{p.name[: -len('_rgb.png')]}" for p in list_files(base, "*/frame_*_rgb.png")]

    def read(self, root: Path, key: str) -> Sample:
        base = self._base(root)
        seq = base / key.split("/")[0]
        calib = read_calibration(seq / "rgb.cal")
        pose_path = base / f"{key}_pose.txt"
        rot_depth, center_depth = read_pose_file(pose_path)
        image_path = base / f"{key}_rgb.png"
        require_file(image_path, "image")
        center_rgb = calib.rotation @ center_depth + calib.translation_mm
        if center_rgb[2] <= 0:
            raise DatasetError(pose_path, f"head centre is behind the camera (z = {center_rgb[2]:.1f} mm)")
        return Sample(
            id=key,
            image_path=image_path,
            pose=HeadPose(geometry.matrix_from_biwi(rot_depth, calib.rotation)),
            bbox=face_box(center_rgb, calib.camera_matrix),
            landmarks_px=None,
            native={"calibration": calib, "pose_path": pose_path, "seq_dir": seq},
            camera_matrix=calib.camera_matrix,
            head_center_mm=center_rgb,
        )

    def keep_sample(self, sample: Sample, options: dict[str, Any]) -> str | None:
        return None

    def move_native(self, sample: Sample, affine: np.ndarray, camera_rotation: np.ndarray) -> dict[str, Any]:
        """Native fields after the camera turns (the head centre, a Sample field, moves with it): the
        stored pose file no longer describes the sample."""
        native = dict(sample.native)
        native.pop("pose_path", None)
        return native

    def box_for(self, sample: Sample) -> BBox:
        """The reader's box definition applied to a (possibly moved) sample."""
        return face_box(np.asarray(sample.head_center_mm), sample.native["calibration"].camera_matrix)

    def output_files(self, sample: Sample) -> list[str]:
        seq = sample.id.split("/")[0]
        return [f"hpdb/{seq}/rgb.cal", f"hpdb/{seq}/depth.cal", f"hpdb/{sample.id}_rgb.png", f"hpdb/{sample.id}_pose.txt"]

    def write(self, out_root: Path, sample: Sample, image: np.ndarray | bytes | None) -> list[str]:
        calib: Calibration = sample.native["calibration"]
        seq = sample.id.split("/")[0]
        written = []
        seq_dir = sample.native.get("seq_dir")
        for name in ("rgb.cal", "depth.cal"):
            rel = f"hpdb/{seq}/{name}"
            src = Path(seq_dir) / name if seq_dir is not None else None
            if (out_root / rel).exists():
                written.append(rel)
            elif src is not None and src.is_file():
                atomic_write(out_root / rel, lambda tmp, src=src: shutil.copyfile(src, tmp))
                written.append(rel)
            elif name == "rgb.cal":
                atomic_write_text(out_root / rel, calib.to_text())
                written.append(rel)
        img_rel, pose_rel = f"hpdb/{sample.id}_rgb.png", f"hpdb/{sample.id}_pose.txt"
        if image is None:
            atomic_write(out_root / img_rel, lambda tmp: shutil.copyfile(sample.image_path, tmp))
        else:
            atomic_write_bytes(out_root / img_rel, image_bytes(image, ".png"))
        rot_depth = geometry.matrix_to_biwi(sample.pose.matrix, calib.rotation)
        center_depth = calib.rotation.T @ (np.asarray(sample.head_center_mm) - calib.translation_mm)
        old = sample.native.get("pose_path")
        if old is not None and _same_pose(Path(old), rot_depth, center_depth):
            atomic_write(out_root / pose_rel, lambda tmp: shutil.copyfile(old, tmp))
        else:
            atomic_write_text(out_root / pose_rel, pose_text(rot_depth, center_depth))
        return written + [img_rel, pose_rel]


def _same_pose(path: Path, rot_depth: np.ndarray, center_depth: np.ndarray) -> bool:
    """True when the stored pose file already encodes this pose (so its bytes can be kept)."""
    try:
        old_rot, old_center = read_pose_file(path)
    except DatasetError:
        return False
    return geometry.geodesic_deg(old_rot, rot_depth) < 1e-9 and bool(np.allclose(old_center, center_depth, atol=1e-9))


FORMAT = _Biwi()
