"""A run's journal of finished samples: what ``--resume`` trusts.

When a sample's files are written, a one-line record of its label rows (or of why it was skipped)
is appended to the process's ``.maskbench/rows-<pid>.jsonl`` and flushed (after a line claiming the
files it is about to write: :mod:`maskbench.io.safety`). A line cut short by a kill is ignored, so
its sample is redone and a run killed at any point ends with the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maskbench.io.manifest import JOURNAL


def read_journal(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Finished records of earlier runs by source key; incomplete lines (a killed write) are skipped."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / JOURNAL).glob("rows-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record:  # other lines claim files (io.safety)
                records[record["key"]] = record
    return records
