"""The format registry: every known format, detection of a tree's format, and readers.

The one module that imports every format module (``biwi``, ``w300lp``, ``aflw2000``), so the format
modules and :mod:`maskbench.datasets.base` (the protocol they implement) import nothing above them.
A new format: a module exposing ``FORMAT`` (see :class:`~maskbench.datasets.base.DatasetFormat`),
listed in :func:`formats`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maskbench.datasets import aflw2000, biwi, w300lp
from maskbench.datasets.base import DatasetError, DatasetFormat, DatasetReader


def formats() -> dict[str, DatasetFormat]:
    """All known formats by canonical name."""
    return {f.name: f for f in (biwi.FORMAT, w300lp.FORMAT, aflw2000.FORMAT)}


def get_format(name: str) -> DatasetFormat:
    """Format by name, case-insensitive (``BIWI``, ``300W_LP``, ``AFLW2000``)."""
    table = {k.lower(): v for k, v in formats().items()}
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset format {name!r}; known: {', '.join(formats())}") from None


def detect_format(root: Path) -> DatasetFormat:
    """Format of a tree: from its ``manifest.json`` when maskbench wrote it, else by its layout."""
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            return get_format(json.loads(manifest.read_text())["format"])
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise DatasetError(manifest, f"manifest has no valid 'format' ({exc})") from None
    for fmt in formats().values():
        if fmt.looks_like(root):
            return fmt
    raise DatasetError(root, "not a BIWI, 300W_LP or AFLW2000 tree (no recognisable files found)")


def open_reader(root: Path, fmt: DatasetFormat | None = None, **options: Any) -> DatasetReader:
    """A :class:`DatasetReader` over ``root`` (format detected when not given)."""
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    return DatasetReader(root=root, fmt=fmt or detect_format(root), options=dict(options))
