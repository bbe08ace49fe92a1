"""What in front of the lower face is not its skin (hair, a hand of another colour, an object) and stays on top of the mask."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from maskbench.synthesis.stats import masked_median, masked_median_u8

#: An occluder blob must cover at least this fraction of the mask's area.
OCCLUDER_MIN_FRACTION = 0.03


#: The chroma distance (in robust spreads of the covered skin) past which a pixel is not this skin:
#: on a grid of half spreads, the one whose flagged faces best agree (F1) with labels by eye of the
#: even-indexed AFLW2000 dev photos (``docs/fit_constants.py``, ``docs/occluder_labels_fit.csv``);
#: its rate test reads the odd-indexed ones only.
OCCLUDER_CHROMA_Z = 3.5


#: Shadows up to this many times darker than the covered skin are read as skin when their chroma,
#: scaled up by the ratio, is the skin's (:func:`shade_lifted_distance`). Set before looking; one
#: other try, 2, left the masks of deeply shadowed faces torn (image01014, image00861 of the dev half).
SHADE_MAX_GAIN = 4.0


#: (Cr, Cb, robust spread) of some skin: :func:`skin_chroma`.
Chroma = tuple[float, float, float]


def find_occluders(region_bgr: np.ndarray, area: np.ndarray, keep_out: np.ndarray | None = None,
                   behind: np.ndarray | None = None,
                   skin_elsewhere: Chroma | Callable[[], Chroma | None] | None = None) -> np.ndarray:
    """Pixels of ``area`` (the mask's footprint) that are not this face's skin and reach in from its edge.

    The skin is modelled by the robust centre and spread of (Cr, Cb) over ``area`` minus
    ``keep_out`` (lips, nostrils: parts of the face that are not skin-coloured but belong under the
    mask). A pixel is foreign when its chroma lies :data:`OCCLUDER_CHROMA_Z` spreads away, as it is
    and as if lit like the skin (a shadow keeps the skin's hue: :func:`shade_lifted_distance`); a
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
    mcr, mcb, cr, cb, dist, spread = chroma_model(ycc, ref_u8)
    spread = max(spread, 2.5)
    foreign = (dist > OCCLUDER_CHROMA_Z * spread) & area

    def too_few() -> bool:  # no blob can be large enough: each test below only narrows ``foreign``
        return cv2.countNonZero(foreign.view(np.uint8)) < OCCLUDER_MIN_FRACTION * total

    if too_few():
        return out
    foreign &= shade_lifted_distance(ycc, ref_u8, mcr, mcb, cr, cb) > OCCLUDER_CHROMA_Z * spread
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


def shade_lifted_distance(ycc: np.ndarray, ref_u8: np.ndarray, mcr: float, mcb: float, cr: np.ndarray,
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
    cr, cb, *_, spread = chroma_model(cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2YCrCb), where)
    return cr, cb, spread


def chroma_model(ycc: np.ndarray, where_u8: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, float]:
    """The chroma of the YCrCb pixels where ``where_u8`` is non-zero: (median Cr, median Cb, the Cr
    and Cb planes less them (float32), the distance from them, its robust spread: 1.4826 x its median)."""
    mcr, mcb = (masked_median_u8(ycc, c, where_u8) for c in (1, 2))
    cr, cb = ycc[..., 1].astype(np.float32), ycc[..., 2].astype(np.float32)
    cr -= np.float32(mcr)
    cb -= np.float32(mcb)
    dist = cv2.magnitude(cr, cb)
    return mcr, mcb, cr, cb, dist, masked_median(dist, where_u8, 362.0) * 1.4826  # dist <= 255.5 * sqrt(2)
