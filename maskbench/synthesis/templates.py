"""Mask templates from the ``mask_templates`` package (found with importlib.resources)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskTemplate:
    """One mask type: texture (RGBA, neutral grey) and its geometry/colour description."""

    name: str
    texture_rgba: np.ndarray  # (H, W, 4) uint8, BGR + alpha
    geometry: dict[str, Any]
    colors_bgr: dict[str, tuple[int, int, int]]
    #: relative frequency of each colour (estimates; see the json's ``color_weights_note``)
    color_weights: dict[str, float]
    #: pattern name -> its real-world scale (``period_mm`` ...); empty for plain-only types
    patterns: dict[str, dict[str, float]]
    #: palette name -> (base, second) BGR colours for patterns
    palettes: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]]
    #: micro-texture: ``nonwoven``, ``woven`` or ``rubber``
    material: str
    #: ``{"kind": "ear_loop" | "head_strap", "width_mm": ..., "color": "same" | "white_unless_dark" | <name in
    #: colors> | "white" | "black"}`` (see :func:`maskbench.synthesis.straps.strap_colour`)
    straps: dict[str, Any]
    licence: str
    anchors: dict[str, Any]
    #: (H, W, 2) uint8: the texture's grey level (BT.601 of its BGR) and its alpha, what blending samples
    texture_grey_alpha: np.ndarray


def available() -> list[str]:
    """Names of the shipped templates, sorted."""
    return sorted(p.name[:-5] for p in resources.files("mask_templates").iterdir() if p.name.endswith(".json"))


@cache
def load(name: str) -> MaskTemplate:
    """Load a template by name; ValueError listing the known names when it does not exist."""
    names = available()
    if name not in names:
        raise ValueError(f"unknown mask type {name!r}; available: {', '.join(names)}")
    base = resources.files("mask_templates")
    doc = json.loads((base / f"{name}.json").read_text(encoding="utf-8"))
    data = np.frombuffer((base / doc["texture"]).read_bytes(), np.uint8)
    texture = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if texture is None or texture.ndim != 3 or texture.shape[2] != 4:
        raise ValueError(f"mask template {name}: texture {doc['texture']} is not an RGBA image")
    texture.setflags(write=False)
    grey_alpha = np.dstack([cv2.cvtColor(texture[..., :3], cv2.COLOR_BGR2GRAY), texture[..., 3]])
    grey_alpha.setflags(write=False)
    return MaskTemplate(
        name=name, texture_rgba=texture, geometry=doc["geometry"],
        colors_bgr={k: tuple(v) for k, v in doc["colors"].items()},
        color_weights={k: float(doc.get("color_weights", {}).get(k, 1.0)) for k in doc["colors"]},
        patterns={k: dict(v) for k, v in doc.get("patterns", {}).items()},
        palettes={k: (tuple(a), tuple(b)) for k, (a, b) in doc.get("palettes", {}).items()},
        material=doc.get("material", "nonwoven"), straps=dict(doc.get("straps", {})),
        licence=doc["licence"], anchors=doc["anchors"], texture_grey_alpha=grey_alpha,
    )
