"""AFLW2000-3D: a flat folder of ``.jpg`` + ``.mat`` pairs.

Expected tree::

    AFLW2000/
    ├── image00002.jpg        450x450 RGB
    ├── image00002.mat        Pose_Para (1,7) [pitch, yaw, roll rad, tx, ty, tz, s],
    │                         pt3d_68 (3,68) rows x, y (pixels), z; pt2d (2,21) AFLW points
    ├── image00004.jpg
    ├── image00004.mat
    └── ...                   (a Code/ folder, if present, is ignored)

Sample id: the file stem (``image00002``). Landmarks: ``pt3d_68[:2].T`` (68, 2) in pixels.
Box: the tight box of those 68 landmarks (``pt2d`` can hold the unlabelled marker x=-1, y=452
and is not used for the box). The standard evaluation protocol keeps a sample only if every
stored angle has |angle| <= 99 degrees: pass ``max_abs_angle_deg=99`` (CLI ``--protocol-filter``);
the dropped ids are reported in the reader's ``filtered`` and the manifest, never silently.

Masked and rotated copies are scored on exactly the faces of their source's protocol: every split
maskbench writes from AFLW2000-format data carries, per row, the largest stored |angle| of the
original photo (``source_max_abs_angle_deg``, inherited through derived folders), and
:func:`outside_protocol` decides by that number, not by the copy's recomputed angles (a rotation
moves some faces across the limit: on the dev half, 990 rotated faces against 984 originals).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets import threeddfa
from maskbench.datasets.base import list_files
from maskbench.types import Sample

#: The protocol limit used by Hopenet, FSA-Net and the masked-HPE study.
PROTOCOL_MAX_ABS_ANGLE_DEG = 99.0
#: labels.csv column: the original photo's largest stored |angle| (degrees), what the protocol tests.
SOURCE_ANGLE_COLUMN = "source_max_abs_angle_deg"


def max_abs_stored_angle_deg(sample: Sample) -> float:
    """The largest |angle| of a sample's stored ``Pose_Para`` (degrees, as stored: maybe unwrapped)."""
    return max(abs(v) for v in threeddfa.raw_angles_deg(sample).values())


def outside_protocol(sample: Sample, row: dict[str, str] | None,
                     limit_deg: float = PROTOCOL_MAX_ABS_ANGLE_DEG) -> bool:
    """Whether the 99-degree protocol drops this face: by its original's stored angles when its
    ``labels.csv`` row carries them (:data:`SOURCE_ANGLE_COLUMN`), else by its own."""
    carried = (row or {}).get(SOURCE_ANGLE_COLUMN, "")
    return (float(carried) if carried else max_abs_stored_angle_deg(sample)) > limit_deg


class _Aflw2000(threeddfa.ThreeDDFAFormat):
    name = "AFLW2000"

    def looks_like(self, root: Path) -> bool:
        return any(p.with_suffix(".mat").is_file() for p in root.glob("*.jpg"))

    def discover(self, root: Path) -> list[str]:
        return [p.stem for p in list_files(root, "*.jpg")]

    def read(self, root: Path, key: str) -> Sample:
        return threeddfa.make_sample(key, *threeddfa.read_labelled_pair(root, key, "pt3d_68", 3))

    def move_native(self, sample: Sample, affine: np.ndarray, camera_rotation: np.ndarray) -> dict[str, Any]:
        """Native fields after an image affine: the 21 AFLW points and the Pose_Para origin move."""
        native = threeddfa.move_pose_para_center(dict(sample.native), affine)
        mat = dict(native["mat"])
        if "pt2d" in mat:
            h = threeddfa.sample_height(native)
            moved = geometry.apply_affine(threeddfa.rows_to_points(mat["pt2d"], h), affine)
            mat["pt2d"] = threeddfa.points_to_rows(moved, h).astype(np.asarray(mat["pt2d"]).dtype)
        native["mat"] = mat
        return native

    def output_files(self, sample: Sample) -> list[str]:
        return [f"{sample.id}.jpg", f"{sample.id}.mat"]

    def write(self, out_root: Path, sample: Sample, image: np.ndarray | bytes | None) -> list[str]:
        mat = dict(sample.native.get("mat", {}))
        mat["Pose_Para"] = threeddfa.pose_para_for(sample)
        if sample.landmarks_px is None:
            raise ValueError(f"{sample.id}: AFLW2000 needs 68 landmarks")
        old = np.asarray(mat.get("pt3d_68", np.zeros((3, 68), np.float32)), dtype=np.float32)
        new_xy = sample.landmarks_px.T.astype(np.float32)
        if not np.array_equal(old[:2], new_xy):
            old = old.copy()
            old[:2] = new_xy
        mat["pt3d_68"] = old
        return threeddfa.write_pair(out_root, sample.id, sample, image, mat)


FORMAT = _Aflw2000()
