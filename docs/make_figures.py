"""Regenerate the README figures: docs/sample_renders.png and docs/rotation.png.

Run: ``.venv/bin/python docs/make_figures.py`` (about 20 s). Everything is rendered by maskbench
itself; no real data is used, so the figures can be committed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from maskbench.augment.rotation import rotate_sample
from maskbench.datasets import open_dataset
from maskbench.datasets.sample import make_sample_dataset
from maskbench.io.atomic import read_image
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


def masked_tile(sample: Sample, image: np.ndarray, mask_type: str, seed: int) -> np.ndarray:
    from maskbench.synthesis.pipeline import SynthesisParams, mask_sample

    params = SynthesisParams(mask_types=(mask_type,))
    masked, out = mask_sample(sample, image, np.random.default_rng(seed), params)
    text = f"{mask_type} yaw {sample.pose.yaw_deg:.0f} ({masked.extra['landmark_source']})"
    return caption(tile(crop_around(out, sample, 1.5), 200), text)


def masks_figure(root: Path) -> None:
    """Row 1: masked renders across yaw; row 2: masked real AFLW2000 fixture images (if present)."""
    types = ["surgical", "n95", "kn95", "cloth", "respirator"]
    make_sample_dataset("AFLW2000", root / "masks", n=40, seed=5, progress=False)
    renders = sorted((s for s in open_dataset(root / "masks") if abs(s.pose.pitch_deg) < 25),
                     key=lambda s: s.pose.yaw_deg)
    picks = [renders[int(round(k * (len(renders) - 1) / 4))] for k in range(5)]
    rows = [np.concatenate([masked_tile(s, read_image(s.image_path), t, k) for k, (s, t) in
                            enumerate(zip(picks, types))], axis=1)]
    real = REPO.parent / "shared" / "fixtures" / "real" / "aflw2000"
    if real.is_dir():
        by_id = {s.id: s for s in open_dataset(real)}
        ids = ["image00473", "image01621", "image00782", "image00814", "image00108"]
        rows.append(np.concatenate([masked_tile(by_id[i], read_image(by_id[i].image_path), t, k)
                                    for k, (i, t) in enumerate(zip(ids, types))], axis=1))
    save_small_png(HERE / "masks.png", np.concatenate(rows, axis=0))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        for name in ("BIWI", "300W_LP", "AFLW2000"):
            make_sample_dataset(name, root / name, n=8, seed=0, progress=False)
            tiles = []
            for s in list(open_dataset(root / name))[:4]:
                img = draw_pose_axes(read_image(s.image_path), s)
                if s.landmarks_px is not None:
                    for x, y in s.landmarks_px:
                        cv2.circle(img, (int(round(x)), int(round(y))), 1, (0, 255, 255), -1)
                e = s.pose.euler_deg()
                text = f"{name} y{e['yaw_deg']:.0f} p{e['pitch_deg']:.0f} r{e['roll_deg']:.0f}"
                tiles.append(caption(tile(crop_around(img, s) if name == "BIWI" else img), text))
            rows.append(np.concatenate(tiles, axis=1))
        save_small_png(HERE / "sample_renders.png", np.concatenate(rows, axis=0))

        reader = open_dataset(root / "AFLW2000")
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
