"""Write the README's "does masked training help" block (``<!-- table:claim -->``) from the photo grid's report.

Reads ``docs/reproduce_real_REPORT.md`` (what ``make tables`` copies there after ``maskbench reproduce --preset
real``) and writes real-model1's and real-model2's crop MAE on the plain and masked test faces and whole-image MAE
on the masked ones, stamped with the commit the report names.

    python docs/make_claim.py
"""

from __future__ import annotations

import re
from pathlib import Path

from maskbench.provenance import write_block

REPORT = Path(__file__).resolve().parent / "reproduce_real_REPORT.md"


def rows(report: str) -> list[str]:
    mae: dict[tuple[str, str, str], str] = {}
    faces: set[str] = set()
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 9 and cells[0].startswith("real-model"):
            mae[cells[0], cells[1], cells[2]] = cells[6]
            faces.add(cells[8])
    out = ["| model | plain, crop | masked, crop | masked, whole image |", "|---|---|---|---|"]
    for model in ("real-model1", "real-model2"):
        out.append(f"| {model} | {mae[model, 'AFLW2000_test', 'crop']} | {mae[model, 'AFLW2000_test_masked', 'crop']} | "
                   f"{mae[model, 'AFLW2000_test_masked', 'full']} |")
    gap = float(mae["real-model1", "AFLW2000_test_masked", "crop"]) - float(mae["real-model2", "AFLW2000_test_masked", "crop"])
    out += ["", f"MAE in degrees on the dev half's test part ({' / '.join(sorted(faces))} faces in every suite); masked "
            f"training lowers the masked crop error by {gap:.2f}. [Full report](docs/reproduce_real_REPORT.md)."]
    return out


def main() -> None:
    report = REPORT.read_text()
    commit = re.search(r"commit (\w+)", report)
    path = write_block("claim", rows(report), by="docs/make_claim.py", commit=commit.group(1) if commit else None)
    print(f"claim block written in {path}")


if __name__ == "__main__":
    main()
