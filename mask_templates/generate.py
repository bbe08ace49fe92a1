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


def outline(kind: str) -> np.ndarray:
    """Alpha mask (H, W) uint8 of a mask outline."""
    a = np.zeros((H, W), np.uint8)
    if kind == "rect":
        cv2.rectangle(a, (6, 10), (W - 7, H - 11), 255, -1)
        a = cv2.GaussianBlur(a, (0, 0), 6)
        a = np.where(a > 128, 255, 0).astype(np.uint8)
    elif kind == "oval":
        cv2.ellipse(a, (W // 2, H // 2), (W // 2 - 6, H // 2 - 6), 0, 0, 360, 255, -1)
    elif kind == "kn95":
        pts = np.array([[6, 40], [W // 2, 4], [W - 7, 40], [W - 7, 150], [W // 2, H - 5], [6, 150]], np.int32)
        cv2.fillConvexPoly(a, pts, 255)
    elif kind == "cloth":
        cv2.ellipse(a, (W // 2, H // 2 + 10), (W // 2 - 6, H // 2 - 8), 0, 0, 360, 255, -1)
        cv2.rectangle(a, (6, 18), (W - 7, H // 2), 255, -1)
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
    elif name == "n95":
        alpha = outline("oval")
        r = np.hypot((xx - W / 2) / (W / 2), (yy - H / 2) / (H / 2))
        rgb *= (1.0 - 0.10 * r**2)[..., None]
        cv2.ellipse(rgb, (W // 2, H // 2), (W // 2 - 22, H // 2 - 20), 0, 0, 360, (200, 200, 200), 2)
        cv2.line(rgb, (W // 2 - 50, 26), (W // 2 + 50, 26), (170, 170, 170), 6)
        cv2.circle(rgb, (int(W * 0.70), int(H * 0.62)), 26, (120, 120, 120), -1)  # exhalation valve
        cv2.circle(rgb, (int(W * 0.70), int(H * 0.62)), 18, (165, 165, 165), -1)
    elif name == "kn95":
        alpha = outline("kn95")
        cv2.line(rgb, (W // 2, 4), (W // 2, H - 5), (150, 150, 150), 3)  # centre fold
        pts = np.array([[14, 44], [W // 2, 12], [W - 15, 44], [W - 15, 146], [W // 2, H - 14], [14, 146]], np.int32)
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


SPECS = {
    "surgical": {
        "description": "3-ply surgical mask with horizontal pleats and a nose wire",
        "geometry": {"top": {"landmark": 28, "offset_mm": 2}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 12},
                     "side_bottom": [5, 11], "azimuth_deg": 78, "standoff_mm": 3},
        "colors": {"light_blue": [220, 200, 150], "white": [235, 235, 235], "black": [45, 45, 45],
                   "pink": [200, 170, 235], "mint": [200, 230, 190]},
        "patterns": [],
    },
    "n95": {
        "description": "cup-shaped N95 respirator with nose clip and exhalation valve",
        "geometry": {"top": {"landmark": 28, "offset_mm": -3}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 10},
                     "side_bottom": [5, 11], "azimuth_deg": 70, "standoff_mm": 9},
        "colors": {"white": [235, 235, 235], "grey": [175, 175, 175], "yellow": [120, 220, 235]},
        "patterns": [],
    },
    "kn95": {
        "description": "folded KN95 with a vertical centre fold and welded edges",
        "geometry": {"top": {"landmark": 28, "offset_mm": 0}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 14},
                     "side_bottom": [5, 11], "azimuth_deg": 72, "standoff_mm": 6},
        "colors": {"white": [238, 238, 238], "black": [40, 40, 40], "grey": [160, 160, 160]},
        "patterns": [],
    },
    "cloth": {
        "description": "two-panel cloth mask with a centre seam; coloured or patterned at run time",
        "geometry": {"top": {"landmark": 28, "offset_mm": 1}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 14},
                     "side_bottom": [4, 12], "azimuth_deg": 80, "standoff_mm": 4},
        "colors": {"navy": [110, 50, 30], "red": [50, 50, 190], "black": [40, 40, 40], "beige": [170, 200, 220],
                   "green": [70, 140, 60]},
        "patterns": ["stripes", "checks", "dots"],
    },
    "respirator": {
        "description": "half-face gas respirator with two filter cartridges and an exhale valve",
        "geometry": {"top": {"landmark": 28, "offset_mm": -5}, "side_top": [1, 15], "bottom": {"landmark": 8, "offset_mm": 14},
                     "side_bottom": [5, 11], "azimuth_deg": 68, "standoff_mm": 11},
        "colors": {"black": [55, 55, 55], "dark_grey": [85, 85, 85], "olive": [60, 100, 95]},
        "patterns": [],
    },
}


def main(out_dir: Path = HERE) -> None:
    """Write every template's PNG and json into ``out_dir`` (default: this folder)."""
    for name, spec in SPECS.items():
        cv2.imwrite(str(out_dir / f"{name}.png"), draw(name), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        doc = {"name": name, "licence": LICENCE, "texture": f"{name}.png", "texture_size_px": [W, H],
               "anchors": COMMON_ANCHORS, **spec}
        (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
