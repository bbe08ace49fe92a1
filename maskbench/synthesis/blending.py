"""Drawing a fitted mask into a photograph so that it looks taken with the same camera.

Everything here is measured on the photo around the face and matched (pure functions, one face):

* **Light**: a low-frequency shading field from the skin the mask covers (median-filtered on a
  coarse grid, so lips, nostrils and stubble do not print through), times the global gain (median
  covered-skin luminance over :data:`REFERENCE_LUMINANCE`); a half-shadowed face gives a
  half-shadowed mask. The template's Lambert term keeps a weak geometric part (folds, the cup).
* **Colour**: the white balance of the photo's near-neutral pixels (attenuated, clipped) tints the
  mask; the photo's chroma scales the mask's (a greyscale photo gets a grey mask).
* **Sharpness**: the face's blur is measured (gradient energy kept after a unit re-blur; for a
  Gaussian edge of sigma s the ratio is s / sqrt(s^2 + 1)) and the mask is blurred to match.
* **Noise**: the photo's noise level (Immerkaer's Laplacian estimate over the flattest half of the
  face box) is added to the mask, seeded per sample.
* **JPEG**: when the source's quality is known (its quantisation tables), the mask pixels are
  encoded and decoded at that quality on the source's 8x8 grid.
* **Material**: a tiled micro-texture at real-world scale (non-woven fibres, a woven grid, rubber)
  and cloth patterns in millimetres (:func:`pattern_albedo`).
* **Straps**: ear loops or head straps along the fitted polylines.
* **Occluders**: pixels in the mask's area that are not this face's skin (hair, a hand of another
  colour, an object) and reach in from the mask's edge stay on top (:func:`find_occluders`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from maskbench.synthesis.fitting import FACE_HEIGHT_MM, LIGHT_DIR, Fit, inside_all
from maskbench.synthesis.templates import MaskTemplate

__all__ = ["LIGHT_DIR", "Look", "blend", "find_occluders", "jpeg_quality_of", "masked_median", "measure_look",
           "pattern_albedo"]
#: Luminance of a lower face that leaves the mask colour unchanged.
REFERENCE_LUMINANCE = 150.0
#: 95th percentile of the luminance around a face at a normal exposure.
BRIGHT_REFERENCE = 215.0
#: Sharpness of the rendered mask itself (bilinear texture sampling), in pixels of Gaussian sigma.
RENDER_SIGMA_PX = 0.5
#: Weight of the mask's own Lambert term (its shape under :data:`LIGHT_DIR`) per material: fabric
#: takes the light mostly from the photo's field; a moulded rubber half-mask shows its cups and
#: cartridges by its shading, and a white sheen where it faces the light (its peak, of 255).
MATERIAL_RELIEF = {"rubber": 0.75}
MATERIAL_SHEEN = {"rubber": 0.3}
#: The crease where the mask's edge meets the skin: the skin beside the edge is darker (ambient
#: occlusion: the fabric hides part of the sky from it) by up to :data:`CREASE_SHADE` of its light
#: (a Gaussian of :data:`CREASE_MM` from the edge, halved at the edge itself by the feathered alpha).
#: Chosen by eye on the dev half, one try: 1.5 mm and 0.4; the detector's rate on the dev half is
#: in the README.
CREASE_MM = 1.5
CREASE_SHADE = 0.4
#: Micro-texture tiles: pixels per millimetre and tile size.
MICRO_PX_PER_MM = 2.0
MICRO_TILE = 128
STRAP_COLORS_BGR = {"white": (236, 236, 234), "black": (40, 40, 42)}
#: A pixel is near-neutral (lit white, grey or black) when its channels' range is at most this
#: fraction of their maximum (:func:`colour_cast`).
NEUTRAL_SPREAD = 0.2
#: An occluder blob must cover at least this fraction of the mask's area.
OCCLUDER_MIN_FRACTION = 0.03
#: The chroma distance (in robust spreads of the covered skin) past which a pixel is not this skin:
#: on a grid of half spreads, the one whose flagged faces best agree (F1) with labels by eye of the
#: even-indexed AFLW2000 dev photos (``docs/fit_constants.py``, ``docs/occluder_labels_fit.csv``);
#: its rate test reads the odd-indexed ones only.
OCCLUDER_CHROMA_Z = 3.5
#: Shadows up to this many times darker than the covered skin are read as skin when their chroma,
#: scaled up by the ratio, is the skin's (:func:`_shade_lifted_distance`). Set before looking; one
#: other try, 2, left the masks of deeply shadowed faces torn (image01014, image00861 of the dev half).
SHADE_MAX_GAIN = 4.0


@dataclass(frozen=True)
class Look:
    """What the photo measures around one face (see the module docstring)."""

    gain: float  # median covered-skin luminance / REFERENCE_LUMINANCE, clipped
    field: np.ndarray  # (h, w) float32 relative shading over the fit box (1 = median skin)
    cast_bgr: np.ndarray  # (3,) float32 white-balance gains
    chroma: float  # 0 (greyscale photo) .. 1
    noise_sigma: float  # grey levels
    blur_sigma: float  # px


# ------------------------------------------------------------------------------------------
# Measurements (pure)
# ------------------------------------------------------------------------------------------
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


def jpeg_quality_of(path: str | Path) -> int | None:
    """IJG quality (1..100) of a JPEG file from its luminance quantisation table; None if not a JPEG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker, length = head[i + 1], int.from_bytes(head[i + 2 : i + 4], "big")
        if marker == 0xDB:
            body = head[i + 4 : i + 2 + length]
            j = 0
            while j < len(body):
                precision, table_id = body[j] >> 4, body[j] & 15
                size = 128 if precision else 64
                values = np.frombuffer(body[j + 1 : j + 1 + size], dtype=">u2" if precision else np.uint8)
                if table_id == 0 and len(values) == 64:
                    scale = 100.0 * float(values.astype(np.float64).sum()) / float(_IJG_LUMA.sum())
                    q = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
                    return int(np.clip(round(q), 1, 100))
                j += 1 + size
        if marker == 0xDA:
            return None
        i += 2 + length
    return None


_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                      92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


#: (Cr, Cb, robust spread) of some skin: :func:`skin_chroma`.
Chroma = tuple[float, float, float]


def find_occluders(region_bgr: np.ndarray, area: np.ndarray, keep_out: np.ndarray | None = None,
                   behind: np.ndarray | None = None,
                   skin_elsewhere: Chroma | Callable[[], Chroma | None] | None = None) -> np.ndarray:
    """Pixels of ``area`` (the mask's footprint) that are not this face's skin and reach in from its edge.

    The skin is modelled by the robust centre and spread of (Cr, Cb) over ``area`` minus
    ``keep_out`` (lips, nostrils: parts of the face that are not skin-coloured but belong under the
    mask). A pixel is foreign when its chroma lies :data:`OCCLUDER_CHROMA_Z` spreads away, as it is
    and as if lit like the skin (a shadow keeps the skin's hue: :func:`_shade_lifted_distance`); a
    foreign blob counts when its pixels outside ``keep_out`` cover at least
    :data:`OCCLUDER_MIN_FRACTION` of the area and it touches the area's edge (a hand, hair or an
    object enters from outside; the lips alone never count, the lips under a hand do). ``behind``:
    pixels of ``area`` where the mask spans over the background (in front of a turned face's
    profile, between the nose and the chin); they are never foreign, and their border with the rest
    of the area counts as its edge (a hand reaching in from the front still does).
    ``skin_elsewhere``: (Cr, Cb, spread) of this face's skin outside the area (the nose,
    :func:`skin_chroma`), or a function giving it (called only when some pixel is foreign to the
    covered skin): a pixel within :data:`OCCLUDER_CHROMA_Z` of its spread (or of the covered skin's,
    the larger) is skin too (a half-lit face's lit side under the mask differs in chroma from its
    shadowed side, and was taken for an object). Returns a bool map like ``area``.
    """
    total = int(np.count_nonzero(area))  # blob sizes are fractions of the whole footprint
    out = np.zeros(area.shape, bool)
    if behind is not None:  # nor is the background in the skin model
        area = area & ~behind
    if total < 50:
        return out
    ycc = cv2.cvtColor(np.ascontiguousarray(region_bgr), cv2.COLOR_BGR2YCrCb)
    ref = area if keep_out is None else area & ~keep_out
    if np.count_nonzero(ref) < 30:
        return out
    ref_u8 = ref.view(np.uint8)
    mcr, mcb, cr, cb, dist, spread = _chroma_model(ycc, ref_u8)
    spread = max(spread, 2.5)
    foreign = (dist > OCCLUDER_CHROMA_Z * spread) & area

    def too_few() -> bool:  # no blob can be large enough: each test below only narrows ``foreign``
        return cv2.countNonZero(foreign.view(np.uint8)) < OCCLUDER_MIN_FRACTION * total

    if too_few():
        return out
    foreign &= _shade_lifted_distance(ycc, ref_u8, mcr, mcb, cr, cb) > OCCLUDER_CHROMA_Z * spread
    if too_few():
        return out
    elsewhere = skin_elsewhere() if callable(skin_elsewhere) else skin_elsewhere
    if elsewhere is not None:
        cr += np.float32(mcr - elsewhere[0])
        cb += np.float32(mcb - elsewhere[1])
        foreign &= cv2.magnitude(cr, cb) > OCCLUDER_CHROMA_Z * max(spread, elsewhere[2])
        if too_few():
            return out
    foreign = foreign.view(np.uint8)
    foreign = cv2.morphologyEx(foreign, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(foreign, connectivity=8)
    if n <= 1:
        return out
    # lips and nostrils alone are not foreign: a blob counts by its pixels outside them
    size = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    if keep_out is not None:
        size -= np.bincount(labels[keep_out], minlength=n)
    rim = area & ~cv2.erode(area.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    on_rim = np.zeros(n, bool)
    on_rim[np.unique(labels[rim])] = True
    keep = on_rim & (size >= OCCLUDER_MIN_FRACTION * total)
    keep[0] = False
    if keep.any():
        out = keep[labels]
    return out


def _shade_lifted_distance(ycc: np.ndarray, ref_u8: np.ndarray, mcr: float, mcb: float, cr: np.ndarray,
                           cb: np.ndarray) -> np.ndarray:
    """The chroma distance from the skin (medians ``mcr``, ``mcb``; ``cr``, ``cb``: the planes less
    them) of each pixel as if lit like the skin: a pixel darker than the skin's median luminance has
    its chroma (its offset from neutral, 128) scaled up by the ratio of the two (at most
    :data:`SHADE_MAX_GAIN`). Skin in a shadow keeps its hue with less of everything; its plain chroma
    lies near neutral, far from the lit skin's, and a half-shadowed face lost its mask over the shadow."""
    luma = masked_median_u8(ycc, 0, ref_u8)
    gain = np.float32(max(luma, 1.0)) / cv2.max(ycc[..., 0], 1).astype(np.float32)
    np.clip(gain, 1.0, SHADE_MAX_GAIN, out=gain)
    lifted_cr = (cr + np.float32(mcr - 128.0)) * gain
    lifted_cr += np.float32(128.0 - mcr)
    lifted_cb = (cb + np.float32(mcb - 128.0)) * gain
    lifted_cb += np.float32(128.0 - mcb)
    return cv2.magnitude(lifted_cr, lifted_cb)


def skin_chroma(image_bgr: np.ndarray, where: np.ndarray) -> Chroma | None:
    """Median (Cr, Cb) of the image's pixels where the uint8 map ``where`` (its shape) is non-zero,
    and their robust spread (1.4826 x the median distance from it); None under 30 of them."""
    if cv2.countNonZero(where) < 30:
        return None
    cr, cb, *_, spread = _chroma_model(cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2YCrCb), where)
    return cr, cb, spread


def _chroma_model(ycc: np.ndarray, where_u8: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, float]:
    """The chroma of the YCrCb pixels where ``where_u8`` is non-zero: (median Cr, median Cb, the Cr
    and Cb planes less them (float32), the distance from them, its robust spread: 1.4826 x its median)."""
    mcr, mcb = (masked_median_u8(ycc, c, where_u8) for c in (1, 2))
    cr, cb = ycc[..., 1].astype(np.float32), ycc[..., 2].astype(np.float32)
    cr -= np.float32(mcr)
    cb -= np.float32(mcb)
    dist = cv2.magnitude(cr, cb)
    return mcr, mcb, cr, cb, dist, masked_median(dist, where_u8, 362.0) * 1.4826  # dist <= 255.5 * sqrt(2)


# ------------------------------------------------------------------------------------------
# Material
# ------------------------------------------------------------------------------------------
def _wrap_blur(a: np.ndarray, sigma: float) -> np.ndarray:
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
        tex = 0.06 * weave + 0.05 * _wrap_blur(n, 0.8)
    elif material == "rubber":
        tex = 0.025 * _wrap_blur(n, 2.0)
    else:  # non-woven: fibres clump at 0.5-2 mm
        fine = _wrap_blur(n, 1.0)
        coarse = _wrap_blur(rng.standard_normal((MICRO_TILE, MICRO_TILE)).astype(np.float32), 3.0)
        tex = 0.03 * fine / max(float(fine.std()), 1e-6) + 0.015 * coarse / max(float(coarse.std()), 1e-6)
    return (1.0 + tex).astype(np.float32)


@cache
def _micro_tiled(material: str, size_mm: tuple[float, float]) -> np.ndarray:
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


# ------------------------------------------------------------------------------------------
# Blending
# ------------------------------------------------------------------------------------------
def _line_box(line: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper exclusive) integer pixel corners of a polyline's bounding box, grown by ``pad``."""
    (x0, y0), (x1, y1) = line.min(axis=0).tolist(), line.max(axis=0).tolist()  # Python floats: 9 numpy calls less
    return (np.array([math.floor(x0) - pad, math.floor(y0) - pad]),
            np.array([math.ceil(x1) + pad + 1, math.ceil(y1) + pad + 1]))


def _union_box(fit: Fit, image_shape: tuple[int, ...], pad: int) -> tuple[int, int, int, int]:
    h, w = fit.covered.shape
    x0, y0, x1, y1 = fit.x0, fit.y0, fit.x0 + w, fit.y0 + h
    for line in fit.straps_px:
        lo, hi = _line_box(line, pad)
        x0, y0, x1, y1 = min(x0, lo[0]), min(y0, lo[1]), max(x1, hi[0]), max(y1, hi[1])
    ih, iw = image_shape[:2]
    return max(x0, 0), max(y0, 0), min(x1, iw), min(y1, ih)


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
    bx0, by0, bx1, by1 = (_union_box(fit, image_bgr.shape, width_px + 2) if fit.straps_px
                          else (fit.x0, fit.y0, fit.x0 + fw, fit.y0 + fh))
    h, w = by1 - by0, bx1 - bx0
    mask_bgr = np.zeros((h, w, 3), np.float32)
    sub = (slice(fit.y0 - by0, fit.y0 - by0 + fh), slice(fit.x0 - bx0, fit.x0 - bx0 + fw))
    f_alpha, light, look = _fabric(image_bgr, fit, template, color_bgr, pattern, pattern_phase, second_bgr,
                                   mask_bgr[sub])
    if fit.straps_px:
        alpha = _with_straps(mask_bgr, f_alpha, light, fit, template, color_bgr, look, (bx0, by0, bx1, by1), width_px)
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
        mask_bgr += _grey3(_noise(rng, h, w, look.noise_sigma))
    # what stays in front: hair, hands, objects
    blocked = np.zeros((h, w), bool)
    if occluders:
        blocked = find_occluders(region, alpha > 0.01, None if keep_out is None else keep_out[by0:by1, bx0:bx1],
                                 inside_all(fit.ahead_px, (h, w), (bx0, by0)), skin_elsewhere)
        if blocked.any():
            soft = cv2.GaussianBlur(blocked.astype(np.float32), (0, 0), feather)
            soft[~blocked] = 0.0  # the edge softens inside the occluder; the mask's side stays whole
            alpha *= np.float32(1.0) - soft
    patch, a255 = _blended_patch(region, mask_bgr, alpha, crease)
    del mask_bgr, crease, region  # before the whole image is copied
    return _placed(image_bgr, patch, a255, (bx0, by0, bx1, by1), jpeg_quality) + (int(np.count_nonzero(blocked)),)


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
    spread = _grey3(alpha)  # one 3-channel buffer, worked in place (fresh pages cost as much as the sums)
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
        albedo = _photo_colour(albedo, look)
    else:  # one colour: corrected once, broadcast
        albedo = _photo_colour(np.asarray(color_bgr, np.float32)[None, None] / np.float32(255.0), look)
    # intensity: texture grey x micro-texture x (weak Lambert) x light field x gain
    scale = np.float32(MICRO_PX_PER_MM)
    gx = fit.u * np.float32(fit.size_mm[0])
    gx *= scale
    gy = fit.v * np.float32(fit.size_mm[1])
    gy *= scale
    grain = cv2.remap(_micro_tiled(template.material, fit.size_mm), gx, gy, cv2.INTER_LINEAR,
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
        _times_colour(intensity, albedo[0, 0], out)
    else:
        np.multiply(_grey3(intensity), albedo, out=out)
    if template.material in MATERIAL_SHEEN:  # moulded rubber: a soft white highlight where it faces the light
        out += _grey3(cv2.pow(fit.shade, 20) * light * np.float32(255.0 * MATERIAL_SHEEN[template.material]))
    return f_alpha, light, look


def _with_straps(mask_bgr: np.ndarray, f_alpha: np.ndarray, f_light: np.ndarray, fit: Fit, template: MaskTemplate,
                 color_bgr: tuple[int, int, int], look: Look, box: tuple[int, int, int, int],
                 width_px: int) -> np.ndarray:
    """The straps drawn under the fabric into ``mask_bgr`` (over ``box``, the fabric's box and the
    straps'; the fabric already drawn in its own box); returns the alpha over ``box``. Their colour
    and light are matched like the fabric's; outside the fabric's box the light is the photo's gain;
    the straps are shaded across like a round cord (:data:`STRAP_SIDE_SHADE`)."""
    bx0, by0, bx1, by1 = box
    fh, fw = f_alpha.shape
    sub = (slice(fit.y0 - by0, fit.y0 - by0 + fh), slice(fit.x0 - bx0, fit.x0 - bx0 + fw))
    drawn = fit.covered & (f_alpha > 0.5)
    lines = _attach(fit.straps_px, drawn, np.array([fit.x0, fit.y0], np.float64), 20.0 * fit.px_per_mm)
    alpha = strap_alpha((by1 - by0, bx1 - bx0), lines, (bx0, by0), width_px,
                        STRAP_FADE.get(template.straps.get("kind", "ear_loop"), 0.0))
    strap_rgb = np.asarray(strap_colour(template.straps.get("color", "same"), color_bgr, template.colors_bgr), np.float32)
    strap_rgb = _photo_colour(np.broadcast_to(strap_rgb / np.float32(255.0), (1, 1, 3)), look)[0, 0]
    # a round cord is lit along its middle and darker at its sides; the colour only where a strap runs
    # (what lies under alpha 0 never shows: :func:`_spread_colour` weighs the colour by its alpha)
    core = strap_alpha(alpha.shape, lines, (bx0, by0), max(1, width_px // 2))
    lit_rgb = strap_rgb * np.float32(0.9 * look.gain * 255.0)
    fabric_box = (fit.x0 - bx0, fit.y0 - by0, fit.x0 - bx0 + fw, fit.y0 - by0 + fh)
    for line in lines:  # outside the fabric's box
        lo, hi = (corner - (bx0, by0) for corner in _line_box(line, width_px + 2))
        clipped = (max(lo[0], 0), max(lo[1], 0), min(hi[0], bx1 - bx0), min(hi[1], by1 - by0))
        for x0, y0, x1, y1 in _minus(clipped, fabric_box):
            r = (slice(y0, y1), slice(x0, x1))
            mask_bgr[r] = _times_colour(_cord_shade(core[r]), lit_rgb)
    # in the fabric's box: the fabric, over the straps where they run (none under the drawn fabric)
    sa = alpha[sub].copy()
    sa[drawn] = 0.0
    fabric, alpha_in = mask_bgr[sub], alpha[sub]
    alpha_in[...] = f_alpha
    boxes = []  # the strap's own box inside the fabric's: the straps touch its sides only
    for line in lines:
        lo, hi = (corner - (fit.x0, fit.y0) for corner in _line_box(line, width_px + 2))
        r = (slice(max(lo[1], 0), max(min(hi[1], fh), 0)), slice(max(lo[0], 0), max(min(hi[0], fw), 0)))
        if sa[r].any():
            boxes.append((r, fabric[r].copy()))  # the fabric before any strap (boxes may overlap)
    for r, plain in boxes:
        under = sa[r] * (1 - f_alpha[r])
        total = f_alpha[r] + under
        strap_px = _times_colour(np.float32(0.9) * f_light[r] * _cord_shade(core[sub][r]), strap_rgb) * np.float32(255.0)
        fabric[r] = (plain * _grey3(f_alpha[r]) + strap_px * _grey3(under)) / _grey3(np.maximum(total, 1e-6))
        alpha_in[r] = total
    return alpha


#: A mask darker than this (its brightest channel) gets loops of its own colour under the strap
#: colour ``white_unless_dark``: black surgical masks come with black ear loops, light ones with white.
DARK_MASK_MAX = 100


def strap_colour(name: str, mask_bgr: tuple[int, int, int], colors_bgr: dict[str, tuple[int, int, int]]) -> tuple[int, ...]:
    """BGR of a template's strap colour ``name``: ``same`` (the mask's), ``white_unless_dark``, one
    of the template's colours or of :data:`STRAP_COLORS_BGR`."""
    if name == "same" or (name == "white_unless_dark" and max(mask_bgr) < DARK_MASK_MAX):
        return tuple(mask_bgr)
    if name == "white_unless_dark":
        name = "white"
    return tuple(colors_bgr.get(name, STRAP_COLORS_BGR.get(name, (200, 200, 200))))


def _minus(box: tuple[int, int, int, int], hole: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """``box`` less ``hole`` (both x0, y0, x1, y1 exclusive) as at most four boxes: the rows above
    and below the hole, and left and right of it in its rows."""
    x0, y0, x1, y1 = box
    hx0, hy0 = max(hole[0], x0), max(hole[1], y0)
    hx1, hy1 = min(hole[2], x1), min(hole[3], y1)
    if x1 <= x0 or y1 <= y0:
        return []
    if hx1 <= hx0 or hy1 <= hy0:  # no overlap
        return [box]
    parts = [(x0, y0, x1, hy0), (x0, hy1, x1, y1), (x0, hy0, hx0, hy1), (hx1, hy0, x1, hy1)]
    return [b for b in parts if b[2] > b[0] and b[3] > b[1]]


#: Brightness of a strap's sides against its middle (a round cord under the photo's light).
STRAP_SIDE_SHADE = 0.7


def _cord_shade(core: np.ndarray) -> np.ndarray:
    """A strap's brightness across it from its narrow core's coverage (1 along the middle)."""
    return np.float32(STRAP_SIDE_SHADE) + np.float32(1.0 - STRAP_SIDE_SHADE) * core
#: The part of a head strap's visible run that fades out at its far end: it goes on into the hair
#: and round the back of the head, which the photo shows and the generic head does not know.
#: Ear loops end at the ear (they pass behind it) and do not fade.
STRAP_FADE = {"head_strap": 0.4}


def strap_alpha(shape: tuple[int, int], lines: list[np.ndarray], origin: tuple[int, int], width_px: int,
                fade: float = 0.0) -> np.ndarray:
    """(h, w) float32 coverage of the strap polylines (image pixels, drawn in a box at ``origin``),
    anti-aliased; the last ``fade`` of each line's segments fade linearly to nothing."""
    out = np.zeros(shape, np.float32)
    shift = np.array(origin, np.float64)
    for line in lines:
        pts = np.round((line - shift) * 16).astype(np.int32)
        n = len(pts) - 1
        solid = n if fade <= 0 else max(1, int(round(n * (1.0 - fade))))
        cv2.polylines(out, [pts[: solid + 1]], False, 1.0, width_px, cv2.LINE_AA, shift=4)
        for k in range(solid, n):
            value = 1.0 - (k - solid + 0.5) / (n - solid)
            cv2.line(out, tuple(int(v) for v in pts[k]), tuple(int(v) for v in pts[k + 1]), value, width_px,
                     cv2.LINE_AA, shift=4)
    np.minimum(out, 1.0, out=out)
    return out


def _blended_patch(region: np.ndarray, mask_bgr: np.ndarray, alpha: np.ndarray,
                   crease: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the box's pixels with the mask blended in, uint8; alpha x 255); ``crease`` (0..1 per pixel):
    how much darker the photo shows beside the mask. Uses up ``mask_bgr`` and ``crease``."""
    np.clip(mask_bgr, 0.0, 255.0, out=mask_bgr)
    a255 = alpha * np.float32(255.0)
    under = region.astype(np.float32)
    np.subtract(np.float32(1.0), crease, out=crease)
    under *= _grey3(crease)
    blended = cv2.blendLinear(mask_bgr, under, a255, np.float32(255.0) - a255, dst=under)
    blended += 0.5
    return blended.astype(np.uint8), a255


def _placed(image_bgr: np.ndarray, patch: np.ndarray, a255: np.ndarray, box: tuple[int, int, int, int],
            jpeg_quality: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the image with the blended ``patch`` in ``box`` (JPEG blocking matched), and the
    occlusion map 0/255 (alpha over one half)."""
    bx0, by0, bx1, by1 = box
    if jpeg_quality is not None:
        patch = _jpeg_like(image_bgr, patch, (bx0, by0), a255 > 0.5, jpeg_quality)
    out = image_bgr.copy()
    out[by0:by1, bx0:bx1] = patch
    occlusion = np.zeros(image_bgr.shape[:2], np.uint8)
    occlusion[by0:by1, bx0:bx1] = (a255 > 127.5).view(np.uint8) * np.uint8(255)
    return out, occlusion


NOISE_TILE = 512


@cache
def _noise_tile() -> np.ndarray:
    """Unit Gaussian noise, (NOISE_TILE, NOISE_TILE) float32, made once per process (fixed seed)."""
    return np.random.default_rng(12345).standard_normal((NOISE_TILE, NOISE_TILE), dtype=np.float32)


def _noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """(h, w) Gaussian noise of ``sigma``: a window of the tile at a seeded offset, flip and transpose
    (as white as fresh draws for a face-sized patch, and free)."""
    tile = _noise_tile()
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


def _attach(lines: tuple[np.ndarray, ...], fabric: np.ndarray, shift: np.ndarray, reach_px: float) -> list[np.ndarray]:
    """Start each strap at the nearest drawn fabric pixel when its corner lies off the drawn mask
    (culled or clipped edge), if one is within ``reach_px``; a strap farther from the fabric is not
    drawn (a run that shows again beyond a hidden stretch would float beside the mask as a loose
    dash: profile views of the dev half). The fabric is searched on every second row and column."""
    out = []
    h, w = fabric.shape
    for line in lines:
        start = line[0] - shift
        iy, ix = int(round(start[1])), int(round(start[0]))
        if 0 <= iy < h and 0 <= ix < w and fabric[iy, ix]:
            out.append(line)
            continue
        # only the window within reach of the corner (on the even grid) can hold the nearest pixel
        r = int(np.ceil(reach_px)) + 2
        y0, x0 = max(0, (iy - r) // 2 * 2), max(0, (ix - r) // 2 * 2)
        y1, x1 = min(h, iy + r + 1), min(w, ix + r + 1)
        if y1 <= y0 or x1 <= x0:
            continue
        ys, xs = np.nonzero(fabric[y0:y1:2, x0:x1:2])
        if not len(xs):
            continue
        pts = np.column_stack([xs * 2 + x0, ys * 2 + y0]).astype(np.float64)
        d2 = ((pts - start) ** 2).sum(axis=1)
        k = int(np.argmin(d2))
        if d2[k] <= reach_px**2:
            out.append(np.vstack([pts[k] + shift, line]))
    return out


def _grey3(plane: np.ndarray) -> np.ndarray:
    """A float32 (h, w) plane as (h, w, 3): numpy broadcasts ``plane[..., None]`` against (h, w, 3)
    about ten times slower than it multiplies two (h, w, 3) arrays (the 3 is its inner loop)."""
    return cv2.cvtColor(plane, cv2.COLOR_GRAY2BGR)  # the same as cv2.merge of three, twice as fast


def _times_colour(plane: np.ndarray, bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``plane[..., None] * bgr`` as (h, w, 3) float32, one channel at a time (the same products);
    into ``out`` when given (it may be a view of a larger array)."""
    return cv2.merge([plane * np.float32(c) for c in bgr], dst=out)


def _photo_colour(albedo: np.ndarray, look: Look) -> np.ndarray:
    """Scale the albedo's chroma by the photo's and apply its white balance."""
    grey = albedo @ np.array([0.114, 0.587, 0.299], np.float32)
    out = grey[..., None] + (albedo - grey[..., None]) * np.float32(look.chroma)
    return out * look.cast_bgr if look.chroma > 0.05 else out


def _jpeg_like(image_bgr: np.ndarray, patch: np.ndarray, origin: tuple[int, int], drawn: np.ndarray,
               quality: int) -> np.ndarray:
    """Encode/decode the drawn pixels at ``quality`` on the image's own 8x8 grid (into ``patch``)."""
    bx0, by0 = origin
    h, w = patch.shape[:2]
    gx0, gy0 = bx0 - bx0 % 8, by0 - by0 % 8
    gx1, gy1 = min(-(-(bx0 + w) // 8) * 8, image_bgr.shape[1]), min(-(-(by0 + h) // 8) * 8, image_bgr.shape[0])
    canvas = image_bgr[gy0:gy1, gx0:gx1].copy()
    canvas[by0 - gy0 : by0 - gy0 + h, bx0 - gx0 : bx0 - gx0 + w] = patch
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return patch
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)[by0 - gy0 : by0 - gy0 + h, bx0 - gx0 : bx0 - gx0 + w]
    return cv2.copyTo(decoded, drawn.view(np.uint8), patch)


def quantile_u8(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (lower value) of uint8 values from a 256-bin histogram."""
    cum = np.cumsum(np.bincount(values, minlength=256))
    return float(np.searchsorted(cum, q * (len(values) - 1), side="right"))


def masked_median(values: np.ndarray, mask_u8: np.ndarray, hi: float, bins_per_unit: int = 8) -> float:
    """``np.median(values[mask_u8 > 0])`` of a float32 image with values in [0, hi), without sorting
    them all: a histogram of ``floor(value * bins_per_unit)`` finds the bins of the two middle ranks
    and only the values in those bins are sorted (the same number as ``np.median`` gives)."""
    n = cv2.countNonZero(mask_u8)
    if n == 0:
        return float("nan")
    q = np.floor(values * np.float32(bins_per_unit))  # bin b holds the values with q == b
    edges = int(np.ceil(hi * bins_per_unit))
    counts = cv2.calcHist([q], [0], mask_u8, [edges], [0, edges]).ravel()
    cum = np.cumsum(counts.astype(np.int64))
    if cum[-1] != n:  # values outside [0, hi): the plain way
        return float(np.median(values[mask_u8.view(bool)]))
    middle = []
    sorted_bins: dict[int, np.ndarray] = {}
    for rank in ((n - 1) // 2, n // 2):
        b = int(np.searchsorted(cum, rank, side="right"))
        if b not in sorted_bins:
            pick = cv2.compare(q, float(b), cv2.CMP_EQ)
            cv2.bitwise_and(pick, mask_u8, dst=pick)
            sorted_bins[b] = np.sort(values[pick.view(bool)])
        middle.append(sorted_bins[b][rank - (int(cum[b - 1]) if b else 0)])
    return float((middle[0] + middle[1]) / values.dtype.type(2))  # np.mean of the two, in their dtype


def masked_median_u8(image: np.ndarray, channel: int, mask_u8: np.ndarray) -> float:
    """The median of a uint8 image's ``channel`` where ``mask_u8`` is non-zero (at least one pixel),
    from its 256-bin histogram."""
    return median_of_histogram(cv2.calcHist([image], [channel], mask_u8, [256], [0, 256]).ravel())


def median_of_histogram(counts: np.ndarray) -> float:
    """``np.median`` of the values (at least one) that a 256-bin histogram counts."""
    cum = np.cumsum(counts.astype(np.int64))
    n = int(cum[-1])
    lo, hi = np.searchsorted(cum, ((n - 1) // 2, n // 2), side="right").tolist()  # values at sorted indices (n-1)//2, n//2
    return (lo + hi) / 2.0
