"""What a photo measures around one face, so that a mask drawn into it matches (pure functions).

* **Light**: a low-frequency shading field from the skin the mask covers (median-filtered on a
  coarse grid, so lips, nostrils and stubble do not print through), times the global gain (median
  covered-skin luminance over :data:`REFERENCE_LUMINANCE`); a half-shadowed face gives a
  half-shadowed mask.
* **Colour**: the white balance of the photo's near-neutral pixels (attenuated, clipped) tints the
  mask; the photo's chroma scales the mask's (a greyscale photo gets a grey mask).
* **Sharpness**: the face's blur is measured (gradient energy kept after a unit re-blur; for a
  Gaussian edge of sigma s the ratio is s / sqrt(s^2 + 1)) and the mask is blurred to match.
* **Noise**: the photo's noise level (Immerkaer's Laplacian estimate over the flattest half of the
  face box) is added to the mask, seeded per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskbench.synthesis.stats import masked_median_u8, quantile_u8

#: Luminance of a lower face that leaves the mask colour unchanged. Chosen, not fitted (a mid-grey
#: skin under ordinary exposure; set when masks were first drawn, commit 74b872e).
REFERENCE_LUMINANCE = 150.0


#: 95th percentile of the luminance around a face at a normal exposure. Chosen by eye on dev-half
#: photos when the photometric match was written (commit 5b5501c); not fitted.
BRIGHT_REFERENCE = 215.0


#: A pixel is near-neutral (lit white, grey or black) when its channels' range is at most this
#: fraction of their maximum (:func:`colour_cast`). Chosen by eye (commit 78ef71f); not fitted.
NEUTRAL_SPREAD = 0.2


@dataclass(frozen=True)
class Look:
    """What the photo measures around one face (see the module docstring)."""

    gain: float  # median covered-skin luminance / REFERENCE_LUMINANCE, clipped
    field: np.ndarray  # (h, w) float32 relative shading over the fit box (1 = median skin)
    cast_bgr: np.ndarray  # (3,) float32 white-balance gains
    chroma: float  # 0 (greyscale photo) .. 1
    noise_sigma: float  # grey levels
    blur_sigma: float  # px


def noise_sigma(grey: np.ndarray) -> float:
    """Immerkaer's noise estimate (grey levels) over the flatter half of a uint8/float image."""
    g = grey.astype(np.float32)
    if min(g.shape) < 8:
        return 0.0
    if min(g.shape) >= 96:  # white noise keeps its sigma on every second row and column
        g = g[::2, ::2]
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    lap = np.abs(cv2.filter2D(g, -1, kernel, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    grad = cv2.Sobel(g, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_32F, 0, 1) ** 2
    inner = grad[1:-1, 1:-1]
    flat = inner <= np.partition(inner.ravel(), inner.size // 2)[inner.size // 2]
    if not flat.any():
        return 0.0
    return float(np.sqrt(np.pi / 2) / 6.0 * cv2.mean(np.ascontiguousarray(lap), mask=flat.view(np.uint8))[0])


def blur_sigma(grey: np.ndarray) -> float:
    """Gaussian sigma (px) of the image's edges: from the gradient energy a unit re-blur keeps."""
    g = grey.astype(np.float32)
    if min(g.shape) < 8:
        return 0.0

    def energy(img: np.ndarray) -> float:  # sum of squared differences between neighbours
        return (cv2.norm(img[:, 1:], img[:, :-1], cv2.NORM_L2SQR)
                + cv2.norm(img[1:], img[:-1], cv2.NORM_L2SQR))

    e0 = energy(g)
    if e0 <= 1e-6:
        return 0.0
    q = min(energy(cv2.GaussianBlur(g, (0, 0), 1.0)) / e0, 0.995)
    return float(q / np.sqrt(1.0 - q * q))


def colour_cast(image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """(attenuated white-balance gains per BGR channel, chroma level 0..1) of a photo.

    The light's colour is read from the photo's near-neutral pixels (channels within
    :data:`NEUTRAL_SPREAD` of their maximum: white, grey and black things lit by it), not from all
    of them: a face close-up's grey world is the colour of skin and hair, and read as the light it
    turned a quarter of the white masks on the AFLW2000 dev half skin-coloured (blue gain at its
    0.88 clip). Too few neutral pixels (under 2 %): no cast. A light so coloured that a white wall's
    channels spread over 20 % is not seen (its neutral things no longer look neutral).
    """
    small = np.ascontiguousarray(image_bgr[::6, ::6])
    b, g, r = cv2.split(small)
    hi, lo = cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r)
    # how far a pixel's channels lie from their mean (0 for a greyscale photo), from the per-pixel
    # range: the mean absolute deviation of three values is 0.33-0.44 of their range
    range_u8 = cv2.subtract(hi, lo)
    spread = float(cv2.mean(range_u8)[0]) * 0.385
    chroma = float(np.clip(spread / 12.0, 0.0, 1.0))
    hi_f = hi.astype(np.float32)
    neutral = ((range_u8.astype(np.float32) <= NEUTRAL_SPREAD * hi_f) & (hi >= 40) & (hi < 250)).view(np.uint8)
    if cv2.countNonZero(neutral) < 0.02 * neutral.size:
        return np.ones(3, np.float32), chroma
    mean = np.array(cv2.mean(small, mask=neutral)[:3], np.float32)
    grey = float(mean.mean())
    if grey < 1.0:
        return np.ones(3, np.float32), chroma
    return np.clip((mean / grey) ** 0.5, 0.88, 1.12).astype(np.float32), chroma


def shading_field(luminance: np.ndarray, skin: np.ndarray, cell_px: float) -> tuple[np.ndarray, float]:
    """(relative low-frequency shading over the box, median skin luminance) from the covered skin
    (``luminance``: uint8, ``skin``: bool, both the box's shape)."""
    h, w = luminance.shape
    skin_u8 = np.ascontiguousarray(skin).view(np.uint8)
    med = (masked_median_u8(luminance, 0, skin_u8)
           if cv2.countNonZero(skin_u8) else float(REFERENCE_LUMINANCE))
    gw, gh = max(2, int(round(w / cell_px))), max(2, int(round(h / cell_px)))
    m = skin.astype(np.float32)
    num = cv2.resize(cv2.copyTo(luminance, skin_u8).astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    den = cv2.resize(m, (gw, gh), interpolation=cv2.INTER_AREA)
    coarse = np.where(den > 0.15, num / np.maximum(den, 1e-6), np.nan).astype(np.float32)
    coarse = np.where(np.isnan(coarse), med, coarse).astype(np.float32)
    coarse = cv2.medianBlur(np.ascontiguousarray(coarse), 3) if min(gw, gh) >= 3 else coarse
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    field /= max(med, 1.0)
    np.clip(field, 0.45, 1.6, out=field)
    return field, med


def measure_look(image_bgr: np.ndarray, box: tuple[int, int, int, int], skin: np.ndarray, face_px: float) -> Look:
    """Measure the photo for a mask drawn in ``box`` (x0, y0, x1, y1 exclusive) over ``skin`` pixels.

    ``face_px``: the face's height in pixels (sets the shading field's cell and the area measured).
    """
    x0, y0, x1, y1 = box
    region = image_bgr[y0:y1, x0:x1]
    lum = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_BGR2GRAY)
    field, med = shading_field(lum, skin, max(4.0, face_px / 7.0))
    cast, chroma = colour_cast(image_bgr)
    # skin luminance mixes the light with the skin's own tone; the box's bright end (highlights,
    # eye whites, light clothing) tracks the exposure: the gain is their geometric mean
    bright = quantile_u8(lum[::2, ::2].ravel(), 0.95) if lum.size else REFERENCE_LUMINANCE
    gain = float(np.sqrt(med / REFERENCE_LUMINANCE * bright / BRIGHT_REFERENCE))
    return Look(gain=float(np.clip(gain, 0.35, 1.3)), field=field, cast_bgr=cast,
                chroma=chroma, noise_sigma=min(noise_sigma(lum), 12.0), blur_sigma=min(blur_sigma(lum), 4.0))
