"""Reading an AFLW2000-format tree of 2,000 samples, against the floor of reading the same bytes.

Floor: open and read every .jpg and .mat file completely (what any loader must at least do).
Measured: ``open_reader(...)`` iterated to the end (parse .mat, validate, build poses and boxes).
The two alternate, 7 times; the best of each counts, and the spread of each is printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import aflw_tree, best_of_interleaved, spreads  # noqa: E402

from maskbench.datasets import open_reader  # noqa: E402

N = 2000


def main() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        tree = aflw_tree(Path(tmp), N)
        files = sorted(tree.iterdir())
        floor, full = best_of_interleaved([lambda: [f.read_bytes() for f in files], lambda: list(open_reader(tree))],
                                          repeats=7)
    return [
        f"## Read {N} AFLW2000-format samples",
        "",
        "| what | seconds | per sample (ms) | ratio to floor | spread of the runs |",
        "|---|---|---|---|---|",
        f"| floor: read the bytes of every .jpg + .mat | {floor:.3f} | {1000 * floor / N:.3f} | 1.00 | {spreads(floor)} |",
        f"| maskbench reader (parse, validate, pose, box) | {full:.3f} | {1000 * full / N:.3f} | {full / floor:.2f} | "
        f"{spreads(full)} |",
        "",
    ]


if __name__ == "__main__":
    print("\n".join(main()))
