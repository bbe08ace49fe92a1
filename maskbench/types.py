"""Value types that cross module borders: poses, boxes, samples.

Angles are named with their unit (``_deg``), pixel quantities with ``_px``; points are
``(N, 2)`` float64 arrays in pixels with missing points stored as NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry


@dataclass(frozen=True, eq=False)
class HeadPose:
    """A head rotation in the maskbench convention (see :mod:`maskbench.geometry`).

    ``matrix`` is a read-only 3x3 float64 rotation with ``p_camera = matrix @ p_head + t``.
    """

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64, copy=True)
        if m.shape != (3, 3) or not np.isfinite(m).all():
            raise ValueError(f"HeadPose needs a finite 3x3 matrix, got shape {m.shape}")
        if not geometry.is_rotation_matrix(m, tol=1e-4):
            raise ValueError("HeadPose matrix is not a rotation (orthonormal, det +1)")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def from_euler_deg(cls, *, yaw_deg: float, pitch_deg: float, roll_deg: float) -> HeadPose:
        """Build a pose from named Euler angles in degrees (keyword-only: no order mix-ups)."""
        for name, value in (("yaw_deg", yaw_deg), ("pitch_deg", pitch_deg), ("roll_deg", roll_deg)):
            if not np.isfinite(value):
                raise ValueError(f"{name} is not finite: {value}")
        return cls(geometry.euler_deg_to_matrix(yaw_deg, pitch_deg, roll_deg))

    @property
    def yaw_deg(self) -> float:
        return geometry.matrix_to_euler_deg(self.matrix)[0]

    @property
    def pitch_deg(self) -> float:
        return geometry.matrix_to_euler_deg(self.matrix)[1]

    @property
    def roll_deg(self) -> float:
        return geometry.matrix_to_euler_deg(self.matrix)[2]

    def euler_deg(self) -> dict[str, float]:
        """``{"yaw_deg": ..., "pitch_deg": ..., "roll_deg": ...}``."""
        yaw, pitch, roll = geometry.matrix_to_euler_deg(self.matrix)
        return {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll}

    def geodesic_deg(self, other: HeadPose) -> float:
        """Rotation angle between two poses in degrees."""
        return geometry.geodesic_deg(self.matrix, other.matrix)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeadPose) and bool(np.array_equal(self.matrix, other.matrix))

    def __hash__(self) -> int:
        return hash(self.matrix.tobytes())

    def __repr__(self) -> str:
        e = self.euler_deg()
        return "HeadPose(" + ", ".join(f"{k}={v:.3f}" for k, v in e.items()) + ")"


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box in pixels, ``x_max``/``y_max`` exclusive-free (continuous coordinates)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self) -> None:
        vals = (self.x_min, self.y_min, self.x_max, self.y_max)
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"BBox has a non-finite coordinate: {vals}")
        if self.x_max < self.x_min or self.y_max < self.y_min:
            raise ValueError(f"BBox has max < min: {vals}")

    @classmethod
    def from_points(cls, points_px: np.ndarray) -> BBox:
        """Tight box around the finite rows of an (N, 2) array."""
        pts = np.asarray(points_px, dtype=np.float64)
        if not np.isfinite(pts).all():
            pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts) == 0:
            raise ValueError("no finite points to build a box from")
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        return cls(float(x0), float(y0), float(x1), float(y1))

    @property
    def width_px(self) -> float:
        return self.x_max - self.x_min

    @property
    def height_px(self) -> float:
        return self.y_max - self.y_min

    @property
    def center_px(self) -> tuple[float, float]:
        return (0.5 * (self.x_min + self.x_max), 0.5 * (self.y_min + self.y_max))

    def corners_px(self) -> np.ndarray:
        """(4, 2) corners, clockwise from top-left."""
        return np.array(
            [[self.x_min, self.y_min], [self.x_max, self.y_min], [self.x_max, self.y_max], [self.x_min, self.y_max]]
        )


@dataclass(frozen=True)
class Sample:
    """One face of a dataset, as readers produce it and writers consume it.

    Attributes:
        id: stable identifier, unique within a split directory, e.g. ``"01/frame_00003"``.
        image_path: absolute path of the image file.
        pose: ground-truth head pose.
        bbox: face box in pixels (how it is derived is documented per dataset).
        landmarks_px: (68, 2) iBUG-68 landmarks in pixels, NaN where absent; None if the dataset
            has none (BIWI).
        native: the dataset's own fields a writer needs to reproduce the files exactly
            (for example the whole ``.mat`` dict, or the BIWI calibration). Treat as read-only.
        source_id: id of the sample this one was derived from ("" for an original sample).
        transform: name of the transform that produced it ("" for an original sample).
        extra: transform-specific label columns (``mask_type``, ``rotation_deg``...).
        aux_images: per-pixel maps that travel with the image, by name (``"occlusion"``: uint8
            0/255, same height and width as the image). Written as ``<name>/<id>.png`` with a
            ``<name>_path`` column; geometric transforms move them with the image.
        camera_matrix: (3, 3) pinhole intrinsics of the image (BIWI's RGB camera); None for the
            orthographic datasets.
        head_center_mm: (3,) head centre in that camera's frame, millimetres (BIWI); None otherwise.
            An in-plane rotation of the image turns it with the camera.
    """

    id: str
    image_path: Path
    pose: HeadPose
    bbox: BBox
    landmarks_px: np.ndarray | None = None
    native: Mapping[str, Any] = field(default_factory=dict)
    source_id: str = ""
    transform: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    aux_images: Mapping[str, np.ndarray] = field(default_factory=dict)
    camera_matrix: np.ndarray | None = None
    head_center_mm: np.ndarray | None = None

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (samples are immutable).

        Same result as :func:`dataclasses.replace` (Sample has no ``__post_init__``), without
        re-running ``__init__``: the pipelines call this several times per sample.
        """
        unknown = changes.keys() - _SAMPLE_FIELDS
        if unknown:
            raise TypeError(f"Sample has no field(s) {', '.join(sorted(unknown))}")
        new = object.__new__(Sample)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Sample))
