"""Regenerate the README figures: docs/sample_renders.png, docs/rotation.png, docs/masks.png and masks_2x.png.

Run: ``.venv/bin/python docs/make_figures.py`` (about 20 s), or ``... make_figures.py --masks`` for
the masks figure alone. The sample and rotation figures are rendered by maskbench itself; the masks
figure uses real photos of the AFLW2000 dev half when ``../shared/fixtures/real/aflw2000_dev`` exists
(procedural renders otherwise).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from maskbench import devdata
from maskbench.augment.rotation import rotate_sample
from maskbench.datasets import open_reader
from maskbench.io.atomic import read_image
from maskbench.sampledata import make_sample_dataset
from maskbench.types import Sample

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def draw_pose_axes(image: np.ndarray, sample: Sample) -> np.ndarray:
    """Head axes at the box centre: x (subject's left) red, y (chin) green, facing direction blue."""
    out = image.copy()
    cx, cy = sample.bbox.center_px
    length = 0.5 * max(sample.bbox.width_px, sample.bbox.height_px)
    r = sample.pose.matrix
    for axis, color in ((r[:, 0], (0, 0, 255)), (r[:, 1], (0, 200, 0)), (-r[:, 2], (255, 80, 0))):
        end = (int(round(cx + length * axis[0])), int(round(cy + length * axis[1])))
        cv2.arrowedLine(out, (int(round(cx)), int(round(cy))), end, color, 2, tipLength=0.15)
    return out


def caption(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def tile(image: np.ndarray, size: int = 240) -> np.ndarray:
    h, w = image.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(image, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.uint8)
    y0, x0 = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas


def crop_around(image: np.ndarray, sample: Sample, scale: float = 1.9) -> np.ndarray:
    cx, cy = sample.bbox.center_px
    half = int(scale * 0.5 * max(sample.bbox.width_px, sample.bbox.height_px))
    padded = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_CONSTANT)
    x, y = int(cx) + half, int(cy) + half
    return padded[y - half : y + half, x - half : x + half]


def save_small_png(path: Path, image_bgr: np.ndarray) -> None:
    """A 256-colour palette PNG: a fraction of the size of a true-colour one, fine for figures."""
    from PIL import Image

    rgb = Image.fromarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def masked_tile(sample: Sample, image: np.ndarray, mask_type: str, seed: int, size: int = 200) -> np.ndarray:
    from maskbench.synthesis.mask import SynthesisParams, mask_sample

    params = SynthesisParams(mask_types=(mask_type,))
    masked, out = mask_sample(sample, image, np.random.default_rng(seed), params)
    text = f"{mask_type} yaw {sample.pose.yaw_deg:.0f} {masked.extra['mask_color']}"
    return caption(tile(crop_around(out, sample, 1.35), size), text)


#: Yaw columns of the masks figure (degrees) and how far from them a photo may be.
MASK_YAWS = (-90.0, -60.0, -30.0, 0.0, 30.0, 60.0, 90.0)
MASK_TYPES = ("surgical", "n95", "kn95", "cloth", "respirator")


def masks_figure(root: Path) -> None:
    """Every mask type (rows) across yaw -90..90 (columns) on real photos of the AFLW2000 dev half
    (``../shared/fixtures/real/aflw2000_dev``; procedural renders when it is absent). Each cell is
    a different photo: the (row)-th nearest in yaw among |pitch| < 20 and |roll| < 20."""
    dev = devdata.dev_half()
    if dev.is_dir():
        pool = list(open_reader(dev))
    else:
        make_sample_dataset("AFLW2000", root / "masks", n=120, seed=5, progress=False)
        pool = list(open_reader(root / "masks"))
    pool = [s for s in pool if abs(s.pose.pitch_deg) < 20 and abs(s.pose.roll_deg) < 20]
    rows, rows_2x = [], []
    for r, mask_type in enumerate(MASK_TYPES):
        tiles, tiles_2x = [], []
        for c, yaw in enumerate(MASK_YAWS):
            s = sorted(pool, key=lambda x: (abs(x.pose.yaw_deg - yaw), x.id))[r]
            tiles.append(masked_tile(s, read_image(s.image_path), mask_type, 10 * r + c))
            if abs(yaw) >= 60:  # the same faces and masks at twice the size: straps and shape at large yaw
                tiles_2x.append(masked_tile(s, read_image(s.image_path), mask_type, 10 * r + c, size=400))
        rows.append(np.concatenate(tiles, axis=1))
        rows_2x.append(np.concatenate(tiles_2x, axis=1))
    save_small_png(HERE / "masks.png", np.concatenate(rows, axis=0))
    save_small_png(HERE / "masks_2x.png", np.concatenate(rows_2x, axis=0))


def main() -> None:
    if "--masks" in sys.argv[1:]:  # only the masks figure (real photos when ../shared is there)
        with tempfile.TemporaryDirectory() as tmp:
            masks_figure(Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        for name in ("BIWI", "300W_LP", "AFLW2000"):
            make_sample_dataset(name, root / name, n=8, seed=0, progress=False)
            tiles = []
            for s in list(open_reader(root / name))[:4]:
                img = draw_pose_axes(read_image(s.image_path), s)
                if s.landmarks_px is not None:
                    for x, y in s.landmarks_px:
                        cv2.circle(img, (int(round(x)), int(round(y))), 1, (0, 255, 255), -1)
                e = s.pose.euler_deg()
                text = f"{name} y{e['yaw_deg']:.0f} p{e['pitch_deg']:.0f} r{e['roll_deg']:.0f}"
                tiles.append(caption(tile(crop_around(img, s) if name == "BIWI" else img), text))
            rows.append(np.concatenate(tiles, axis=1))
        save_small_png(HERE / "sample_renders.png", np.concatenate(rows, axis=0))

        reader = open_reader(root / "AFLW2000")
        s = min(reader, key=lambda x: abs(x.pose.yaw_deg - 30) + abs(x.pose.pitch_deg))
        image = read_image(s.image_path)
        tiles = []
        for angle in (-60.0, -30.0, 0.0, 30.0, 60.0):
            r, rotated = rotate_sample(reader.fmt, s, image, angle, "face")
            e = r.pose.euler_deg()
            text = f"theta {angle:+.0f}: y{e['yaw_deg']:.1f} p{e['pitch_deg']:.1f} r{e['roll_deg']:.1f}"
            tiles.append(caption(tile(draw_pose_axes(rotated, r), 260), text))
        save_small_png(HERE / "rotation.png", np.concatenate(tiles, axis=1))
        masks_figure(root)


if __name__ == "__main__":
    main()
