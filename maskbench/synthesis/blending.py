"""Colour, pattern, shading and feathered blending of a fitted mask into the image."""

from __future__ import annotations

import cv2
import numpy as np

from maskbench.synthesis.fitting import LIGHT_DIR, Fit
from maskbench.synthesis.templates import MaskTemplate

__all__ = ["LIGHT_DIR", "blend", "pattern_albedo"]
#: Luminance of a lower face that leaves the mask colour unchanged.
REFERENCE_LUMINANCE = 150.0
FEATHER_SIGMA_PX = 0.8


def pattern_albedo(u: np.ndarray, v: np.ndarray, pattern: str, color_bgr: np.ndarray, rng_phase: float) -> np.ndarray:
    """BGR albedo (h, w, 3) in [0, 1] of a cloth pattern drawn in texture space ((h, w) coords)."""
    base = color_bgr / 255.0
    second = np.clip(1.0 - base * 0.6 + 0.1, 0, 1)  # a contrasting colour derived from the base
    if pattern == "stripes":
        on = (np.sin((v * 9 + u * 2 + rng_phase) * np.pi) > 0.3)
    elif pattern == "checks":
        on = ((np.floor(u * 12 + rng_phase) + np.floor(v * 7)) % 2) == 0
    elif pattern == "dots":
        fu, fv = (u * 16 + rng_phase) % 1 - 0.5, (v * 9) % 1 - 0.5
        on = fu**2 + fv**2 < 0.09
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return np.where(on[..., None], second, base)


def blend(
    image_bgr: np.ndarray,
    fit: Fit,
    template: MaskTemplate,
    color_bgr: tuple[int, int, int],
    pattern: str | None = None,
    pattern_phase: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the fitted mask into a copy of the image. Returns (image, occlusion map 0/255 uint8).

    The texture's grey level times the colour (or pattern) is the albedo; Lambert shading with
    :data:`LIGHT_DIR`; brightness is matched to the median luminance of the face pixels the mask
    covers; edges are feathered by a Gaussian of :data:`FEATHER_SIGMA_PX` on the alpha.
    """
    h, w = fit.covered.shape
    x0, y0 = fit.x0, fit.y0
    tex = template.texture_grey_alpha
    th, tw = tex.shape[:2]
    outside = ~fit.covered
    map_x = fit.u * np.float32(tw - 1)
    map_y = fit.v * np.float32(th - 1)
    map_x[outside] = -10.0  # sampled as the transparent border
    map_y[outside] = -10.0
    sampled = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha255 = cv2.GaussianBlur(sampled[..., 1].astype(np.float32), (0, 0), FEATHER_SIGMA_PX)  # 0..255
    inside = alpha255 > 127.5
    color = np.asarray(color_bgr, dtype=np.float32)
    if pattern:
        albedo = pattern_albedo(fit.u, fit.v, pattern, color, pattern_phase).astype(np.float32)
    else:
        albedo = color / np.float32(255.0)
    region = np.ascontiguousarray(image_bgr[y0 : y0 + h, x0 : x0 + w])
    under = fit.covered & inside
    if under.any():  # luminance of the face under the mask (BT.601 grey, as the colour weights say)
        luminance = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)[under]
        gain = float(np.clip(median_u8(luminance) / REFERENCE_LUMINANCE, 0.45, 1.25))
    else:
        gain = 1.0
    # texture grey (white = 225) x albedo x Lambert shading x gain, in 0..255
    intensity = sampled[..., 0] * ((0.55 + 0.5 * fit.shade) * np.float32(gain * 255.0 / 225.0))
    mask_bgr = intensity[..., None] * albedo
    np.minimum(mask_bgr, 255.0, out=mask_bgr)
    # alpha-blend: cv2.blendLinear divides by the weight sum, so 0..255 weights need no scaling
    blended = cv2.blendLinear(mask_bgr, region.astype(np.float32), alpha255, np.float32(255.0) - alpha255)
    blended += 0.5
    out = image_bgr.copy()
    out[y0 : y0 + h, x0 : x0 + w] = blended.astype(np.uint8)
    occlusion = np.zeros(image_bgr.shape[:2], np.uint8)
    occlusion[y0 : y0 + h, x0 : x0 + w] = inside.view(np.uint8) * np.uint8(255)
    return out, occlusion


def median_u8(values: np.ndarray) -> float:
    """``np.median`` of uint8 values from a 256-bin histogram (same result, no sort)."""
    n = len(values)
    cum = np.cumsum(np.bincount(values, minlength=256))
    lo = int(np.searchsorted(cum, (n - 1) // 2, side="right"))  # value at sorted index (n-1)//2
    hi = int(np.searchsorted(cum, n // 2, side="right"))  # value at sorted index n//2
    return (lo + hi) / 2.0
