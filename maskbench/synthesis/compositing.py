"""Pixel steps of drawing a mask into a photo: boxes, colour in the photo's light, alpha blending and placing a patch."""

from __future__ import annotations

import math

import cv2
import numpy as np

from maskbench.synthesis.fitting import Fit
from maskbench.synthesis.jpeg import jpeg_like
from maskbench.synthesis.photometry import Look


def line_box(line: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper exclusive) integer pixel corners of a polyline's bounding box, grown by ``pad``."""
    (x0, y0), (x1, y1) = line.min(axis=0).tolist(), line.max(axis=0).tolist()  # Python floats: 9 numpy calls less
    return (np.array([math.floor(x0) - pad, math.floor(y0) - pad]),
            np.array([math.ceil(x1) + pad + 1, math.ceil(y1) + pad + 1]))


def union_box(fit: Fit, image_shape: tuple[int, ...], pad: int) -> tuple[int, int, int, int]:
    h, w = fit.covered.shape
    x0, y0, x1, y1 = fit.x0, fit.y0, fit.x0 + w, fit.y0 + h
    for line in fit.straps_px:
        lo, hi = line_box(line, pad)
        x0, y0, x1, y1 = min(x0, lo[0]), min(y0, lo[1]), max(x1, hi[0]), max(y1, hi[1])
    ih, iw = image_shape[:2]
    return max(x0, 0), max(y0, 0), min(x1, iw), min(y1, ih)


def blended_patch(region: np.ndarray, mask_bgr: np.ndarray, alpha: np.ndarray,
                   crease: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the box's pixels with the mask blended in, uint8; alpha x 255); ``crease`` (0..1 per pixel):
    how much darker the photo shows beside the mask. Uses up ``mask_bgr`` and ``crease``."""
    np.clip(mask_bgr, 0.0, 255.0, out=mask_bgr)
    a255 = alpha * np.float32(255.0)
    under = region.astype(np.float32)
    np.subtract(np.float32(1.0), crease, out=crease)
    under *= grey3(crease)
    blended = cv2.blendLinear(mask_bgr, under, a255, np.float32(255.0) - a255, dst=under)
    blended += 0.5
    return blended.astype(np.uint8), a255


def placed(image_bgr: np.ndarray, patch: np.ndarray, a255: np.ndarray, box: tuple[int, int, int, int],
            jpeg_quality: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the image with the blended ``patch`` in ``box`` (JPEG blocking matched), and the
    occlusion map 0/255 (alpha over one half)."""
    bx0, by0, bx1, by1 = box
    if jpeg_quality is not None:
        patch = jpeg_like(image_bgr, patch, (bx0, by0), a255 > 0.5, jpeg_quality)
    out = image_bgr.copy()
    out[by0:by1, bx0:bx1] = patch
    occlusion = np.zeros(image_bgr.shape[:2], np.uint8)
    occlusion[by0:by1, bx0:bx1] = (a255 > 127.5).view(np.uint8) * np.uint8(255)
    return out, occlusion


def grey3(plane: np.ndarray) -> np.ndarray:
    """A float32 (h, w) plane as (h, w, 3): numpy broadcasts ``plane[..., None]`` against (h, w, 3)
    about ten times slower than it multiplies two (h, w, 3) arrays (the 3 is its inner loop)."""
    return cv2.cvtColor(plane, cv2.COLOR_GRAY2BGR)  # the same as cv2.merge of three, twice as fast


def times_colour(plane: np.ndarray, bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``plane[..., None] * bgr`` as (h, w, 3) float32, one channel at a time (the same products);
    into ``out`` when given (it may be a view of a larger array)."""
    return cv2.merge([plane * np.float32(c) for c in bgr], dst=out)


def photo_colour(albedo: np.ndarray, look: Look) -> np.ndarray:
    """Scale the albedo's chroma by the photo's and apply its white balance."""
    grey = albedo @ np.array([0.114, 0.587, 0.299], np.float32)
    out = grey[..., None] + (albedo - grey[..., None]) * np.float32(look.chroma)
    return out * look.cast_bgr if look.chroma > 0.05 else out
