"""Mask materials at real-world scale: micro-textures, cloth patterns, and the photo-like noise added to a mask."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

#: Weight of the mask's own Lambert term (its shape under :data:`LIGHT_DIR`) per material: fabric
#: takes the light mostly from the photo's field; a moulded rubber half-mask shows its cups and
#: cartridges by its shading, and a white sheen where it faces the light (its peak, of 255).
MATERIAL_RELIEF = {"rubber": 0.75}


MATERIAL_SHEEN = {"rubber": 0.3}


#: Micro-texture tiles: pixels per millimetre and tile size.
MICRO_PX_PER_MM = 2.0


MICRO_TILE = 128


NOISE_TILE = 512


def wrap_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a tile with periodic borders (the tile stays seamless)."""
    pad = int(np.ceil(4 * sigma))
    big = np.pad(a, pad, mode="wrap")
    return cv2.GaussianBlur(big, (0, 0), sigma)[pad:-pad, pad:-pad]


@cache
def micro_texture(material: str) -> np.ndarray:
    """A tileable (MICRO_TILE, MICRO_TILE) float32 factor around 1 at MICRO_PX_PER_MM."""
    rng = np.random.default_rng({"nonwoven": 1, "woven": 2, "rubber": 3}.get(material, 0))
    n = rng.standard_normal((MICRO_TILE, MICRO_TILE)).astype(np.float32)
    if material == "woven":  # threads 1 mm apart each way: an over/under checker, slubby
        yy, xx = np.mgrid[0:MICRO_TILE, 0:MICRO_TILE].astype(np.float32)
        weave = np.sin(xx * np.pi / 2) * np.sin(yy * np.pi / 2)
        tex = 0.06 * weave + 0.05 * wrap_blur(n, 0.8)
    elif material == "rubber":
        tex = 0.025 * wrap_blur(n, 2.0)
    else:  # non-woven: fibres clump at 0.5-2 mm
        fine = wrap_blur(n, 1.0)
        coarse = wrap_blur(rng.standard_normal((MICRO_TILE, MICRO_TILE)).astype(np.float32), 3.0)
        tex = 0.03 * fine / max(float(fine.std()), 1e-6) + 0.015 * coarse / max(float(coarse.std()), 1e-6)
    return (1.0 + tex).astype(np.float32)


@cache
def micro_tiled(material: str, size_mm: tuple[float, float]) -> np.ndarray:
    """:func:`micro_texture` tiled over a whole fabric of ``size_mm`` (u and v in [0, 1] and a pixel
    more): sampling it equals sampling the tile with wrapped borders, at a quarter of the cost
    (``cv2.remap`` wraps pixel by pixel on its slow path)."""
    tile = micro_texture(material)
    reps = [int(np.ceil((extent * MICRO_PX_PER_MM + 2) / MICRO_TILE)) for extent in (size_mm[1], size_mm[0])]
    return np.ascontiguousarray(np.tile(tile, reps))


def pattern_albedo(u: np.ndarray, v: np.ndarray, pattern: str, color_bgr: np.ndarray, rng_phase: float,
                   second_bgr: np.ndarray | None = None, size_mm: tuple[float, float] = (180.0, 110.0),
                   spec: dict[str, float] | None = None) -> np.ndarray:
    """BGR albedo (h, w, 3) in [0, 1] of a cloth pattern at real-world scale.

    ``u, v`` are texture coordinates, ``size_mm`` the fabric's width and height, so a stripe or
    check period is in millimetres (``spec``: ``period_mm``, ``duty``, ``diameter_mm``).
    """
    spec = spec or {}
    base = np.asarray(color_bgr, np.float32) / 255.0
    second = (np.clip(1.0 - base * 0.6 + 0.1, 0, 1) if second_bgr is None
              else np.asarray(second_bgr, np.float32) / 255.0)
    period = float(spec.get("period_mm", 8.0))
    x = u * np.float32(size_mm[0] / period) + np.float32(rng_phase)
    y = v * np.float32(size_mm[1] / period)
    if pattern == "stripes":
        on = (y + 0.3 * x) % 1.0 < float(spec.get("duty", 0.5))
        return np.where(on[..., None], second, base)
    if pattern in ("gingham", "checks"):  # warp and weft bands; where both cross the colour is the deepest
        a = (x % 1.0 < 0.5).astype(np.float32)[..., None]
        b = (y % 1.0 < 0.5).astype(np.float32)[..., None]
        mix = (a + b) / 2.0
        return second + (base - second) * mix
    if pattern == "dots":
        radius = float(spec.get("diameter_mm", 3.0)) / period / 2.0
        fx, fy = x % 1.0 - 0.5, (y + 0.5 * np.floor(x)) % 1.0 - 0.5
        on = fx * fx + fy * fy < radius * radius
        return np.where(on[..., None], second, base)
    raise ValueError(f"unknown pattern {pattern!r}")


@cache
def noise_tile() -> np.ndarray:
    """Unit Gaussian noise, (NOISE_TILE, NOISE_TILE) float32, made once per process (fixed seed)."""
    return np.random.default_rng(12345).standard_normal((NOISE_TILE, NOISE_TILE), dtype=np.float32)


def noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """(h, w) Gaussian noise of ``sigma``: a window of the tile at a seeded offset, flip and transpose
    (as white as fresh draws for a face-sized patch, and free)."""
    tile = noise_tile()
    ox, oy, flip = (int(v) for v in rng.integers(0, [NOISE_TILE, NOISE_TILE, 8]))
    if flip & 4:
        tile = tile.T
    if h <= NOISE_TILE and w <= NOISE_TILE:
        oy, ox = oy % (NOISE_TILE - h + 1), ox % (NOISE_TILE - w + 1)
        win = tile[oy : oy + h, ox : ox + w]
    else:  # a face larger than the tile: wrap around
        win = tile[np.ix_((oy + np.arange(h)) % NOISE_TILE, (ox + np.arange(w)) % NOISE_TILE)]
    if flip & 1:
        win = win[::-1]
    if flip & 2:
        win = win[:, ::-1]
    return win * np.float32(sigma)
