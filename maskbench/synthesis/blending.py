"""Drawing a fitted mask into a photograph so that it looks taken with the same camera.

:func:`blend` composes the steps, each in a module of its own; everything is measured on the photo
around the face and matched (pure functions, one face):

* **Light, colour, sharpness, noise** (:mod:`~maskbench.synthesis.photometry`): a low-frequency
  shading field from the skin the mask covers, times the global gain; the white balance of the
  photo's near-neutral pixels; the face's blur; the photo's noise level. The template's Lambert
  term keeps a weak geometric part (folds, the cup).
* **JPEG** (:mod:`~maskbench.synthesis.jpeg`): when the source's quality is known (its
  quantisation tables), the mask pixels are encoded and decoded at that quality on its 8x8 grid.
* **Material** (:mod:`~maskbench.synthesis.materials`): a tiled micro-texture at real-world scale
  (non-woven fibres, a woven grid, rubber) and cloth patterns in millimetres.
* **Straps** (:mod:`~maskbench.synthesis.straps`): ear loops or head straps along the fitted
  polylines.
* **Occluders** (:mod:`~maskbench.synthesis.occluders`): pixels in the mask's area that are not
  this face's skin (hair, a hand of another colour, an object) and reach in from the mask's edge
  stay on top.
* **Compositing** (:mod:`~maskbench.synthesis.compositing`): boxes, colour in the photo's light,
  alpha blending and placing the patch; here: the crease at the mask's edge and the colour spread
  under a feathered edge.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from maskbench.synthesis.compositing import blended_patch, grey3, photo_colour, placed, times_colour, union_box
from maskbench.synthesis.fitting import FACE_HEIGHT_MM, Fit
from maskbench.synthesis.materials import MATERIAL_RELIEF, MATERIAL_SHEEN, MICRO_PX_PER_MM, micro_tiled, noise, pattern_albedo
from maskbench.synthesis.occluders import Chroma, find_occluders
from maskbench.synthesis.photometry import Look, measure_look
from maskbench.synthesis.silhouette import inside_all
from maskbench.synthesis.straps import with_straps
from maskbench.synthesis.templates import MaskTemplate

#: Sharpness of the rendered mask itself (bilinear texture sampling), in pixels of Gaussian sigma.
RENDER_SIGMA_PX = 0.5


#: The crease where the mask's edge meets the skin: the skin beside the edge is darker (ambient
#: occlusion: the fabric hides part of the sky from it) by up to :data:`CREASE_SHADE` of its light
#: (a Gaussian of :data:`CREASE_MM` from the edge, halved at the edge itself by the feathered alpha).
#: Chosen by eye on the dev half, one try: 1.5 mm and 0.4; the detector's rate on the dev half is
#: in the README.
CREASE_MM = 1.5
CREASE_SHADE = 0.4


def blend(
    image_bgr: np.ndarray,
    fit: Fit,
    template: MaskTemplate,
    color_bgr: tuple[int, int, int],
    pattern: str | None = None,
    pattern_phase: float = 0.0,
    *,
    second_bgr: tuple[int, int, int] | None = None,
    rng: np.random.Generator | None = None,
    jpeg_quality: int | None = None,
    occluders: bool = True,
    keep_out: np.ndarray | None = None,
    skin_elsewhere: Chroma | Callable[[], Chroma | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw the fitted mask into a copy of the image.

    Returns (image, occlusion map 0/255 uint8 of what the mask and straps cover, occluder pixels
    left on top). ``keep_out``: full-image bool map of face parts that are not skin but lie under
    the mask (lips, nostrils), excluded from the occluder skin model; ``skin_elsewhere``: (Cr, Cb,
    spread) of this face's skin outside the mask, or a function giving it (:func:`find_occluders`); the
    background ahead of a turned face's profile (``fit.ahead_px``) is never an occluder. ``rng``
    draws the noise (None: no noise).
    """
    fh, fw = fit.covered.shape
    width_px = max(1, int(round(max(template.straps.get("width_mm", 3.0), 1.0) * fit.px_per_mm)))
    # the box: the fabric's, grown to the straps' (they run under the fabric); the fabric is drawn
    # straight into it (large arrays written once: fresh pages cost as much as the sums)
    bx0, by0, bx1, by1 = (union_box(fit, image_bgr.shape, width_px + 2) if fit.straps_px
                          else (fit.x0, fit.y0, fit.x0 + fw, fit.y0 + fh))
    h, w = by1 - by0, bx1 - bx0
    mask_bgr = np.zeros((h, w, 3), np.float32)
    sub = (slice(fit.y0 - by0, fit.y0 - by0 + fh), slice(fit.x0 - bx0, fit.x0 - bx0 + fw))
    f_alpha, light, look = _fabric(image_bgr, fit, template, color_bgr, pattern, pattern_phase, second_bgr,
                                   mask_bgr[sub])
    if fit.straps_px:
        alpha = with_straps(mask_bgr, f_alpha, light, fit, template, color_bgr, look, (bx0, by0, bx1, by1), width_px)
        del f_alpha
    else:
        alpha = f_alpha
    region = np.ascontiguousarray(image_bgr[by0:by1, bx0:bx1])
    # the photo's sharpness and noise
    extra_blur = float(np.sqrt(max(look.blur_sigma**2 - RENDER_SIGMA_PX**2, 0.0)))
    feather = max(0.7, look.blur_sigma * 0.9)
    mask_bgr = _spread_colour(mask_bgr, alpha, extra_blur, feather)
    feathered = cv2.GaussianBlur(alpha, (0, 0), feather)
    crease = _crease(alpha, feathered, fit.px_per_mm)
    alpha = feathered
    if rng is not None and look.noise_sigma > 0.3:
        mask_bgr += grey3(noise(rng, h, w, look.noise_sigma))
    # what stays in front: hair, hands, objects
    blocked = np.zeros((h, w), bool)
    if occluders:
        blocked = find_occluders(region, alpha > 0.01, None if keep_out is None else keep_out[by0:by1, bx0:bx1],
                                 inside_all(fit.ahead_px, (h, w), (bx0, by0)), skin_elsewhere)
        if blocked.any():
            soft = cv2.GaussianBlur(blocked.astype(np.float32), (0, 0), feather)
            soft[~blocked] = 0.0  # the edge softens inside the occluder; the mask's side stays whole
            alpha *= np.float32(1.0) - soft
    patch, a255 = blended_patch(region, mask_bgr, alpha, crease)
    del mask_bgr, crease, region  # before the whole image is copied
    return placed(image_bgr, patch, a255, (bx0, by0, bx1, by1), jpeg_quality) + (int(np.count_nonzero(blocked)),)


def _crease(alpha: np.ndarray, feathered: np.ndarray, px_per_mm: float) -> np.ndarray:
    """How much darker the photo is beside the mask (0..:data:`CREASE_SHADE` per pixel): where the
    fabric meets the skin, the skin sees less of the sky. A Gaussian of :data:`CREASE_MM` of the
    mask's hard ``alpha``, outside its ``feathered`` edge only."""
    reach = cv2.GaussianBlur(alpha, (0, 0), max(0.5, CREASE_MM * px_per_mm))
    return reach * (np.float32(1.0) - feathered) * np.float32(CREASE_SHADE)


def _spread_colour(mask_bgr: np.ndarray, alpha: np.ndarray, blur_px: float, feather_px: float) -> np.ndarray:
    """The mask's colour blurred to the photo's sharpness (``blur_px``, skipped under 0.25) and carried
    past its edge (alpha 0) as far as the feathered alpha reaches.

    The colour is blurred with its alpha as weight (the alpha-weighted blur, divided by the blurred
    alpha): a plain blur of the colour mixes in the black that fills the box around the mask, and the
    feathered alpha then shows that black as a dark outline round every mask (and a dark rim along
    a strap crossing an empty corner of the fabric's box). Inside the mask the colour is kept as it
    is unless the photo asks for the extra blur."""
    sigma = blur_px if blur_px > 0.25 else feather_px
    spread = grey3(alpha)  # one 3-channel buffer, worked in place (fresh pages cost as much as the sums)
    cv2.multiply(mask_bgr, spread, dst=spread)
    cv2.GaussianBlur(spread, (0, 0), sigma, dst=spread)
    den = cv2.GaussianBlur(alpha, (0, 0), sigma)
    np.maximum(den, np.float32(1e-4), out=den)  # 0 where nothing reaches
    np.divide(spread, den[..., None], out=spread)  # as fast as cv2.divide by a merged copy, and no copy
    if blur_px > 0.25:
        return spread
    return cv2.copyTo(mask_bgr, (alpha >= np.float32(0.999)).view(np.uint8), spread)  # boolean indexing: 30x slower


def _fabric(image_bgr: np.ndarray, fit: Fit, template: MaskTemplate, color_bgr: tuple[int, int, int],
            pattern: str | None, pattern_phase: float, second_bgr: tuple[int, int, int] | None,
            out: np.ndarray) -> tuple[np.ndarray, np.ndarray, Look]:
    """The fabric in the fit's own box, drawn into ``out`` (BGR float32 of the box's size, maybe a
    view of a larger box): (alpha, light field, the photo's look)."""
    tex = template.texture_grey_alpha
    th, tw = tex.shape[:2]
    covered_u8 = fit.covered.view(np.uint8)
    sampled = cv2.remap(tex, fit.u * np.float32(tw - 1), fit.v * np.float32(th - 1), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sampled = cv2.copyTo(sampled, covered_u8, np.zeros_like(sampled))  # transparent off the fitted surface
    f_alpha = sampled[..., 1].astype(np.float32)
    f_alpha /= np.float32(255.0)
    fh, fw = fit.covered.shape
    look = measure_look(image_bgr, (fit.x0, fit.y0, fit.x0 + fw, fit.y0 + fh), fit.covered & (f_alpha > 0.5),
                        fit.px_per_mm * FACE_HEIGHT_MM)
    if pattern:  # colour or pattern, then the photo's chroma and white balance
        albedo = pattern_albedo(fit.u, fit.v, pattern, np.asarray(color_bgr, np.float32), pattern_phase, second_bgr,
                                fit.size_mm, template.patterns.get(pattern))
        albedo = photo_colour(albedo, look)
    else:  # one colour: corrected once, broadcast
        albedo = photo_colour(np.asarray(color_bgr, np.float32)[None, None] / np.float32(255.0), look)
    # intensity: texture grey x micro-texture x (weak Lambert) x light field x gain
    scale = np.float32(MICRO_PX_PER_MM)
    gx = fit.u * np.float32(fit.size_mm[0])
    gx *= scale
    gy = fit.v * np.float32(fit.size_mm[1])
    gy *= scale
    grain = cv2.remap(micro_tiled(template.material, fit.size_mm), gx, gy, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    del gx, gy
    light = look.field ** np.float32(0.85)
    light *= np.float32(look.gain)
    intensity = sampled[..., 0].astype(np.float32)
    intensity *= np.float32(255.0 / 225.0)
    intensity *= grain
    del grain
    relief = MATERIAL_RELIEF.get(template.material, 0.35)
    lambert = fit.shade * np.float32(relief)
    lambert += np.float32(1.15 - relief)
    intensity *= lambert
    del lambert
    intensity *= light
    if albedo.shape[:2] == (1, 1):
        times_colour(intensity, albedo[0, 0], out)
    else:
        np.multiply(grey3(intensity), albedo, out=out)
    if template.material in MATERIAL_SHEEN:  # moulded rubber: a soft white highlight where it faces the light
        out += grey3(cv2.pow(fit.shade, 20) * light * np.float32(255.0 * MATERIAL_SHEEN[template.material]))
    return f_alpha, light, look
