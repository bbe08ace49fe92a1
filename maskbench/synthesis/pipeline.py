"""The ``synthesize`` transform: one mask per face, chosen and coloured by the per-sample generator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from maskbench.datasets.base import DatasetError
from maskbench.synthesis import templates
from maskbench.synthesis.blending import blend
from maskbench.synthesis.fitting import fit_mask
from maskbench.synthesis.landmarks import SOURCES, NoLandmarks, landmarks_for
from maskbench.types import Sample


@dataclass(frozen=True)
class SynthesisParams:
    """Options of ``maskbench synthesize``; every field goes into the manifest."""

    mask_types: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    landmarks: str = "auto"
    pattern_probability: float = 0.5

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

    def as_dict(self) -> dict[str, object]:
        return {"mask_types": list(self.mask_types), "colors": list(self.colors) or "all",
                "landmarks": self.landmarks, "pattern_probability": self.pattern_probability}


def mask_sample(sample: Sample, image: np.ndarray, rng: np.random.Generator,
                params: SynthesisParams) -> tuple[Sample, np.ndarray]:
    """Mask one face. Raises DatasetError (counted as skipped, with the reason) when impossible."""
    mask_type = params.mask_types[int(rng.integers(len(params.mask_types)))]
    tpl = templates.load(mask_type)
    names = [c for c in tpl.colors_bgr if not params.colors or c in params.colors]
    color = names[int(rng.integers(len(names)))]
    pattern = None
    if tpl.patterns and rng.random() < params.pattern_probability:
        pattern = tpl.patterns[int(rng.integers(len(tpl.patterns)))]
    phase = float(rng.uniform(0, 1))
    try:
        landmarks, source = landmarks_for(sample, image, params.landmarks)
    except NoLandmarks as exc:
        raise DatasetError(sample.image_path, f"no landmarks from source {params.landmarks!r}: {exc}") from None
    h, w = image.shape[:2]
    inside = (landmarks[:, 0] >= 0) & (landmarks[:, 0] < w) & (landmarks[:, 1] >= 0) & (landmarks[:, 1] < h)
    if not inside.any():
        raise DatasetError(sample.image_path, f"all 68 {source} landmarks lie outside the {w}x{h} image")
    fit = fit_mask(mask_type, sample.pose.matrix, landmarks, image.shape)
    if fit is None:
        raise DatasetError(sample.image_path, f"{mask_type} mask not visible at this pose (facing away?)")
    out, occlusion = blend(image, fit, tpl, tpl.colors_bgr[color], pattern, phase)
    extra = dict(sample.extra)
    extra.update({"mask_type": mask_type, "mask_color": f"{pattern}/{color}" if pattern else color,
                  "landmark_source": source})
    aux = dict(sample.aux_images)
    aux["occlusion"] = occlusion
    return sample.replace(extra=extra, aux_images=aux), out


def make_transform(params: SynthesisParams):  # type: ignore[no-untyped-def]
    """A pipeline transform ``(sample, image, rng) -> [(masked sample, image)]``."""

    def transform(sample: Sample, image: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[Sample, np.ndarray]]:
        yield mask_sample(sample, image, rng, params)

    return transform
