"""Ear loops and head straps: their colour, their drawn lines attached to the mask, and their alpha."""

from __future__ import annotations

import cv2
import numpy as np

from maskbench.synthesis.compositing import grey3, line_box, photo_colour, times_colour
from maskbench.synthesis.fitting import STRAP_REACH_MM, Fit
from maskbench.synthesis.photometry import Look
from maskbench.synthesis.templates import MaskTemplate

STRAP_COLORS_BGR = {"white": (236, 236, 234), "black": (40, 40, 42)}


#: A mask darker than this (its brightest channel) gets loops of its own colour under the strap
#: colour ``white_unless_dark``: black surgical masks come with black ear loops, light ones with white.
#: Chosen to split the templates' palettes into dark and light (commit b0fe5e1); not fitted.
DARK_MASK_MAX = 100

#: Brightness of a strap's sides against its middle (a round cord under the photo's light). Chosen by
#: eye on dev-half contact sheets (commit 410801c); not fitted.
STRAP_SIDE_SHADE = 0.7

#: The part of a head strap's visible run that fades out at its far end: it goes on into the hair
#: and round the back of the head, which the photo shows and the generic head does not know.
#: Ear loops end at the ear (they pass behind it) and do not fade. Chosen by eye (commit 410801c).
STRAP_FADE = {"head_strap": 0.4}


def with_straps(mask_bgr: np.ndarray, f_alpha: np.ndarray, f_light: np.ndarray, fit: Fit, template: MaskTemplate,
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
    lines = attach(fit.straps_px, drawn, np.array([fit.x0, fit.y0], np.float64), STRAP_REACH_MM * fit.px_per_mm)
    alpha = strap_alpha((by1 - by0, bx1 - bx0), lines, (bx0, by0), width_px,
                        STRAP_FADE.get(template.straps.get("kind", "ear_loop"), 0.0))
    strap_rgb = np.asarray(strap_colour(template.straps.get("color", "same"), color_bgr, template.colors_bgr), np.float32)
    strap_rgb = photo_colour(np.broadcast_to(strap_rgb / np.float32(255.0), (1, 1, 3)), look)[0, 0]
    # a round cord is lit along its middle and darker at its sides; the colour only where a strap runs
    # (what lies under alpha 0 never shows: :func:`_spread_colour` weighs the colour by its alpha)
    core = strap_alpha(alpha.shape, lines, (bx0, by0), max(1, width_px // 2))
    lit_rgb = strap_rgb * np.float32(0.9 * look.gain * 255.0)
    fabric_box = (fit.x0 - bx0, fit.y0 - by0, fit.x0 - bx0 + fw, fit.y0 - by0 + fh)
    for line in lines:  # outside the fabric's box
        lo, hi = (corner - (bx0, by0) for corner in line_box(line, width_px + 2))
        clipped = (max(lo[0], 0), max(lo[1], 0), min(hi[0], bx1 - bx0), min(hi[1], by1 - by0))
        for x0, y0, x1, y1 in minus(clipped, fabric_box):
            r = (slice(y0, y1), slice(x0, x1))
            mask_bgr[r] = times_colour(cord_shade(core[r]), lit_rgb)
    # in the fabric's box: the fabric, over the straps where they run (none under the drawn fabric)
    sa = alpha[sub].copy()
    sa[drawn] = 0.0
    fabric, alpha_in = mask_bgr[sub], alpha[sub]
    alpha_in[...] = f_alpha
    boxes = []  # the strap's own box inside the fabric's: the straps touch its sides only
    for line in lines:
        lo, hi = (corner - (fit.x0, fit.y0) for corner in line_box(line, width_px + 2))
        r = (slice(max(lo[1], 0), max(min(hi[1], fh), 0)), slice(max(lo[0], 0), max(min(hi[0], fw), 0)))
        if sa[r].any():
            boxes.append((r, fabric[r].copy()))  # the fabric before any strap (boxes may overlap)
    for r, plain in boxes:
        under = sa[r] * (1 - f_alpha[r])
        total = f_alpha[r] + under
        strap_px = times_colour(np.float32(0.9) * f_light[r] * cord_shade(core[sub][r]), strap_rgb) * np.float32(255.0)
        fabric[r] = (plain * grey3(f_alpha[r]) + strap_px * grey3(under)) / grey3(np.maximum(total, 1e-6))
        alpha_in[r] = total
    return alpha


def strap_colour(name: str, mask_bgr: tuple[int, int, int], colors_bgr: dict[str, tuple[int, int, int]]) -> tuple[int, ...]:
    """BGR of a template's strap colour ``name``: ``same`` (the mask's), ``white_unless_dark``, one
    of the template's colours or of :data:`STRAP_COLORS_BGR`."""
    if name == "same" or (name == "white_unless_dark" and max(mask_bgr) < DARK_MASK_MAX):
        return tuple(mask_bgr)
    if name == "white_unless_dark":
        name = "white"
    return tuple(colors_bgr.get(name, STRAP_COLORS_BGR.get(name, (200, 200, 200))))


def minus(box: tuple[int, int, int, int], hole: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
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


def cord_shade(core: np.ndarray) -> np.ndarray:
    """A strap's brightness across it from its narrow core's coverage (1 along the middle)."""
    return np.float32(STRAP_SIDE_SHADE) + np.float32(1.0 - STRAP_SIDE_SHADE) * core


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


def attach(lines: tuple[np.ndarray, ...], fabric: np.ndarray, shift: np.ndarray, reach_px: float) -> list[np.ndarray]:
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
