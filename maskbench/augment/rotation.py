"""The in-plane rotation transform: image, landmarks, box, native fields and pose move together.

One 2x3 affine ``A`` (rotation by ``angle_deg`` counter-clockwise on screen about a centre) moves
the image (``cv2.warpAffine``), the 68 landmarks and every native point set; one camera-frame
rotation (see :func:`maskbench.augment.functional.camera_rotation_for`) moves the pose,
``R' = Q Rz(-angle) R``, which is then written back in the dataset's own encoding by its writer.

Box: when the sample has landmarks the box is recomputed as the tight box of the rotated
landmarks (the readers' definition for 300W_LP / AFLW2000); for BIWI it is the reader's box
around the moved head centre. So a rotated split reads back with the same boxes it was written
with.

Centre: ``image`` rotates about the principal point for BIWI (exact) and about the image centre
for the orthographic formats (exact for any centre); ``face`` rotates about the face box centre
(exact for 300W_LP / AFLW2000; for BIWI corrected to first order, the correction angle is
recorded in ``perspective_correction_deg``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from maskbench import geometry
from maskbench.augment import functional as F
from maskbench.datasets.base import DatasetFormat
from maskbench.types import BBox, HeadPose, Sample


@dataclass(frozen=True)
class RotationParams:
    """How to rotate: ``maskbench rotate``'s options and :class:`~maskbench.transforms.RandomInPlaneRotation`'s
    (the one parameter type under both); every field goes into the manifest.

    Per source image, ``per_image`` copies, each rotated by an angle drawn uniformly from
    ``range_deg`` or, with ``choices_deg``, drawn uniformly from that list; with ``angles_deg`` (a
    sweep) instead, one copy per listed angle, every one of them.
    """

    range_deg: tuple[float, float] = (-45.0, 45.0)
    angles_deg: tuple[float, ...] | None = None
    per_image: int = 1
    center: str = "image"
    border: str = "reflect"
    choices_deg: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        lo, hi = self.range_deg
        if not lo <= hi:
            raise ValueError(f"--range needs LO <= HI, got {lo} {hi}")
        if self.center not in ("image", "face"):
            raise ValueError(f"--center must be image or face, got {self.center!r}")
        if self.border not in F.BORDER_MODES:
            raise ValueError(f"--border must be one of {', '.join(F.BORDER_MODES)}, got {self.border!r}")
        if self.per_image < 1:
            raise ValueError("--per-image must be at least 1")
        if self.angles_deg is not None and self.choices_deg is not None:
            raise ValueError("give angles_deg (every angle, a sweep) or choices_deg (one drawn per copy), not both")
        if self.choices_deg is not None and not len(self.choices_deg):
            raise ValueError("choices_deg is empty")

    def draw_angles(self, rng: np.random.Generator) -> list[float]:
        """The angles for one source image: the sweep, or ``per_image`` draws (from the choices or the range)."""
        if self.angles_deg is not None:
            return [float(a) for a in self.angles_deg]
        if self.choices_deg is not None:
            return [float(self.choices_deg[int(rng.integers(len(self.choices_deg)))]) for _ in range(self.per_image)]
        return [float(a) for a in rng.uniform(self.range_deg[0], self.range_deg[1], self.per_image)]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "range_deg": list(self.range_deg), "angles_deg": None if self.angles_deg is None else list(self.angles_deg),
            "per_image": self.per_image, "center": self.center, "border": self.border,
        }
        if self.choices_deg is not None:  # only when used: the manifests of every other run are unchanged
            out["choices_deg"] = list(self.choices_deg)
        return out


def rotation_center(sample: Sample, image_shape: Sequence[int], center: str) -> tuple[float, float]:
    """Pixel centre of the rotation for a sample (see the module docstring)."""
    if center == "face":
        return sample.bbox.center_px
    k = sample.camera_matrix
    if k is not None:
        return float(k[0, 2]), float(k[1, 2])
    h, w = image_shape[:2]
    return (w - 1) / 2.0, (h - 1) / 2.0


def rotate_labels(
    fmt: DatasetFormat | None, sample: Sample, image_shape: Sequence[int], angle_deg: float, center: str = "image",
) -> tuple[Sample, np.ndarray]:
    """Everything but the image of :func:`rotate_sample`: (rotated sample, its 2x3 image affine).

    ``fmt`` re-derives the dataset's native fields and box (None for a sample of no dataset: the box
    becomes the bounding box of the turned box).

    Per-pixel maps (``aux_images``) are rotated here too (nearest neighbour, zero border). Pure.
    """
    if "image_height_px" not in sample.native:  # formats that need it (3DDFA) skip a header read
        sample = sample.replace(native={**sample.native, "image_height_px": int(image_shape[0])})
    c = rotation_center(sample, image_shape, center)
    affine = geometry.image_rotation_affine(c, angle_deg)
    cam_rot, correction_deg = F.camera_rotation_for(angle_deg, c, sample.camera_matrix, sample.head_center_mm)
    pose = HeadPose(cam_rot @ sample.pose.matrix)  # a product of rotations: no re-orthonormalising needed
    landmarks = None if sample.landmarks_px is None else geometry.apply_affine(sample.landmarks_px, affine)
    center_mm = None if sample.head_center_mm is None else cam_rot @ np.asarray(sample.head_center_mm)
    moved = sample.replace(pose=pose, landmarks_px=landmarks, head_center_mm=center_mm)
    if fmt is None:  # a plain record: the bounding box of the turned box (the caller may prefer the landmarks')
        bbox = BBox.from_points(geometry.apply_affine(sample.bbox.corners_px(), affine))
    else:
        moved = moved.replace(native=fmt.move_native(sample, affine, cam_rot))
        bbox = fmt.box_for(moved)
    extra = dict(sample.extra)
    extra.update({"rotation_deg": angle_deg, "rotation_center": center, "perspective_correction_deg": correction_deg})
    aux = {k: F.rotate_image(v, affine, "constant", nearest=True) for k, v in sample.aux_images.items()}
    return moved.replace(bbox=bbox, extra=extra, aux_images=aux), affine


def rotate_sample(
    fmt: DatasetFormat, sample: Sample, image: np.ndarray, angle_deg: float, center: str = "image",
    border: str = "reflect",
) -> tuple[Sample, np.ndarray]:
    """Rotate one sample by ``angle_deg`` (counter-clockwise on screen). Pure: no I/O."""
    rotated, affine = rotate_labels(fmt, sample, image.shape, angle_deg, center)
    return rotated, F.rotate_image(image, affine, border)


def rotated_id(sample_id: str, k: int, copies: int) -> str:
    """Keep the source name for a single copy (trainers' file lists keep working); else suffix ``_rKK``."""
    return sample_id if copies == 1 else f"{sample_id}_r{k:02d}"


@dataclass(frozen=True)
class RotateTransform:
    """The pipeline transform of ``maskbench rotate``.

    Called as ``transform(sample, image, rng)`` it yields the rotated copies. It also offers the
    two halves separately, as the pipeline prefers (labels for several samples back to back, then
    pixels): ``plan(sample, image_shape, rng)`` returns ``[(rotated sample, warp), ...]`` where
    ``warp(image)`` warps the source image for that copy.
    """

    fmt: DatasetFormat
    params: RotationParams

    def plan(self, sample: Sample, image_shape: Sequence[int],
             rng: np.random.Generator) -> list[tuple[Sample, Callable[[np.ndarray], np.ndarray]]]:
        angles = self.params.draw_angles(rng)
        out = []
        for k, angle in enumerate(angles):
            rotated, affine = rotate_labels(self.fmt, sample, image_shape, angle, self.params.center)
            warp = partial(F.rotate_image, affine=affine, border=self.params.border)
            out.append((rotated.replace(id=rotated_id(sample.id, k, len(angles))), warp))
        return out

    def __call__(self, sample: Sample, image: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[Sample, np.ndarray]]:
        for rotated, warp in self.plan(sample, image.shape, rng):
            yield rotated, warp(image)


def make_transform(fmt: DatasetFormat, params: RotationParams) -> RotateTransform:
    """The pipeline transform ``(sample, image, rng) -> [(sample, image), ...]`` (with ``plan``)."""
    return RotateTransform(fmt, params)
