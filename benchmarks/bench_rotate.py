"""Rotation cost per image against the floor measured in the same run.

Floor: decode the image, ``cv2.warpAffine`` it, encode it (what any rotation tool must do).
Measured: the whole ``maskbench rotate`` path per sample: read the labels, decode, rotate image +
landmarks + pose + native fields, write image and labels atomically, and the labels.csv/manifest.
AFLW2000: 300 pairs (20 renders copied under 15 names each; the real set has 2,000): its floor is
only 2.1 ms per image, and 60 images (0.13 s per run) read anywhere from 1.15x to 1.23x over
repeated runs, while 300 read 1.13-1.14x. BIWI: 60 renders (its floor is 30 ms per image).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from common import aflw_tree, best_of_interleaved, spreads  # noqa: E402

from maskbench.augment.rotation import RotationParams, make_transform  # noqa: E402
from maskbench.datasets import open_reader  # noqa: E402
from maskbench.pipeline import write_variant  # noqa: E402
from maskbench.sampledata import make_sample_dataset  # noqa: E402

N = {"AFLW2000": 300, "BIWI": 60}


def floor_run(paths: list[Path], out: Path, suffix: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for k, p in enumerate(paths):
        img = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        rotated = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 30.0, 1.0), (w, h),
                                 borderMode=cv2.BORDER_REFLECT_101)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
        (out / f"{k}{suffix}").write_bytes(cv2.imencode(suffix, rotated, params)[1].tobytes())


def main() -> list[str]:
    lines = ["## Rotate (`maskbench rotate`, one copy per image)", "",
             "| dataset | images | floor s | rotate s | ms/img | ratio to floor | spreads (floor / rotate) |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("AFLW2000", "BIWI"):
            if name == "AFLW2000":
                aflw_tree(root, N[name], n_rendered=20)
            else:
                make_sample_dataset(name, root / name, n=N[name], seed=0, progress=False)
            reader = open_reader(root / name)
            paths = [s.image_path for s in reader]
            suffix = reader.fmt.image_suffix
            def floor(paths: list[Path] = paths, suffix: str = suffix) -> None:
                shutil.rmtree(root / "floor", ignore_errors=True)
                floor_run(paths, root / "floor", suffix)

            def full(name: str = name) -> None:
                r = open_reader(root / name)
                write_variant(r, root / "out", transform=make_transform(r.fmt, RotationParams()),
                            transform_name="rotate", parameters={}, seed=0, overwrite=True, progress=False)

            floor_s, t = best_of_interleaved([floor, full], repeats=7)
            n = N[name]
            lines.append(f"| {name} | {n} | {floor_s:.3f} | {t:.3f} | {1000 * t / n:.2f} | {t / floor_s:.2f} | "
                         f"{spreads(floor_s, t)} |")
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(main()))
