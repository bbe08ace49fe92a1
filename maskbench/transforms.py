"""Masks and exact in-plane rotation for your own training loop (the albumentations pattern).

A transform is called on one *record* and returns a new record (the input is not modified)::

    from maskbench.transforms import Compose, RandomInPlaneRotation, RandomMask

    augment = Compose([RandomMask(p=0.5), RandomInPlaneRotation(range_deg=(-45, 45))])
    out = augment(record, rng=np.random.default_rng([seed, epoch, index]))

A record is a plain dict:

``image``
    (H, W, 3) uint8 array; colour order given by ``color`` (``"BGR"``, OpenCV's, the default, or
    ``"RGB"``); outputs keep the input's order.
``pose``
    a :class:`~maskbench.types.HeadPose`, or a dict ``{"yaw_deg", "pitch_deg", "roll_deg"}`` in the
    maskbench convention (:mod:`maskbench.geometry`: the AFLW2000/300W_LP ``Pose_Para`` numbers).
    Outputs hold a ``HeadPose``.
``landmarks`` (optional)
    (68, 2) float pixels (iBUG order). Needed by ``RandomMask(landmarks="gt")``.
``box`` (optional)
    a :class:`~maskbench.types.BBox` or ``(x_min, y_min, x_max, y_max)`` pixels; else the box of the
    landmarks. Outputs hold a ``BBox``.
``camera`` (optional)
    3x3 intrinsics of pinhole data (BIWI); with ``head_center_mm`` (3,) a face-centred rotation
    gets BIWI's perspective correction.
``id`` (optional)
    a string; with no ``rng`` passed, a transform seeds itself from ``(seed, id)``, so any record is
    reproducible alone and the result does not depend on DataLoader workers or order.

Outputs add ``occlusion`` ((H, W) bool, True where a mask covers the face; rotated with the image)
and append the transform's parameters to ``params`` (a list of dicts, one per transform applied or
skipped). Keys starting with ``_`` are internal (records from :func:`maskbench.open_dataset` carry
the dataset sample there, so a rotation re-encodes labels exactly as ``maskbench rotate`` does).

Randomness comes only from the ``numpy.random.Generator`` passed in, or from one derived from
``(seed, id)``: with ``RandomMask(seed=s)`` and no ``rng`` the mask is the one ``maskbench synthesize
--seed s`` draws for that id (same bytes); with ``RandomInPlaneRotation(seed=s)`` the angle is the one
``maskbench rotate --seed s`` draws. No file I/O, no global state: safe in worker processes.

Bad input raises ``ValueError`` naming the field (wrong dtype or shape, landmarks of the wrong count,
a NaN pose), never a silently wrong label.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from maskbench.augment import functional as F
from maskbench.augment.rotation import RotationParams, rotate_labels
from maskbench.datasets.base import DatasetError, DatasetFormat
from maskbench.io.labels import MISSED_SOURCE
from maskbench.seeding import sample_rng
from maskbench.synthesis.landmarks import DEFAULT_SOURCE
from maskbench.synthesis.mask import SynthesisParams, mask_sample
from maskbench.types import BBox, HeadPose, Sample

__all__ = ["Compose", "RandomInPlaneRotation", "RandomMask", "Record", "check_record"]

Record = dict[str, Any]
COLOR_ORDERS = ("BGR", "RGB")


# ------------------------------------------------------------------------------------------
# Record checking and the record <-> Sample bridge (internal)
# ------------------------------------------------------------------------------------------
def _pose(value: Any) -> HeadPose:
    if isinstance(value, HeadPose):
        return value
    if isinstance(value, Mapping):
        try:
            angles = {k: float(value[k]) for k in ("yaw_deg", "pitch_deg", "roll_deg")}
        except (KeyError, TypeError, ValueError):
            raise ValueError("record field 'pose': a dict needs numbers yaw_deg, pitch_deg, roll_deg "
                             f"(got keys {sorted(value)})") from None
        bad = [k for k, v in angles.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"record field 'pose': {', '.join(bad)} not finite")
        return HeadPose.from_euler_deg(**angles)
    raise ValueError(f"record field 'pose': expected a HeadPose or a yaw/pitch/roll dict, got {type(value).__name__}")


def _points(value: Any) -> np.ndarray:
    pts = np.asarray(value, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"record field 'landmarks': expected (68, 2) pixels, got shape {pts.shape}")
    return pts


def _box(value: Any) -> BBox:
    if isinstance(value, BBox):
        return value
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (4,) or not np.isfinite(arr).all() or arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise ValueError(f"record field 'box': expected finite (x_min, y_min, x_max, y_max) with max > min, got {value!r}")
    return BBox(*(float(v) for v in arr))


def check_record(record: Mapping[str, Any]) -> Record:
    """A checked copy of a record: ``image`` uint8 (H, W, 3), ``color`` BGR or RGB, ``pose`` a HeadPose,
    ``landmarks`` (68, 2), ``box`` a BBox (from the landmarks when absent), ``camera`` 3x3.
    Raises ValueError naming the first bad field."""
    if not isinstance(record, Mapping):
        raise ValueError(f"a record is a dict, got {type(record).__name__}")
    out = dict(record)
    image = out.get("image")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"record field 'image': expected an (H, W, 3) uint8 array, got {got}")
    color = out.setdefault("color", "BGR")
    if color not in COLOR_ORDERS:
        raise ValueError(f"record field 'color': {color!r}; expected BGR or RGB")
    if "pose" not in out:
        raise ValueError("record field 'pose' is missing")
    out["pose"] = _pose(out["pose"])
    if out.get("landmarks") is not None:
        out["landmarks"] = _points(out["landmarks"])
    if out.get("box") is not None:
        out["box"] = _box(out["box"])
    elif out.get("landmarks") is not None:
        out["box"] = BBox.from_points(out["landmarks"])
        out["_box_from_landmarks"] = True
    if out.get("camera") is not None:
        cam = np.asarray(out["camera"], dtype=np.float64)
        if cam.shape != (3, 3) or not np.isfinite(cam).all():
            raise ValueError(f"record field 'camera': expected finite 3x3 intrinsics, got shape {cam.shape}")
        out["camera"] = cam
    if out.get("id") is not None and not isinstance(out["id"], str):
        raise ValueError(f"record field 'id': expected a string, got {type(out['id']).__name__}")
    return out


def _as_sample(rec: Record) -> tuple[Sample, DatasetFormat | None]:
    """The Sample (and its dataset format; None for a plain record) behind a checked record."""
    sample, fmt = rec.get("_sample"), rec.get("_format")
    if isinstance(sample, Sample) and fmt is not None:
        return sample.replace(pose=rec["pose"], landmarks_px=rec.get("landmarks"), bbox=rec.get("box", sample.bbox)), fmt
    box = rec.get("box")
    if box is None:
        h, w = rec["image"].shape[:2]
        box = BBox(0.0, 0.0, float(w), float(h))
    camera = rec.get("camera")
    center = None if camera is None or rec.get("head_center_mm") is None else np.asarray(rec["head_center_mm"],
                                                                                           dtype=np.float64)
    return Sample(rec.get("id") or "record", Path(), rec["pose"], box, rec.get("landmarks"),
                  camera_matrix=camera, head_center_mm=center), None


def _from_sample(rec: Record, sample: Sample, fmt: Any, image: np.ndarray, params: dict[str, Any]) -> Record:
    """The output record: ``image`` already in the record's colour order."""
    out = dict(rec)
    out["image"] = image
    out["pose"] = sample.pose
    out["box"] = sample.bbox
    if sample.landmarks_px is not None:
        out["landmarks"] = sample.landmarks_px
    if sample.head_center_mm is not None and "head_center_mm" in rec:
        out["head_center_mm"] = np.asarray(sample.head_center_mm)
    if "occlusion" in sample.aux_images:
        out["occlusion"] = sample.aux_images["occlusion"] > 0
    if "_sample" in rec:
        out["_sample"], out["_format"] = sample, fmt
    out["params"] = [*rec.get("params", []), params]
    return out


def _bgr(rec: Record) -> np.ndarray:
    return rec["image"] if rec["color"] == "BGR" else cv2.cvtColor(rec["image"], cv2.COLOR_RGB2BGR)


def _rng_for(rec: Record, rng: np.random.Generator | None, seed: int, purpose: str) -> np.random.Generator:
    if rng is not None:
        return rng
    if not rec.get("id"):
        raise ValueError("pass rng=numpy.random.Generator, or give the record an 'id' to seed it from")
    return sample_rng(seed, rec["id"], purpose)


def _skipped(rec: Record, name: str, **why: str) -> Record:
    return {**rec, "params": [*rec.get("params", []), {"name": name, "applied": False, **why}]}


def _begin(record: Mapping[str, Any], rng: np.random.Generator | None, seed: int, purpose: str, p: float,
           name: str) -> tuple[Record, np.random.Generator, Record | None]:
    """Check the record, pick its generator and toss the ``p`` coin (from the passed generator, or a
    separate per-id one so that the draws after it equal the command line's). Returns the checked
    record, the generator and, when the coin says no, the output record already."""
    rec = check_record(record)
    gen = _rng_for(rec, rng, seed, purpose)
    if p < 1.0:
        coin = gen if rng is not None else sample_rng(seed, rec["id"], f"{purpose}/p")
        if coin.random() >= p:
            return rec, gen, _skipped(rec, name)
    return rec, gen, None


def _with_occlusion(sample: Sample, rec: Record) -> Sample:
    """A sample carrying the record's occlusion map (0/255 uint8), so a rotation moves it too."""
    occ = rec.get("occlusion")
    if occ is None:
        return sample
    return sample.replace(aux_images={**sample.aux_images, "occlusion": np.asarray(occ, dtype=np.uint8) * 255})


# ------------------------------------------------------------------------------------------
# The transforms
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RandomMask:
    """Fit a synthetic face mask to the face (pose-aware; see the README's Masks section).

    Args:
        mask_types: names to draw from (``surgical``, ``n95``, ``kn95``, ``cloth``, ``respirator``);
            empty = all.
        colors: colour names to draw from; empty = each template's colours.
        p: probability of masking a record (1.0: always; the coin is drawn before anything else).
        landmarks: ``"detected"`` (RetinaFace finds the face, 3DDFA_V2 places 68 landmarks: nothing of
            the annotation in the mask; a face it misses is left unmasked), ``"gt"`` (the record's
            landmarks), ``"dlib"`` (dlib's predictor on the face box) or ``"pose"`` (the generic face
            posed with the label); see :mod:`maskbench.synthesis.landmarks`.
        seed: seeds records that come without ``rng`` (from their ``id``).
        on_failure: ``"skip"`` (the record is returned unmasked, the reason in its params) or
            ``"raise"`` (ValueError), when a face cannot be masked (no landmarks, facing away).
        occluders: keep what is in front of the lower face and is not its skin on top of the mask
            (``maskbench synthesize --no-occluders`` is ``False``).
    """

    #: the seeding purpose of its per-id draws: ``maskbench synthesize`` seeds with the same one, so a
    #: record masked here with ``seed=s`` and no rng equals the command's output for that id
    purpose: ClassVar[str] = "synthesize"

    mask_types: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    p: float = 1.0
    landmarks: str = DEFAULT_SOURCE
    seed: int = 0
    on_failure: str = "skip"
    occluders: bool = True
    _params: SynthesisParams = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        if self.on_failure not in ("skip", "raise"):
            raise ValueError(f"on_failure must be skip or raise, got {self.on_failure!r}")
        object.__setattr__(self, "_params", SynthesisParams(tuple(self.mask_types), tuple(self.colors), self.landmarks,
                                                            occluders=self.occluders))

    def __call__(self, record: Mapping[str, Any], rng: np.random.Generator | None = None) -> Record:
        rec, gen, skipped = _begin(record, rng, self.seed, self.purpose, self.p, "RandomMask")
        if skipped is not None:
            return skipped
        sample, fmt = _as_sample(rec)
        try:
            masked, image = mask_sample(_with_occlusion(sample, rec), _bgr(rec), gen, self._params)
        except DatasetError as exc:
            if self.on_failure == "raise":
                raise ValueError(f"record {rec.get('id', '')!r} cannot be masked: {exc.problem}") from None
            return _skipped(rec, "RandomMask", reason=exc.problem)
        if masked.extra["landmark_source"] == MISSED_SOURCE:
            if self.on_failure == "raise":
                raise ValueError(f"record {rec.get('id', '')!r} cannot be masked: the face detector missed it")
            return _skipped(rec, "RandomMask", reason="the face detector missed it")
        params = {"name": "RandomMask", "applied": True,
                  **{k: masked.extra[k] for k in ("mask_type", "mask_color", "landmark_source", "occluder_px")}}
        if rec["color"] == "RGB":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return _from_sample(rec, masked, fmt, image, params)


@dataclass(frozen=True)
class RandomInPlaneRotation:
    """Rotate the image in-plane and recompute yaw, pitch and roll exactly (camera roll composed with
    the pose, decomposed again; never added to roll by hand).

    Args:
        range_deg: (lo, hi) degrees, counter-clockwise on screen, drawn uniformly.
        choices_deg: a list to draw one angle from uniformly instead of the range.
        p: probability of rotating a record.
        center: ``"image"`` (the principal point when ``camera`` is given, else the image centre:
            exact) or ``"face"`` (the box centre: exact for orthographic labels; with a camera
            corrected to first order, the correction in the params).
        border: ``"reflect"``, ``"constant"`` or ``"replicate"``.
        seed: seeds records that come without ``rng`` (from their ``id``: the angle of
            ``maskbench rotate --seed`` for that id).
        angles_deg: deprecated name of ``choices_deg`` (kept for one release; in
            :class:`~maskbench.augment.rotation.RotationParams` ``angles_deg`` is a sweep).

    The parameters are one :class:`~maskbench.augment.rotation.RotationParams` (``params``), the
    type ``maskbench rotate`` uses, so both validate and draw alike.
    """

    #: the seeding purpose of its per-id draws, shared with ``maskbench rotate``
    purpose: ClassVar[str] = "rotate"

    range_deg: tuple[float, float] = (-45.0, 45.0)
    angles_deg: tuple[float, ...] | None = None
    p: float = 1.0
    center: str = "image"
    border: str = "reflect"
    seed: int = 0
    choices_deg: tuple[float, ...] | None = None
    params: RotationParams = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        choices = self.choices_deg
        if self.angles_deg is not None:
            warnings.warn("RandomInPlaneRotation(angles_deg=...) is deprecated: use choices_deg (one angle drawn "
                          "from the list per record)", DeprecationWarning, stacklevel=3)
            if choices is not None:
                raise ValueError("give choices_deg, not angles_deg as well")
            choices = self.angles_deg
        object.__setattr__(self, "params", RotationParams(  # frozen: set once, here
            range_deg=tuple(self.range_deg), choices_deg=None if choices is None else tuple(choices),  # type: ignore[arg-type]
            center=self.center, border=self.border))

    def draw_angle(self, rng: np.random.Generator) -> float:
        return self.params.draw_angles(rng)[0]

    def __call__(self, record: Mapping[str, Any], rng: np.random.Generator | None = None) -> Record:
        rec, gen, skipped = _begin(record, rng, self.seed, self.purpose, self.p, "RandomInPlaneRotation")
        if skipped is not None:
            return skipped
        return self._rotate(rec, self.draw_angle(gen))

    def rotate(self, record: Mapping[str, Any], angle_deg: float) -> Record:
        """Rotate a record by a given angle (the deterministic half of ``__call__``)."""
        return self._rotate(check_record(record), angle_deg)

    def _rotate(self, rec: Record, angle_deg: float) -> Record:
        """:meth:`rotate` of a record :func:`check_record` has already checked."""
        sample, fmt = _as_sample(rec)
        if rec.get("landmarks") is None and fmt is not None and fmt.name != "BIWI":
            raise ValueError("record field 'landmarks' is needed to rotate this dataset's labels")
        rotated, affine = rotate_labels(fmt, _with_occlusion(sample, rec), rec["image"].shape, angle_deg, self.center)
        if fmt is None and rec.get("_box_from_landmarks"):  # the box stays the landmarks' tight box
            rotated = rotated.replace(bbox=BBox.from_points(rotated.landmarks_px))
        image = F.rotate_image(rec["image"], affine, self.border)
        params = {"name": "RandomInPlaneRotation", "applied": True, "angle_deg": angle_deg, "center": self.center,
                  "perspective_correction_deg": rotated.extra["perspective_correction_deg"]}
        out = _from_sample(rec, rotated, fmt, image, params)
        if rec.get("camera") is not None:
            out["camera"] = rec["camera"]  # intrinsics do not move
        return out


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order. With ``rng``, each gets its own child generator (``rng.spawn``), so
    adding a transform does not change the draws of the ones before it."""

    transforms: Sequence[Callable[..., Record]]

    def __call__(self, record: Mapping[str, Any], rng: np.random.Generator | None = None) -> Record:
        out = check_record(record)
        children = rng.spawn(len(self.transforms)) if rng is not None else [None] * len(self.transforms)
        for transform, child in zip(self.transforms, children):
            out = transform(out, rng=child)
        return out
