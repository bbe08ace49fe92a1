"""The ``.jpg`` + ``.mat`` pair shared by AFLW2000-3D and 300W_LP (the 3DDFA releases).

``.mat`` fields read here: ``Pose_Para`` float32 (1, 7) = [pitch, yaw, roll (radians), tx, ty, tz,
scale] and a 68-landmark array (``pt3d_68`` (3, 68) for AFLW2000, ``pt2d`` (2, 68) for 300W_LP).
Every other key (``Shape_Para``, ``roi``, ...) is kept in ``Sample.native["mat"]`` and written back
unchanged, so third-party loaders keep working on maskbench outputs.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets.base import DatasetError, guarded, require_file
from maskbench.io import matv5
from maskbench.io.atomic import atomic_write, atomic_write_bytes, image_bytes
from maskbench.types import BBox, HeadPose, Sample

#: Marker the AFLW releases use for an unlabelled 2D point: x = -1, y = image height + 2.
UNLABELLED_X = -1.0


def save_mat(path: Path, data: dict[str, Any]) -> None:
    """Write a MAT v5 file atomically with a deterministic header (same data -> same bytes)."""
    raw = matv5.mat_bytes(data)
    atomic_write_bytes(path, raw)


def load_mat(path: Path) -> dict[str, Any]:
    """The variables of a ``.mat`` file (as ``scipy.io.loadmat`` gives them) or a clear error on garbage."""
    require_file(path, ".mat label file")
    return guarded(path, ".mat file", lambda: matv5.load_mat(path))  # type: ignore[no-any-return]


def pose_from_mat(path: Path, mat: dict[str, Any]) -> tuple[HeadPose, np.ndarray]:
    """Pose and the raw ``Pose_Para`` row (float32, 7 values) of a 3DDFA ``.mat``."""
    if "Pose_Para" not in mat:
        raise DatasetError(path, "missing key 'Pose_Para'")
    para = np.asarray(mat["Pose_Para"]).reshape(-1)
    if para.size != 7:
        raise DatasetError(path, f"Pose_Para has {para.size} values, expected 7")
    if not np.all(np.isfinite(para[:3])):
        raise DatasetError(path, "Pose_Para has NaN/inf angles")
    pitch, yaw, roll = (float(v) for v in para[:3])
    return HeadPose(geometry.matrix_from_3ddfa(pitch, yaw, roll)), para


def raw_angles_deg(sample: Sample) -> dict[str, float]:
    """The angles exactly as stored (possibly unwrapped, e.g. -972 deg), in degrees."""
    para = sample.native["pose_para"]
    return {"pitch_deg": math.degrees(para[0]), "yaw_deg": math.degrees(para[1]), "roll_deg": math.degrees(para[2])}


def stored_angles_deg(sample: Sample) -> dict[str, float] | None:
    """:func:`raw_angles_deg` of a 3DDFA-format sample; None for a sample of another format."""
    return raw_angles_deg(sample) if "pose_para" in sample.native else None


def aflw21_points(sample: Sample) -> np.ndarray | None:
    """The labelled AFLW points of an AFLW2000-format sample: ``pt2d`` columns with x > 0 (the
    unlabelled ones are stored as x = -1), (K, 2) pixels; None when the sample has no 21-point pt2d."""
    mat = sample.native.get("mat")
    pts = None if mat is None else mat.get("pt2d")
    if pts is None or np.asarray(pts).shape[0] != 2 or np.asarray(pts).shape[1] == 68:
        return None
    xy = np.asarray(pts, dtype=np.float64).T
    return xy[(xy[:, 0] > 0) & np.isfinite(xy).all(axis=1)]


def protocol_filter(sample: Sample, options: dict[str, Any]) -> str | None:
    """The standard AFLW2000 protocol: drop a sample when any stored |angle| > the limit."""
    limit = options.get("max_abs_angle_deg")
    if limit is None:
        return None
    if any(abs(v) > limit for v in raw_angles_deg(sample).values()):
        return f"|angle| > {limit:g} deg"
    return None


def pose_para_for(sample: Sample) -> np.ndarray:
    """``Pose_Para`` to write: the stored row when the pose is unchanged, else recomputed angles."""
    para = np.array(sample.native.get("pose_para", np.zeros(7)), dtype=np.float32).reshape(-1)
    stored = geometry.matrix_from_3ddfa(*(float(v) for v in para[:3]))
    if geometry.geodesic_deg(stored, sample.pose.matrix) > 1e-9 or "pose_para" not in sample.native:
        para[:3] = np.asarray(geometry.matrix_to_3ddfa_rad(sample.pose.matrix), dtype=np.float32)
    return para.reshape(1, 7)


def points_to_rows(points_px: np.ndarray, image_height_px: int) -> np.ndarray:
    """(N, 2) pixels with NaN for missing -> (2, N) with the AFLW 'unlabelled' marker."""
    pts = np.array(points_px, dtype=np.float64)
    missing = ~np.all(np.isfinite(pts), axis=1)
    pts[missing] = (UNLABELLED_X, image_height_px + 2.0)
    return pts.T


def rows_to_points(rows: np.ndarray, image_height_px: int) -> np.ndarray:
    """(2, N) stored points -> (N, 2) with the 'unlabelled' marker turned into NaN."""
    pts = np.array(rows, dtype=np.float64).T
    missing = (pts[:, 0] == UNLABELLED_X) & (pts[:, 1] == image_height_px + 2.0)
    pts[missing] = np.nan
    return pts


def sample_height(sample_or_native: Any) -> int:
    """Image height of a sample, from its native fields or (lazily) from its image header."""
    native = sample_or_native.native if isinstance(sample_or_native, Sample) else sample_or_native
    if "image_height_px" in native:
        return int(native["image_height_px"])
    return image_height(Path(native["image_path"]))


def image_height(path: Path) -> int:
    """Height in pixels from the image header (no full decode)."""
    from PIL import Image

    require_file(path, "image")
    return int(guarded(path, "image header", lambda: Image.open(path).size[1]))


def make_sample(
    sample_id: str, image_path: Path, mat_path: Path, mat: dict[str, Any], landmarks_px: np.ndarray, **native: Any
) -> Sample:
    """Assemble a Sample from a parsed ``.mat``; the box is the tight box of the 68 landmarks."""
    pose, para = pose_from_mat(mat_path, mat)
    if not np.all(np.isfinite(landmarks_px)):
        raise DatasetError(mat_path, "68 landmarks contain NaN/inf")
    return Sample(
        id=sample_id,
        image_path=image_path,
        pose=pose,
        bbox=BBox.from_points(landmarks_px),
        landmarks_px=landmarks_px,
        native={"mat": mat, "pose_para": para, "image_path": image_path, **native},
    )


def box_for(sample: Sample) -> BBox:
    """Box of the 3DDFA formats: the tight box of the 68 landmarks."""
    if sample.landmarks_px is None:
        raise ValueError(f"{sample.id}: 68 landmarks are required")
    return BBox.from_points(sample.landmarks_px)


def write_pair(out_root: Path, rel_stem: str, sample: Sample, image: np.ndarray | bytes | None,
               mat: dict[str, Any]) -> list[str]:
    """Write ``<rel_stem>.jpg`` (copied when ``image`` is None; ``bytes`` are JPEG already) and ``<rel_stem>.mat``."""
    jpg_rel, mat_rel = f"{rel_stem}.jpg", f"{rel_stem}.mat"
    jpg_path, mat_path = out_root / jpg_rel, out_root / mat_rel
    if image is None:
        atomic_write(jpg_path, lambda tmp: shutil.copyfile(sample.image_path, tmp))
    else:
        atomic_write_bytes(jpg_path, image_bytes(image, ".jpg"))
    save_mat(mat_path, mat)
    return [jpg_rel, mat_rel]


def read_labelled_pair(root: Path, key: str, points_key: str, rows: int) -> tuple[Path, Path, dict[str, Any], np.ndarray]:
    """``(image path, .mat path, mat, 68 landmarks (68, 2) float64)`` of one 3DDFA sample: the
    landmarks are the first two of the ``rows`` rows under ``points_key`` (AFLW2000 keeps them 3D
    in ``pt3d_68``, 300W_LP 2D in ``pt2d``). A DatasetError names the file when the key is
    missing or has another shape, or the image is not there."""
    image_path, mat_path = root / f"{key}.jpg", root / f"{key}.mat"
    mat = load_mat(mat_path)
    if points_key not in mat:
        raise DatasetError(mat_path, f"missing key {points_key!r}")
    pts = np.asarray(mat[points_key])
    if pts.shape != (rows, 68):
        raise DatasetError(mat_path, f"{points_key} has shape {pts.shape}, expected ({rows}, 68)")
    require_file(image_path, "image")
    return image_path, mat_path, mat, pts[:2].T.astype(np.float64)


def move_pose_para_center(native: dict[str, Any], affine: np.ndarray) -> dict[str, Any]:
    """Copy of ``native`` whose ``Pose_Para`` translation follows an image affine.

    ``(tx, H - 1 - ty)`` is the projected model origin in pixels; it moves with the image. The
    stored angles are left as they are: the writer sees they no longer match the pose and
    recomputes them from the rotation matrix.
    """
    out = dict(native)
    out["image_height_px"] = sample_height(native)  # read once; later steps reuse it
    para = np.array(native["pose_para"], dtype=np.float32).reshape(-1)
    h = float(out["image_height_px"])
    (u, v), = geometry.apply_affine(np.array([[para[3], h - 1.0 - para[4]]]), affine)
    para[3], para[4] = u, h - 1.0 - v
    out["pose_para"] = para
    return out


class ThreeDDFAFormat:
    """What AFLW2000 and 300W_LP share: ``<id>.jpg`` images, the 99-degree filter, the landmark box."""

    image_suffix = ".jpg"

    def image_rel(self, sample_id: str) -> str:
        """Path of a sample's image relative to the dataset root, as the writer lays it out."""
        return f"{sample_id}.jpg"

    def keep_sample(self, sample: Sample, options: dict[str, Any]) -> str | None:
        return protocol_filter(sample, options)

    def box_for(self, sample: Sample) -> BBox:
        """The reader's box: tight box of the 68 landmarks."""
        return box_for(sample)
