"""Colour, pattern, shading and feathered blending of a fitted mask into the image."""

from __future__ import annotations

import cv2
import numpy as np

from maskbench.synthesis.fitting import Fit
from maskbench.synthesis.templates import MaskTemplate

#: Light direction in the camera frame (travelling from upper left, slightly from the camera).
LIGHT_DIR = np.array([0.25, 0.45, 1.0]) / np.linalg.norm([0.25, 0.45, 1.0])
#: Luminance of a lower face that leaves the mask colour unchanged.
REFERENCE_LUMINANCE = 150.0
FEATHER_SIGMA_PX = 0.8


def pattern_albedo(uv: np.ndarray, pattern: str, color_bgr: np.ndarray, rng_phase: float) -> np.ndarray:
    """BGR albedo (h, w, 3) in [0, 1] of a cloth pattern drawn in texture space."""
    u, v = uv[..., 0], uv[..., 1]
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
    tex = template.texture_rgba
    th, tw = tex.shape[:2]
    map_x = np.where(fit.covered, fit.uv[..., 0] * (tw - 1), -10).astype(np.float32)
    map_y = np.where(fit.covered, fit.uv[..., 1] * (th - 1), -10).astype(np.float32)
    sampled = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = sampled[..., 3].astype(np.float32) * (fit.covered / np.float32(255.0))
    alpha = cv2.GaussianBlur(alpha, (0, 0), FEATHER_SIGMA_PX)
    color = np.asarray(color_bgr, dtype=np.float32)
    if pattern:
        albedo = pattern_albedo(fit.uv, pattern, color, pattern_phase).astype(np.float32)
    else:
        albedo = color / np.float32(255.0)
    lambert = np.clip(-(fit.normal_cam @ LIGHT_DIR.astype(np.float32)), 0.0, 1.0)
    region = image_bgr[y0 : y0 + h, x0 : x0 + w]
    under = fit.covered & (alpha > 0.5)
    if under.any():  # luminance of the face under the mask (BT.601 grey, as the colour weights say)
        luminance = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_BGR2GRAY)[under]
        gain = float(np.clip(np.median(luminance) / REFERENCE_LUMINANCE, 0.45, 1.25))
    else:
        gain = 1.0
    # texture grey (white = 225) x albedo x shading x gain, in 0..255
    factor = (0.55 + 0.5 * lambert) * np.float32(gain * 255.0 / 225.0)
    mask_rgb = sampled[..., :3] * (factor[..., None] * albedo)
    np.minimum(mask_rgb, 255.0, out=mask_rgb)
    region_f = region.astype(np.float32)
    out = image_bgr.copy()
    out[y0 : y0 + h, x0 : x0 + w] = (region_f + (mask_rgb - region_f) * alpha[..., None] + 0.5).astype(np.uint8)
    occlusion = np.zeros(image_bgr.shape[:2], np.uint8)
    occlusion[y0 : y0 + h, x0 : x0 + w] = np.where(alpha > 0.5, 255, 0).astype(np.uint8)
    return out, occlusion
