"""Fit the mask constants that are measured on real photos, on the FIT half of the AFLW2000 dev half.

The dev half's 1,005 photos, sorted by file name, are split by index: the even-indexed photos are the
FIT photos (503), the odd-indexed ones the CHECK photos (502). Constants are fitted here on FIT only;
the tests that assert on them (``tests/test_masks_real.py``) read CHECK photos only, so no test
passes because its constant was tuned on the same faces.

* ``DLIB_BOX_SHIFT`` / ``DLIB_BOX_SIDE`` (``maskbench/synthesis/landmarks.py``): dlib's HOG detector
  box relative to the box of the labelled landmarks 17-67 and the chin; medians over the FIT photos
  where the detector found the labelled face (IoU >= 0.1 with the landmark box, the rule of ``dlib_detected_landmarks``).
* ``OCCLUDER_CHROMA_Z`` (``maskbench/synthesis/blending.py``): the smallest chroma distance, on a grid
  of half spreads, at which at most ``OCCLUDER_TARGET_RATE`` of the FIT faces have anything kept in
  front of the mask (AFLW2000 shows few hands or objects over the mouth; a rule that flags more is
  reading skin as an occluder).

Run: ``.venv/bin/python docs/fit_constants.py`` (about 2 minutes on 2 cores; needs
``../shared/fixtures/real/aflw2000_dev`` or ``$MASKBENCH_FIXTURES``). It prints the fitted values beside
the ones in the code and exits 1 when they differ.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REAL = Path(os.environ.get("MASKBENCH_FIXTURES", HERE.parents[1] / "shared" / "fixtures" / "real"))

#: The share of FIT faces the occluder rule may flag (see the module docstring).
OCCLUDER_TARGET_RATE = 0.10
Z_GRID = (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)


def fit_photos(samples: list) -> list:  # type: ignore[type-arg]
    """The FIT photos: even index in file-name order."""
    return samples[0::2]


def check_photos(samples: list) -> list:  # type: ignore[type-arg]
    """The CHECK photos: odd index in file-name order (what the tests assert on)."""
    return samples[1::2]


def fit_dlib_box(samples: list) -> tuple[tuple[float, float], float, int]:  # type: ignore[type-arg]
    import cv2

    from maskbench import geometry
    from maskbench.synthesis.landmarks import INNER_LANDMARKS, dlib_models
    from maskbench.types import BBox

    detector, _ = dlib_models()
    dx, dy, side = [], [], []
    for s in samples:
        image = cv2.imread(str(s.image_path))
        b = BBox.from_points(s.landmarks_px[INNER_LANDMARKS])
        dets = list(detector(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 1))
        if not dets:
            continue
        boxes = [(d.left(), d.top(), d.right(), d.bottom()) for d in dets]
        iou = geometry.box_iou((b.x_min, b.y_min, b.x_max, b.y_max), boxes)
        k = int(np.argmax(iou))
        if iou[k] < 0.1:
            continue
        left, top, right, bottom = boxes[k]
        dx.append(((left + right) / 2 - (b.x_min + b.x_max) / 2) / b.width_px)
        dy.append(((top + bottom) / 2 - (b.y_min + b.y_max) / 2) / b.height_px)
        side.append((right - left) / b.height_px)
    return (round(float(np.median(dx)), 3), round(float(np.median(dy)), 3)), round(float(np.median(side)), 2), len(dx)


def occluder_rates(samples: list) -> dict[float, float]:  # type: ignore[type-arg]
    """Share of faces with an occluder kept on top, per OCCLUDER_CHROMA_Z on the grid."""
    from maskbench.io.atomic import read_image
    from maskbench.synthesis import blending
    from maskbench.synthesis.mask import SynthesisParams, mask_sample

    saved = blending.OCCLUDER_CHROMA_Z
    rates = {}
    images = [read_image(s.image_path) for s in samples]
    try:
        for z in Z_GRID:
            blending.OCCLUDER_CHROMA_Z = z
            flagged = 0
            for k, (s, image) in enumerate(zip(samples, images)):
                masked, _ = mask_sample(s, image, np.random.default_rng(k), SynthesisParams())
                flagged += masked.extra["occluder_px"] > 0
            rates[z] = flagged / len(samples)
    finally:
        blending.OCCLUDER_CHROMA_Z = saved
    return rates


def main() -> int:
    from maskbench.datasets import open_reader
    from maskbench.synthesis import blending, landmarks

    dev = REAL / "aflw2000_dev"
    if not dev.is_dir():
        print(f"AFLW2000 dev half not found at {dev}", file=sys.stderr)
        return 2
    fit = fit_photos(list(open_reader(dev)))
    shift, side, n = fit_dlib_box(fit)
    print(f"dlib box on {n} detections of {len(fit)} FIT photos: shift {shift}, side {side} "
          f"(code: {landmarks.DLIB_BOX_SHIFT}, {landmarks.DLIB_BOX_SIDE})")
    rates = occluder_rates(fit)
    z = min((z for z, r in rates.items() if r <= OCCLUDER_TARGET_RATE), default=max(Z_GRID))
    print("occluder rate per OCCLUDER_CHROMA_Z on FIT: " + ", ".join(f"{k}: {v:.3f}" for k, v in rates.items()))
    print(f"OCCLUDER_CHROMA_Z fitted {z} (code: {blending.OCCLUDER_CHROMA_Z})")
    same = (shift == tuple(landmarks.DLIB_BOX_SHIFT) and side == landmarks.DLIB_BOX_SIDE
            and z == blending.OCCLUDER_CHROMA_Z)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
