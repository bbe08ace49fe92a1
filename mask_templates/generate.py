"""Draw the mask templates procedurally: ``python -m mask_templates.generate``.

Texture space: the PNG is W x H pixels; u = x / (W - 1) runs from the subject's right (u = 0, image
left on a frontal face) to the subject's left; v = y / (H - 1) runs from the top edge (over the
nose bridge) to the bottom edge (under the chin). RGB holds a neutral-grey texture (folds, seams,
stitching) that is multiplied by a colour or pattern at run time; alpha carves the outline.

Geometry in the json: the top edge passes ``top.offset_mm`` above the named landmark at the centre
and through the ``side_top`` landmarks at the sides; the bottom edge passes ``bottom.offset_mm``
below the chin landmark and through ``side_bottom`` at the sides; ``azimuth_deg`` is how far the
mask wraps around the head on each side; ``standoff_mm`` how far it stands off the skin.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
W, H = 400, 240
LICENCE = "CC0-1.0 (drawn procedurally by mask_templates/generate.py, part of maskbench)"

COMMON_ANCHORS = {
    "nose_bridge": {"landmarks": [27, 28], "meaning": "top edge centre rests on the nose bridge"},
    "nose_tip": {"landmarks": [30], "meaning": "covered, pulls the fabric forward"},
    "cheeks": {"landmarks": [1, 15], "meaning": "top corners, on the cheeks below the eyes"},
    "jaw": {"landmarks": [3, 4, 5, 11, 12, 13], "meaning": "lower sides follow the jaw line"},
    "chin": {"landmarks": [8], "meaning": "bottom edge centre, under the chin"},
}


#: Outline of the moulded cups (N95, half-face respirator): a superellipse of this power. An ellipse
#: (power 2) left the jaw bare at the sides, its rim rising from the chin to a point on the cheek;
#: real cups and half-masks seal along the jaw to under the chin. Fuller outlines also read as masks:
#: on the 1,005 AFLW2000 dev-half photos with every face given an N95, the detector passed 954 (power
#: 2), 957 (2.8), 962 (3.5); with a respirator 922, 937, 944 (measured when chosen; the README has
#: the rates of the code as it is).
CUP_POWER = 3.5
#: The lower half of the cloth mask's outline (its top is straight across the nose): 927 (power 2)
#: and 937 (3) of the 1,005 dev-half faces with every face given a cloth mask.
CLOTH_BOTTOM_POWER = 3.0
#: The folded KN95: the centre fold runs from the top point to the bottom point; the side edges,
#: where the ear loops are welded, span 70 % of the fold's height (they were 46 %: the lower edge
#: then rose from the chin to the middle of the cheek and left the jaw bare; on the dev half with
#: every face given a KN95: 933 (46 %), 946 (61 %), 959 (71 %) of 1,005 read as masked).
KN95_OUTLINE = [[6, 22], [W // 2, 4], [W - 7, 22], [W - 7, 190], [W // 2, H - 5], [6, 190]]


def _superellipse(centre: tuple[float, float], axes: tuple[float, float], power: float,
                  lower_half_only: bool = False) -> np.ndarray:
    """Points (x 16, for cv2's 4 fractional bits) of |x / ax|^power + |y / ay|^power = 1 around
    ``centre``; with ``lower_half_only`` the half below the centre."""
    t = np.linspace(0.0, np.pi if lower_half_only else 2.0 * np.pi, 721)
    c, s = np.cos(t), np.sin(t)
    x = centre[0] + axes[0] * np.sign(c) * np.abs(c) ** (2.0 / power)
    y = centre[1] + axes[1] * np.sign(s) * np.abs(s) ** (2.0 / power)
    return np.round(np.column_stack([x, y]) * 16).astype(np.int32)


def outline(kind: str) -> np.ndarray:
    """Alpha mask (H, W) uint8 of a mask outline."""
    a = np.zeros((H, W), np.uint8)
    if kind == "rect":
        cv2.rectangle(a, (6, 10), (W - 7, H - 11), 255, -1)
        a = cv2.GaussianBlur(a, (0, 0), 6)
        a = np.where(a > 128, 255, 0).astype(np.uint8)
    elif kind == "oval":
        cv2.fillPoly(a, [_superellipse((W / 2, H / 2), (W / 2 - 6, H / 2 - 6), CUP_POWER)], 255, cv2.LINE_8, 4)
    elif kind == "kn95":
        cv2.fillConvexPoly(a, np.array(KN95_OUTLINE, np.int32), 255)
    elif kind == "cloth":
        bottom = _superellipse((W / 2, H / 2 + 10), (W / 2 - 6, H / 2 - 8), CLOTH_BOTTOM_POWER, lower_half_only=True)
        cv2.fillPoly(a, [bottom], 255, cv2.LINE_8, 4)
        cv2.rectangle(a, (6, 18), (W - 7, H // 2 + 10), 255, -1)
    return a


def draw(name: str) -> np.ndarray:
    """RGBA (H, W, 4) template image."""
    rgb = np.full((H, W, 3), 225, np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if name == "surgical":
        alpha = outline("rect")
        for y0 in (70, 120, 170):  # pleats: a shadow under a light fold
            rgb -= (38 * np.exp(-((yy - y0) / 5.0) ** 2))[..., None]
            rgb += (18 * np.exp(-((yy - y0 + 9) / 6.0) ** 2))[..., None]
        border = cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((13, 13), np.uint8)) > 0
        rgb[border] *= 0.88
        cv2.line(rgb, (W // 2 - 60, 22), (W // 2 + 60, 22), (150, 150, 150), 5)  # nose wire
        for x0, x1 in ((6, 26), (W - 27, W - 7)):  # side binding: a folded strip, welded in dashes
            rgb[:, x0:x1] *= 1.05
            rgb[:, x1 - 2 if x0 < W // 2 else x0 : x1 if x0 < W // 2 else x0 + 2] *= 0.8
            for y in range(14, H - 14, 9):
                cv2.line(rgb, ((x0 + x1) // 2, y), ((x0 + x1) // 2, y + 4), (190, 190, 190), 2)
        for y in (16, H - 17):  # top and bottom hems
            cv2.line(rgb, (26, y), (W - 27, y), (205, 205, 205), 2)
    elif name == "n95":
        alpha = outline("oval")
        r = np.hypot((xx - W / 2) / (W / 2), (yy - H / 2) / (H / 2))
        rgb *= (1.0 - 0.10 * r**2)[..., None]
        rim = _superellipse((W / 2, H / 2), (W / 2 - 22, H / 2 - 20), CUP_POWER)  # the moulded rim, inside the edge
        cv2.polylines(rgb, [rim], True, (200, 200, 200), 2, cv2.LINE_8, 4)
        cv2.line(rgb, (W // 2 - 50, 26), (W // 2 + 50, 26), (170, 170, 170), 6)
        cv2.circle(rgb, (int(W * 0.70), int(H * 0.62)), 26, (120, 120, 120), -1)  # exhalation valve
        cv2.circle(rgb, (int(W * 0.70), int(H * 0.62)), 18, (165, 165, 165), -1)
    elif name == "kn95":
        alpha = outline("kn95")
        cv2.line(rgb, (W // 2, 4), (W // 2, H - 5), (150, 150, 150), 3)  # centre fold
        pts = np.array([[14, 29], [W // 2, 12], [W - 15, 29], [W - 15, 183], [W // 2, H - 14], [14, 183]], np.int32)  # 8 px in
        cv2.polylines(rgb, [pts], True, (185, 185, 185), 2, lineType=cv2.LINE_AA)
        for t in np.linspace(0, 1, 60):  # ultrasonic weld dots along the edge
            p = pts[int(t * 5.999)] * (1 - (t * 6 % 1)) + pts[(int(t * 5.999) + 1) % 6] * (t * 6 % 1)
            cv2.circle(rgb, (int(p[0]), int(p[1])), 2, (170, 170, 170), -1)
    elif name == "cloth":
        alpha = outline("cloth")
        cv2.line(rgb, (W // 2, 12), (W // 2, H - 4), (160, 160, 160), 3)  # centre seam
        noise = np.random.default_rng(0).normal(0, 6, (H, W)).astype(np.float32)
        rgb += cv2.GaussianBlur(noise, (0, 0), 1.0)[..., None]
        border = cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((9, 9), np.uint8)) > 0
        rgb[border] *= 0.85
        hem = cv2.erode(alpha, np.ones((17, 17), np.uint8))  # stitched hem 8 px inside the edge
        contours, _ = cv2.findContours(hem, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for k, (x, y) in enumerate(contours[0].reshape(-1, 2)):
            if k % 10 < 6:
                rgb[y, x] *= 0.72
    elif name == "respirator":
        alpha = outline("oval")
        rgb[:] = 200
        r = np.hypot((xx - W / 2) / (W / 2), (yy - H / 2) / (H / 2))
        rgb *= (1.0 - 0.25 * r**2)[..., None]
        for cx in (int(W * 0.2), int(W * 0.8)):  # filter cartridges
            cv2.circle(rgb, (cx, int(H * 0.62)), 46, (120, 120, 120), -1)
            cv2.circle(rgb, (cx, int(H * 0.62)), 36, (150, 150, 150), -1)
            for k in range(-2, 3):
                cv2.line(rgb, (cx - 30, int(H * 0.62) + 12 * k), (cx + 30, int(H * 0.62) + 12 * k), (125, 125, 125), 2)
        cv2.circle(rgb, (W // 2, int(H * 0.66)), 30, (110, 110, 110), -1)  # exhale valve
        cv2.circle(rgb, (W // 2, int(H * 0.66)), 20, (140, 140, 140), -1)
    else:
        raise ValueError(name)
    out = np.dstack([np.clip(rgb, 0, 255).astype(np.uint8), alpha])
    return out


#: Colour frequencies are ESTIMATES (no survey was used): surgical masks mostly light blue, then
#: white, black and grey; KN95 mostly white and black; N95 mostly white; cloth mostly dark solids.
#: Beige is not offered as a plain cloth colour: on a face it reads as skin.
SPECS = {
    "surgical": {
        "description": "3-ply surgical mask with horizontal pleats, a nose wire, side binding and ear loops",
        "geometry": {"top": {"landmark": 28, "offset_mm": 2}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 18},
                     "side_bottom": [5, 11], "azimuth_deg": 78, "standoff_mm": 3, "max_protrusion_mm": 22,
                     "silhouette_margin_mm": 2},
        "material": "nonwoven",
        "straps": {"kind": "ear_loop", "width_mm": 2.5, "color": "white_unless_dark", "anchor_v": [0.06, 0.94]},
        "colors": {"light_blue": [222, 196, 140], "white": [236, 236, 234], "black": [42, 42, 44],
                   "grey": [160, 160, 158], "pink": [200, 170, 235], "mint": [200, 230, 190]},
        "color_weights": {"light_blue": 0.55, "white": 0.15, "black": 0.15, "grey": 0.07, "pink": 0.04, "mint": 0.04},
        "patterns": {},
    },
    "n95": {
        "description": "cup-shaped N95 respirator with nose clip, exhalation valve and head straps",
        "geometry": {"top": {"landmark": 28, "offset_mm": -3}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 10},
                     "side_bottom": [5, 11], "azimuth_deg": 70, "standoff_mm": 9, "max_protrusion_mm": 30,
                     "silhouette_margin_mm": 4},
        "material": "nonwoven",
        "straps": {"kind": "head_strap", "width_mm": 4.0, "color": "same", "anchor_v": [0.3, 0.7]},
        "colors": {"white": [235, 235, 235], "grey": [175, 175, 175], "yellow": [120, 220, 235]},
        "color_weights": {"white": 0.7, "grey": 0.15, "yellow": 0.15},
        "patterns": {},
    },
    "kn95": {
        "description": "folded KN95 with a vertical centre fold, welded edges and ear loops",
        "geometry": {"top": {"landmark": 28, "offset_mm": 0}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 14},
                     "side_bottom": [5, 11], "azimuth_deg": 72, "standoff_mm": 6, "max_protrusion_mm": 30,
                     "silhouette_margin_mm": 3},
        "material": "nonwoven",
        "straps": {"kind": "ear_loop", "width_mm": 3.0, "color": "same", "anchor_v": [0.2, 0.6]},
        "colors": {"white": [238, 238, 238], "black": [40, 40, 40], "grey": [160, 160, 160]},
        "color_weights": {"white": 0.55, "black": 0.35, "grey": 0.10},
        "patterns": {},
    },
    "cloth": {
        "description": "two-panel cloth mask with a centre seam and hems; plain or patterned at run time",
        "geometry": {"top": {"landmark": 28, "offset_mm": 1}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 14},
                     "side_bottom": [4, 12], "azimuth_deg": 80, "standoff_mm": 4, "max_protrusion_mm": 22,
                     "silhouette_margin_mm": 2},
        "material": "woven",
        "straps": {"kind": "ear_loop", "width_mm": 3.5, "color": "same", "anchor_v": [0.1, 0.75]},
        "colors": {"black": [38, 38, 40], "navy": [92, 48, 34], "charcoal": [70, 72, 74], "grey": [140, 140, 138],
                   "white": [228, 230, 232], "denim": [130, 92, 62], "burgundy": [52, 36, 112], "olive": [60, 96, 92]},
        "color_weights": {"black": 0.3, "navy": 0.18, "charcoal": 0.1, "grey": 0.1, "white": 0.08, "denim": 0.1,
                          "burgundy": 0.07, "olive": 0.07},
        "patterns": {
            "stripes": {"period_mm": 8.0, "duty": 0.5},
            "gingham": {"period_mm": 6.0},
            "dots": {"period_mm": 9.0, "diameter_mm": 3.0},
        },
        "palettes": {"navy/white": [[92, 48, 34], [225, 225, 222]], "black/white": [[38, 38, 40], [220, 220, 218]],
                     "burgundy/cream": [[52, 36, 112], [200, 225, 235]], "grey/charcoal": [[140, 140, 138], [70, 72, 74]],
                     "denim/light_blue": [[130, 92, 62], [215, 190, 160]], "olive/khaki": [[60, 96, 92], [140, 175, 185]]},
    },
    "respirator": {
        "description": "half-face gas respirator with two filter cartridges, an exhale valve and rubber straps",
        "geometry": {"top": {"landmark": 28, "offset_mm": -5}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 14},
                     "side_bottom": [5, 11], "azimuth_deg": 68, "standoff_mm": 11, "max_protrusion_mm": 35,
                     "silhouette_margin_mm": 6},
        "material": "rubber",
        "straps": {"kind": "head_strap", "width_mm": 7.0, "color": "black", "anchor_v": [0.3, 0.7]},
        "colors": {"black": [55, 55, 55], "dark_grey": [85, 85, 85], "olive": [60, 100, 95]},
        "color_weights": {"black": 0.6, "dark_grey": 0.25, "olive": 0.15},
        "patterns": {},
    },
}


def main(out_dir: Path = HERE) -> None:
    """Write every template's PNG and json into ``out_dir`` (default: this folder)."""
    for name, spec in SPECS.items():
        cv2.imwrite(str(out_dir / f"{name}.png"), draw(name), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        doc = {"name": name, "licence": LICENCE, "texture": f"{name}.png", "texture_size_px": [W, H],
               "anchors": COMMON_ANCHORS, **spec,
               "color_weights_note": "estimated frequencies, not from a survey"}
        (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
