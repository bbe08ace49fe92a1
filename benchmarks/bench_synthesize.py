"""Synthesis throughput against the floor measured in the same run.

Floor: decode each image and encode it again (what any tool writing a masked copy must do).
Measured: the whole ``maskbench synthesize`` path (read labels, decode, landmarks, fit, blend,
encode, write the occlusion PNG, labels, manifest) with ``--landmarks gt`` and ``--landmarks dlib``.

Images: real AFLW2000-3D photos of the dev half (``../shared/fixtures/real/aflw2000_dev``, or
``$MASKBENCH_FIXTURES/aflw2000_dev``) when present, else procedural renders (said in the table).
The ``dlib`` row runs on the photos where dlib's detector finds the labelled face (chosen by a pass
before timing), so it times masking, not skipping; its written/skipped counts are in the table.
On renders dlib finds almost no face, so that row is left out there.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from common import best_of_interleaved  # noqa: E402

from maskbench.datasets import open_dataset  # noqa: E402
from maskbench.datasets.sample import make_sample_dataset  # noqa: E402
from maskbench.io.atomic import read_image  # noqa: E402
from maskbench.pipeline import write_split  # noqa: E402
from maskbench.synthesis.landmarks import NoLandmarks, dlib_landmarks  # noqa: E402
from maskbench.synthesis.pipeline import SynthesisParams, make_transform  # noqa: E402

N = 40
REAL_DEV = Path(os.environ.get("MASKBENCH_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"
                                / "real")) / "aflw2000_dev"


def _copy_pairs(src: Path, stems: list[str], dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for suffix in (".jpg", ".mat"):
            shutil.copyfile(src / f"{stem}{suffix}", dst / f"{stem}{suffix}")
    return dst


def _dlib_finds(folder: Path, want: int) -> list[str]:
    """The first ``want`` samples (sorted order) on which dlib detects the labelled face."""
    found = []
    for s in open_dataset(folder):
        try:
            dlib_landmarks(read_image(s.image_path), s.bbox)
        except NoLandmarks:
            continue
        found.append(s.id)
        if len(found) == want:
            break
    return found


def main() -> list[str]:
    real = REAL_DEV.is_dir()
    what = "real AFLW2000-3D photos of the dev half" if real else "procedural renders (no real photos found)"
    lines = [f"## Synthesize (`maskbench synthesize`, 450x450 AFLW2000-format JPEGs: {what})", "",
             "| landmarks | images | written | skipped | floor s | synthesize s | images/s | ratio to floor |",
             "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trees: dict[str, Path] = {}
        if real:
            stems = sorted(p.stem for p in REAL_DEV.glob("*.jpg"))
            trees["gt"] = _copy_pairs(REAL_DEV, stems[:N], root / "gt")
            trees["dlib"] = _copy_pairs(REAL_DEV, _dlib_finds(REAL_DEV, N), root / "dlib")
        else:
            make_sample_dataset("AFLW2000", root / "gt", n=N, seed=0, progress=False)
            trees["gt"] = root / "gt"
        for source, tree in trees.items():
            paths = [s.image_path for s in open_dataset(tree)]
            params = SynthesisParams(landmarks=source)

            def floor(paths: list[Path] = paths) -> None:
                shutil.rmtree(root / "floor", ignore_errors=True)
                (root / "floor").mkdir()
                for k, p in enumerate(paths):
                    img = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)
                    (root / "floor" / f"{k}.jpg").write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])

            summary: dict[str, Any] = {}

            def run(params: SynthesisParams = params, tree: Path = tree, summary: dict[str, Any] = summary) -> None:
                summary["last"] = write_split(open_dataset(tree), root / "out", transform=make_transform(params),
                                              transform_name="synthesize", parameters={}, seed=0, overwrite=True,
                                              progress=False)

            run()  # warm-up: builds the mask surfaces and loads the dlib model once
            floor_s, t = best_of_interleaved([floor, run], repeats=5 if source == "gt" else 3)
            s = summary["last"]
            n = len(paths)
            lines.append(f"| {source} | {n} | {s.written} | {len(s.skipped)} | {floor_s:.3f} | {t:.3f} | "
                         f"{n / t:.1f} | {t / floor_s:.2f} |")
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(main()))
