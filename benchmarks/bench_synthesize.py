"""Synthesis throughput against the floor measured in the same run.

Floor: decode each image and encode it again (what any tool writing a masked copy must do).
Measured: the whole ``maskbench synthesize`` path (read labels, decode, landmarks, fit, blend,
encode, write the occlusion PNG, labels, manifest) with ``--landmarks gt`` and ``--landmarks dlib``
(dlib's HOG detector + 68-point model; on procedural renders dlib rarely finds a face, so that row
is the cost of trying, then falling back is not allowed: failures are counted as skipped).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from common import best_of_interleaved  # noqa: E402

from maskbench.datasets import open_dataset  # noqa: E402
from maskbench.datasets.sample import make_sample_dataset  # noqa: E402
from maskbench.pipeline import write_split  # noqa: E402
from maskbench.synthesis.pipeline import SynthesisParams, make_transform  # noqa: E402

N = 40


def main() -> list[str]:
    lines = ["## Synthesize (`maskbench synthesize`, 450x450 AFLW2000-format JPEGs)", "",
             "| landmarks | images | floor s | synthesize s | images/s | ratio to floor |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_sample_dataset("AFLW2000", root / "src", n=N, seed=0, progress=False)
        paths = [s.image_path for s in open_dataset(root / "src")]

        def floor() -> None:
            shutil.rmtree(root / "floor", ignore_errors=True)
            (root / "floor").mkdir()
            for k, p in enumerate(paths):
                img = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)
                (root / "floor" / f"{k}.jpg").write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])

        for source in ("gt", "dlib"):
            params = SynthesisParams(landmarks=source)

            def run(params: SynthesisParams = params) -> None:
                reader = open_dataset(root / "src")
                write_split(reader, root / "out", transform=make_transform(params), transform_name="synthesize",
                            parameters={}, seed=0, overwrite=True, progress=False)

            run()  # warm-up: builds the mask surfaces and loads the dlib model once
            floor_s, t = best_of_interleaved([floor, run], repeats=5 if source == "gt" else 3)
            lines.append(f"| {source} | {N} | {floor_s:.3f} | {t:.3f} | {N / t:.1f} | {t / floor_s:.2f} |")
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(main()))
