"""Helpers shared by the benchmark scripts: timing and sample trees made on the fly."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from maskbench.datasets.sample import make_sample_dataset


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Smallest wall time of ``repeats`` calls (seconds); the minimum is the least noisy."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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
