"""Run every benchmark and write benchmarks/RESULTS.md (ratios to floors measured in the same run)."""

from __future__ import annotations

import platform
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_evaluate  # noqa: E402
import bench_read  # noqa: E402
import bench_rotate  # noqa: E402
import bench_synthesize  # noqa: E402
import bench_transforms  # noqa: E402

import maskbench  # noqa: E402
from maskbench.provenance import source_commit  # noqa: E402


def main() -> None:
    import os

    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {date.today().isoformat()} at commit {source_commit()}: "
        f"maskbench {maskbench.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, {platform.machine()}. "
        "Each time is the best of 2-7 runs, a measurement and its floor alternating; "
        "each ratio divides by a floor measured in the same run.",
        "",
    ]
    for module in (bench_read, bench_rotate, bench_synthesize, bench_transforms, bench_evaluate):
        lines += module.main()
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
