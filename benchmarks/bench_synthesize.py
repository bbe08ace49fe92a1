"""Synthesis throughput against floors measured in the same run.

Floor: decode each image and encode it again (what any tool writing a masked copy must do).

1. One process, 40 photos: ``write_variant`` with the synthesize transform (read labels, decode,
   landmarks, fit, blend and photometric match, encode, write the occlusion PNG, labels, manifest)
   with ``--landmarks detected`` (the default: RetinaFace + 3DDFA_V2 on the pixels), ``gt`` and ``dlib``
   (dlib's 68-point predictor on a box from the annotated landmarks). Beside them, the cost of the
   default's detector alone (:func:`maskbench.synthesis.detected.find_face` on the same decoded photos,
   alternated with the floor), and the route the usual scripts take (MaskTheFace: dlib's HOG detector,
   then the predictor): its landmark step alone and how many faces it finds.
2. The whole command as a user types it, ``maskbench synthesize --workers 2`` on the whole dev half
   (a fresh process each time, start-up included), for ``detected`` and ``gt``, against the floor in 2
   processes (the same worker count on both sides); the commands and the floor alternate in one set.

Images: real AFLW2000-3D photos of the dev half (``../shared/fixtures/real/aflw2000_dev``, or
``$MASKBENCH_FIXTURES/aflw2000_dev``) when present, else procedural renders (said in the table;
then part 2 is left out).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from common import best_of_interleaved, spreads  # noqa: E402

from maskbench import devdata  # noqa: E402
from maskbench.datasets import open_reader  # noqa: E402
from maskbench.io.atomic import read_image  # noqa: E402
from maskbench.judge.grading import SAMPLE_FRACTION, SAMPLE_MAX, SAMPLE_MIN, default_sample  # noqa: E402
from maskbench.pipeline import write_variant  # noqa: E402
from maskbench.sampledata import make_sample_dataset  # noqa: E402
from maskbench.synthesis.detected import NotDetected, find_face  # noqa: E402
from maskbench.synthesis.landmarks import NoLandmarks, dlib_detected_landmarks  # noqa: E402
from maskbench.synthesis.mask import SynthesisParams, make_transform  # noqa: E402

N = 40
REAL_DEV = devdata.dev_half()


def _copy_pairs(src: Path, stems: list[str], dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for suffix in (".jpg", ".mat"):
            shutil.copyfile(src / f"{stem}{suffix}", dst / f"{stem}{suffix}")
    return dst


def _floor(paths: list[Path], out: Path) -> None:
    """Decode every image and encode it again (JPEG quality 95, as maskbench writes)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for k, p in enumerate(paths):
        img = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)
        (out / f"{k}.jpg").write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])


def in_process(root: Path, tree: Path) -> list[str]:
    """Part 1: one process, ``write_variant`` per landmark source, and the detector route's landmarks."""
    lines = ["| landmarks | images | written | skipped | floor s | synthesize s | images/s | ratio to floor | "
             "spreads (floor / synthesize) |", "|---|---|---|---|---|---|---|---|---|"]
    samples = list(open_reader(tree))
    paths = [s.image_path for s in samples]
    for source in ("detected", "gt", "dlib"):
        params = SynthesisParams(landmarks=source)
        summary: dict[str, Any] = {}

        def run(params: SynthesisParams = params, summary: dict[str, Any] = summary) -> None:
            summary["last"] = write_variant(open_reader(tree), root / "out", transform=make_transform(params),
                                          transform_name="synthesize", parameters={}, seed=0, overwrite=True,
                                          progress=False)

        run()  # warm-up: builds the mask surfaces and loads the dlib model once
        floor_s, t = best_of_interleaved([lambda: _floor(paths, root / "floor"), run], repeats=5)
        s = summary["last"]
        lines.append(f"| {source} | {len(paths)} | {s.written} | {len(s.skipped)} | {floor_s:.3f} | {t:.3f} | "
                     f"{len(paths) / t:.1f} | {t / floor_s:.2f} | {spreads(floor_s, t)} |")
    images = [read_image(p) for p in paths]

    def detector_alone() -> None:
        for s, img in zip(samples, images):
            try:
                find_face(img, s.bbox)
            except NotDetected:
                pass

    floor_s, t_find = best_of_interleaved([lambda: _floor(paths, root / "floor"), detector_alone], repeats=5)
    lines += ["", f"The default's detector alone (RetinaFace + two 3DDFA_V2 passes, on decoded images): {t_find:.3f} s for "
              f"{len(paths)} photos, {1000 * t_find / len(paths):.1f} ms a face, {t_find / floor_s:.2f} x the floor "
              f"(spreads {spreads(floor_s, t_find)})."]
    found = 0
    t0 = time.perf_counter()
    for s, img in zip(samples, images):
        try:
            dlib_detected_landmarks(img, s.bbox)
            found += 1
        except NoLandmarks:
            pass
    t_detect = time.perf_counter() - t0
    lines += ["", f"Detector route (dlib HOG detector + the same predictor, as MaskTheFace does), landmark step "
              f"alone on the same {len(paths)} photos: {len(paths) / t_detect:.1f} images/s, found "
              f"{found} of {len(paths)} faces ({100 * found / len(paths):.0f} %)."]
    return lines


def _floor_workers(paths: list[Path], out: Path, workers: int = 2) -> None:
    """The floor of the whole command: decode and encode every image in ``workers`` processes, as
    ``synthesize --workers`` does (the same worker count on both sides of the ratio)."""
    import multiprocessing

    out.mkdir(parents=True, exist_ok=True)
    parts = [(paths[k::workers], out / f"w{k}") for k in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.starmap(_floor, parts)


def whole_command(root: Path, src: Path) -> list[str]:
    """Part 2: ``maskbench synthesize --workers 2`` on the whole folder, a fresh process each time,
    against the floor in 2 processes; the three commands and the floor alternate in one set, so the
    judge's share comes from timings taken side by side."""
    exe = Path(sys.executable).with_name("maskbench")
    cmd0 = [str(exe)] if exe.is_file() else [sys.executable, "-m", "maskbench"]
    paths = sorted(src.glob("*.jpg"))
    n = len(paths)
    runs = (("detected", "--no-judge"), ("gt", "--no-judge"), ("detected", "default"))

    def command(source: str, judge: str) -> Callable[[], None]:
        out = root / f"cmd_{source}_{judge.strip('-')}"
        flags = ["--no-judge"] if judge == "--no-judge" else []
        return lambda: subprocess.run([*cmd0, "synthesize", "--src", str(src), "--out", str(out), "--landmarks", source,
                                       "--workers", "2", "--overwrite", *flags], check=True, capture_output=True)

    floor_s, *timings = best_of_interleaved([lambda: _floor_workers(paths, root / "floor"),
                                             *(command(s, j) for s, j in runs)], repeats=3)
    lines = ["| landmarks | realism grade | images | floor s (decode + encode, 2 processes) | command s (--workers 2) | "
             "images/s | ratio to floor | spreads (floor / command) |", "|---|---|---|---|---|---|---|---|"]
    times = {}
    for (source, judge), t in zip(runs, timings):
        times[source, judge] = t
        out = root / f"cmd_{source}_{judge.strip('-')}"
        written = sum(1 for _ in (out / "occlusion").glob("*.png")) if (out / "occlusion").is_dir() else 0
        grade = "none (--no-judge)" if judge == "--no-judge" else f"{default_sample(n)} faces (the default sample)"
        lines.append(f"| {source} | {grade} | {n} ({written} written) | {floor_s:.2f} | {t:.2f} | {n / t:.1f} | "
                     f"{t / floor_s:.2f} | {spreads(floor_s, t)} |")
    share = 1 - times["detected", "--no-judge"] / times["detected", "default"]
    lines += ["", f"Grading the realism of the default sample ({default_sample(n)} faces: {SAMPLE_FRACTION:.0%} of them, "
              f"at least {SAMPLE_MIN}, at most {SAMPLE_MAX}) takes {100 * share:.0f} % of the default command's time on "
              f"these {n} photos (the goal is 20 %; the two commands' spreads: "
              f"{spreads(times['detected', '--no-judge'], times['detected', 'default'])})."]
    return lines


def main() -> list[str]:
    real = REAL_DEV.is_dir()
    what = "real AFLW2000-3D photos of the dev half" if real else "procedural renders (no real photos found)"
    lines = [f"## Synthesize (`maskbench synthesize`, 450x450 AFLW2000-format JPEGs: {what})", ""]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if real:
            stems = sorted(p.stem for p in REAL_DEV.glob("*.jpg"))
            tree = _copy_pairs(REAL_DEV, stems[:N], root / "gt")
        else:
            make_sample_dataset("AFLW2000", root / "gt", n=N, seed=0, progress=False)
            tree = root / "gt"
        lines += ["One process:", ""] + in_process(root, tree)
        if real:
            lines += ["", f"The whole command on the dev half ({len(stems)} photos), start-up included:", ""]
            lines += whole_command(root, REAL_DEV)
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(main()))
