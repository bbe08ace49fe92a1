"""The ``synthesize`` transform: one mask per face, chosen and coloured by the per-sample generator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache, partial

import cv2
import numpy as np

from maskbench.datasets.base import DatasetError
from maskbench.io.labels import MISSED_SOURCE
from maskbench.synthesis import templates
from maskbench.synthesis.blending import blend
from maskbench.synthesis.fitting import fit_mask
from maskbench.synthesis.jpeg import jpeg_quality_of
from maskbench.synthesis.landmark_pose import landmark_rotation
from maskbench.synthesis.landmarks import DEFAULT_SOURCE, READS_ANNOTATION, SOURCES, NoLandmarks, landmarks_for
from maskbench.synthesis.occluders import Chroma, skin_chroma
from maskbench.types import Sample

#: Landmark groups under a mask that are not skin: the lips and the nostrils.
NOT_SKIN_GROUPS = (list(range(48, 60)), [31, 32, 33, 34, 35, 30])

#: How far their landmark hulls grow to cover the skin beside them that is not the covered skin's
#: colour (the lip line, the nostrils' shadow). Chosen (4 mm); not fitted.
NOT_SKIN_GROW_MM = 4.0

#: This face's skin outside the mask: the nose above the nostrils (its landmarks' hull).
NOSE = list(range(27, 36))


@dataclass(frozen=True)
class SynthesisParams:
    """Options of ``maskbench synthesize``; every field goes into the manifest."""

    mask_types: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    landmarks: str = DEFAULT_SOURCE
    pattern_probability: float = 0.3
    occluders: bool = True

    def __post_init__(self) -> None:
        known = templates.available()
        types = self.mask_types or tuple(known)
        unknown = [t for t in types if t not in known]
        if unknown:
            raise ValueError(f"unknown mask type(s) {', '.join(unknown)}; available: {', '.join(known)}")
        object.__setattr__(self, "mask_types", tuple(types))
        if self.landmarks not in SOURCES:
            raise ValueError(f"--landmarks must be one of {', '.join(SOURCES)}, got {self.landmarks!r}")
        for t in types:
            if self.colors and not set(self.colors) & set(templates.load(t).colors_bgr):
                raise ValueError(
                    f"none of the colours {', '.join(self.colors)} exists for mask type {t}; "
                    f"its colours are {', '.join(templates.load(t).colors_bgr)}"
                )

    @property
    def masks_carry_annotation(self) -> bool:
        """Whether the landmark source reads the annotation (:data:`READS_ANNOTATION`)."""
        return self.landmarks in READS_ANNOTATION

    def as_dict(self) -> dict[str, object]:
        return {"mask_types": list(self.mask_types), "colors": list(self.colors) or "all",
                "landmarks": self.landmarks, "masks_carry_annotation": self.masks_carry_annotation,
                "pattern_probability": self.pattern_probability,
                "occluders": self.occluders}


def mask_sample(sample: Sample, image: np.ndarray, rng: np.random.Generator,
                params: SynthesisParams) -> tuple[Sample, np.ndarray]:
    """Mask one face. Raises DatasetError (counted as skipped, with the reason) when impossible."""
    mask_type = params.mask_types[int(rng.integers(len(params.mask_types)))]
    tpl = templates.load(mask_type)
    names = [c for c in tpl.colors_bgr if not params.colors or c in params.colors]
    weights = np.array([tpl.color_weights[c] for c in names], np.float64)
    color = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    color_bgr, second, pattern, label = tpl.colors_bgr[color], None, None, color
    if tpl.patterns and tpl.palettes and not params.colors and rng.random() < params.pattern_probability:
        pattern = sorted(tpl.patterns)[int(rng.integers(len(tpl.patterns)))]
        palette = sorted(tpl.palettes)[int(rng.integers(len(tpl.palettes)))]
        color_bgr, second = tpl.palettes[palette]
        label = f"{pattern}/{palette}"
    phase = float(rng.uniform(0, 1))
    try:
        landmarks, source = landmarks_for(sample, image, params.landmarks)
    except NoLandmarks as exc:
        if params.landmarks == "detected":
            return unmasked(sample, image.shape, str(exc)), image
        raise DatasetError(sample.image_path, f"no landmarks from source {params.landmarks!r}: {exc}") from None
    h, w = image.shape[:2]
    inside = (landmarks[:, 0] >= 0) & (landmarks[:, 0] < w) & (landmarks[:, 1] >= 0) & (landmarks[:, 1] < h)
    if not inside.any():
        raise DatasetError(sample.image_path, f"all 68 {source} landmarks lie outside the {w}x{h} image")
    if source == "pose":  # the generic face posed with the label: the one route that reads it
        rotation = sample.pose.matrix
    else:  # the pose the landmarks show: the mask carries nothing of the label
        try:
            rotation = landmark_rotation(landmarks)
        except ValueError as exc:
            raise DatasetError(sample.image_path, f"{source} landmarks: {exc}") from None
    fit = fit_mask(mask_type, rotation, landmarks, image.shape)
    if fit is None:
        raise DatasetError(sample.image_path, f"{mask_type} mask not visible at this pose (facing away?)")
    lips_nostrils = not_skin(landmarks, image.shape, fit.px_per_mm) if params.occluders else None
    skin_elsewhere = partial(nose_chroma, image, landmarks, lips_nostrils) if params.occluders else None  # if needed
    out, occlusion, blocked = blend(image, fit, tpl, color_bgr, pattern, phase, second_bgr=second, rng=rng,
                                    jpeg_quality=_source_quality(sample), occluders=params.occluders,
                                    keep_out=lips_nostrils, skin_elsewhere=skin_elsewhere)
    extra = dict(sample.extra)
    extra.update({"mask_type": mask_type, "mask_color": label, "landmark_source": source, "occluder_px": blocked})
    aux = dict(sample.aux_images)
    aux["occlusion"] = occlusion
    return sample.replace(extra=extra, aux_images=aux), out


def unmasked(sample: Sample, shape: tuple[int, ...], why: str) -> Sample:
    """A face the detector missed, as written: unmasked (``mask_type`` ``none``, ``landmark_source``
    :data:`~maskbench.io.labels.MISSED_SOURCE`), an empty occlusion map, the reason kept; never masked from the
    annotation instead."""
    extra = dict(sample.extra)
    extra.update({"mask_type": "none", "mask_color": "", "landmark_source": MISSED_SOURCE, "occluder_px": 0, "missed": why})
    aux = dict(sample.aux_images)
    aux["occlusion"] = np.zeros(shape[:2], np.uint8)
    return sample.replace(extra=extra, aux_images=aux)


def _source_quality(sample: Sample) -> int | None:
    path = sample.image_path
    if path is None or str(path).lower().endswith((".png", ".bmp")):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _quality_of_file(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1 << 16)
def _quality_of_file(path: str, mtime_ns: int, size: int) -> int | None:
    """The file's JPEG quality, read once per version of the file (training masks the same files
    every epoch)."""
    return jpeg_quality_of(path)


def not_skin(landmarks: np.ndarray, shape: tuple[int, ...], px_per_mm: float) -> np.ndarray:
    """Full-image bool map of the lips and nostrils (their landmark hulls grown by :data:`NOT_SKIN_GROW_MM`)."""
    out = np.zeros(shape[:2], bool)
    grow = max(1, int(round(NOT_SKIN_GROW_MM * px_per_mm)))
    hulls = []
    for group in NOT_SKIN_GROUPS:
        pts = landmarks[group]
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts) >= 3:
            hulls.append(cv2.convexHull(np.round(pts).astype(np.int32)))
    if not hulls:
        return out
    # drawn and grown in the hulls' own box (grown by a margin; cut by the image, whose edge stops
    # the growth as it does on the whole image), then placed
    every = np.concatenate(hulls).reshape(-1, 2)
    x0, y0 = np.maximum(every.min(axis=0) - grow - 1, 0)
    x1, y1 = np.minimum(every.max(axis=0) + grow + 2, (shape[1], shape[0]))
    if x1 <= x0 or y1 <= y0:
        return out
    small = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for hull in hulls:
        cv2.fillConvexPoly(small, hull - np.array([x0, y0], np.int32), 1)
    out[y0:y1, x0:x1] = cv2.dilate(small, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).view(bool)
    return out


def nose_chroma(image: np.ndarray, landmarks: np.ndarray, lips_nostrils: np.ndarray) -> Chroma | None:
    """Median (Cr, Cb) and spread of the nose's skin above the nostrils (its landmark hull minus
    ``lips_nostrils``, a full-image map from :func:`not_skin`): skin of this face that neither a
    mask nor, mostly, a hand hides, lit as the face is. None when too little of it shows."""
    pts = landmarks[NOSE]
    pts = np.round(pts[np.isfinite(pts).all(axis=1)]).astype(np.int32)
    if len(pts) < 3:
        return None
    h, w = image.shape[:2]
    x0, y0 = np.maximum(pts.min(axis=0), 0)
    x1, y1 = np.minimum(pts.max(axis=0) + 1, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    where = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(where, cv2.convexHull(pts - np.array([x0, y0], np.int32)), 1)
    where[lips_nostrils[y0:y1, x0:x1]] = 0
    return skin_chroma(image[y0:y1, x0:x1], where)


def make_transform(params: SynthesisParams):  # type: ignore[no-untyped-def]
    """A pipeline transform ``(sample, image, rng) -> [(masked sample, image)]``."""

    def transform(sample: Sample, image: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[Sample, np.ndarray]]:
        yield mask_sample(sample, image, rng, params)

    return transform


def _index(*ranges: range) -> np.ndarray:
    out = np.concatenate([np.arange(r.start, r.stop) for r in ranges])
    out.flags.writeable = False
    return out


#: The 68-point groups placement is measured with (:func:`landmarks_inside`): the mouth and the lower
#: nose belong under a mask, the eyes do not.
MOUTH_AND_LOWER_NOSE = _index(range(48, 68), range(31, 36))
EYES = _index(range(36, 48))


def landmarks_inside(occlusion: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """For each point inside the image, whether the occlusion map covers it (points off the image
    are left out): how placement is measured on photos (mouth and nose under the mask, eyes not)."""
    h, w = occlusion.shape
    xy = np.round(points_px).astype(int)
    ok = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    hit = np.zeros(len(points_px), bool)
    hit[ok] = occlusion[xy[ok, 1], xy[ok, 0]] > 0
    return hit[ok]
