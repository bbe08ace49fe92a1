"""Run every benchmark and write benchmarks/RESULTS.md (ratios to floors measured in the same run) and
the ``<!-- table:bench -->`` block of docs/benchmarks.md (the same tables, stamped with the commit they ran on).

``--readme-from-results``: only copy the tables of the existing RESULTS.md into the README (with the
date and commit RESULTS.md names), for a RESULTS.md written by a run in another checkout.
"""

from __future__ import annotations

import platform
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_cards  # noqa: E402
import bench_evaluate  # noqa: E402
import bench_read  # noqa: E402
import bench_rotate  # noqa: E402
import bench_synthesize  # noqa: E402
import bench_transforms  # noqa: E402

import maskbench  # noqa: E402
from maskbench.provenance import source_commit, write_block  # noqa: E402


def update_readme(tables: list[str], commit: str, day: str) -> None:
    """The ``bench`` block (docs/benchmarks.md) from these tables."""
    write_block("bench", tables, by="benchmarks/run_all.py", commit=commit, day=day)


def readme_from_results() -> None:
    import re

    text = (HERE / "RESULTS.md").read_text()
    m = re.search(r"on (\d{4}-\d{2}-\d{2}) at commit (\S+?):", text)
    if not m:
        raise SystemExit("benchmarks/RESULTS.md names no date and commit")
    body = text.split("\n## ", 1)[1]
    body = body.replace("\n### ", "\n#### ").replace("\n## ", "\n### ")  # one level down in the README
    update_readme(("### " + body).rstrip().splitlines(), m.group(2), m.group(1))


def main() -> None:
    import os

    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {date.today().isoformat()} at commit {source_commit()}: "
        f"maskbench {maskbench.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, {platform.machine()}. "
        "Each time is the best of 3-7 runs, a measurement and its floor alternating (the spread of each set printed); "
        "each ratio divides by a floor measured in the same run.",
        "",
    ]
    for module in (bench_read, bench_rotate, bench_synthesize, bench_transforms, bench_evaluate, bench_cards):
        lines += module.main()
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))
    readme_from_results()


if __name__ == "__main__":
    readme_from_results() if "--readme-from-results" in sys.argv[1:] else main()
