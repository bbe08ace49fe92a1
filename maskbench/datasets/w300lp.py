"""300W_LP: subset folders of ``.jpg`` + ``.mat`` pairs, optional ``landmarks/`` folder.

Expected tree::

    300W_LP/
    ├── AFW/                 AFW_134212_1_0.jpg + AFW_134212_1_0.mat, ...
    ├── AFW_Flip/            mirrored copies, labels already mirrored
    ├── HELEN/  HELEN_Flip/
    ├── IBUG/   IBUG_Flip/
    ├── LFPW/   LFPW_Flip/
    └── landmarks/           optional: landmarks/<subset>/<name>_pts.mat (pts_2d (68,2), pts_3d)

The ``.mat`` holds ``Pose_Para`` (1,7) [pitch, yaw, roll rad, tx, ty, tz, s] and ``pt2d`` (2,68).
Sample id: ``<subset>/<stem>`` (``IBUG/IBUG_image_008_1_0``). Landmarks: ``pt2d.T`` (68, 2) pixels.
Box: tight box of those landmarks. Any subset folder name is accepted (not only the eight above),
so trees written by maskbench with the same layout read back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets import threeddfa
from maskbench.datasets.base import guarded, list_files
from maskbench.io import matv5
from maskbench.io.atomic import atomic_write
from maskbench.types import Sample

LANDMARKS_DIR = "landmarks"


class _W300LP(threeddfa.ThreeDDFAFormat):
    name = "300W_LP"
    def _subsets(self, root: Path) -> list[Path]:
        return [p for p in sorted(root.iterdir()) if p.is_dir() and p.name != LANDMARKS_DIR and not p.name.startswith(".")]

    def looks_like(self, root: Path) -> bool:
        return any(any(p.with_suffix(".mat").is_file() for p in d.glob("*.jpg")) for d in self._subsets(root))

    def discover(self, root: Path) -> list[str]:
        return [f"{d.name}/{p.stem}" for d in self._subsets(root) for p in list_files(d, "*.jpg")]

    def read(self, root: Path, key: str) -> Sample:
        image_path, mat_path, mat, pts = threeddfa.read_labelled_pair(root, key, "pt2d", 2)
        native: dict[str, Any] = {}
        lm_path = root / LANDMARKS_DIR / f"{key}_pts.mat"
        if lm_path.is_file():
            native["landmarks_mat"] = guarded(lm_path, "landmarks .mat", lambda: matv5.load_mat(lm_path))
            native["landmarks_path"] = lm_path
        return threeddfa.make_sample(key, image_path, mat_path, mat, pts, **native)

    def move_native(self, sample: Sample, affine: np.ndarray, camera_rotation: np.ndarray) -> dict[str, Any]:
        """Native fields after an image affine: ``landmarks/`` points and the Pose_Para origin move."""
        native = threeddfa.move_pose_para_center(dict(sample.native), affine)
        if "landmarks_mat" in native:
            lm = dict(native["landmarks_mat"])
            for key in ("pts_2d", "pts_3d"):
                if key in lm and np.shape(lm[key]) == (68, 2):
                    lm[key] = geometry.apply_affine(lm[key], affine)
            native["landmarks_mat"] = lm
            native.pop("landmarks_path", None)
        return native

    def output_files(self, sample: Sample) -> list[str]:
        extra = [f"{LANDMARKS_DIR}/{sample.id}_pts.mat"] if "landmarks_mat" in sample.native else []
        return [f"{sample.id}.jpg", f"{sample.id}.mat", *extra]

    def write(self, out_root: Path, sample: Sample, image: np.ndarray | bytes | None) -> list[str]:
        if sample.landmarks_px is None:
            raise ValueError(f"{sample.id}: 300W_LP needs 68 landmarks")
        mat = dict(sample.native.get("mat", {}))
        mat["Pose_Para"] = threeddfa.pose_para_for(sample)
        old = np.asarray(mat.get("pt2d", np.zeros((2, 68))))
        if not np.array_equal(old.T, sample.landmarks_px):
            mat["pt2d"] = sample.landmarks_px.T.astype(np.float64)
        written = threeddfa.write_pair(out_root, sample.id, sample, image, mat)
        if "landmarks_mat" in sample.native:
            rel = f"{LANDMARKS_DIR}/{sample.id}_pts.mat"
            lm = dict(sample.native["landmarks_mat"])
            unchanged = image is None and "landmarks_path" in sample.native
            if unchanged:
                atomic_write(out_root / rel, lambda tmp: shutil.copyfile(sample.native["landmarks_path"], tmp))
            else:
                lm.setdefault("pts_2d", sample.landmarks_px.astype(np.float64))
                threeddfa.save_mat(out_root / rel, lm)
            written.append(rel)
        return written


FORMAT = _W300LP()
