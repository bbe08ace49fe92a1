"""Helpers shared by the benchmark scripts: timing and sample trees made on the fly."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from maskbench.sampledata import make_sample_dataset


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Smallest wall time of ``repeats`` calls (seconds); the minimum is the least noisy."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class Timing(float):
    """The best of several wall times (seconds), carrying their ``spread``: (slowest - fastest) /
    fastest. A ratio or overhead smaller than the spreads behind it is noise; tables print both."""

    spread: float

    def __new__(cls, times: list[float]) -> Timing:
        t = super().__new__(cls, min(times))
        t.spread = (max(times) - min(times)) / min(times) if min(times) > 0 else 0.0
        return t


def best_of_interleaved(fns: list[Callable[[], object]], repeats: int = 5) -> list[Timing]:
    """Smallest wall time of each function (with its spread), the calls interleaved (a, b, a, b, ...)
    so that a slow spell of a shared machine hits all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - t0)
    return [Timing(t) for t in times]


def spreads(*timings: Timing) -> str:
    """The spreads of timings as a table cell: "3 % / 5 %"."""
    return " / ".join(f"{100 * t.spread:.0f} %" for t in timings)


def aflw_tree(root: Path, n_total: int, n_rendered: int = 20) -> Path:
    """An AFLW2000-layout tree of ``n_total`` pairs: ``n_rendered`` renders copied under new names."""
    src = root / "rendered"
    make_sample_dataset("AFLW2000", src, n=n_rendered, seed=0, progress=False, overwrite=True)
    tree = root / "AFLW2000"
    tree.mkdir(parents=True, exist_ok=True)
    for k in range(n_total):
        stem = f"image{k % n_rendered:05d}"
        for suffix in (".jpg", ".mat"):
            shutil.copyfile(src / f"{stem}{suffix}", tree / f"image{k:05d}{suffix}")
    return tree
