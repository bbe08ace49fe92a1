"""The format registry: every known format, detection of a tree's format, and readers.

The one module that imports every format module (``biwi``, ``w300lp``, ``aflw2000``), so the format
modules and :mod:`maskbench.datasets.base` (the protocol they implement) import nothing above them.
A new format: a module exposing ``FORMAT`` (see :class:`~maskbench.datasets.base.DatasetFormat`),
listed in :func:`formats`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from maskbench.datasets import aflw2000, biwi, w300lp
from maskbench.datasets.base import DatasetError, DatasetFormat, DatasetReader
from maskbench.errors import UnsafeOutputError
from maskbench.io.safety import JOB, JOURNAL, maskbench_manifest


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
            data = json.loads(manifest.read_text(encoding="utf-8"))
            return get_format(data["format"] if isinstance(data, dict) else "")
        except (ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
            raise DatasetError(manifest, f"manifest has no valid 'format' ({exc})") from None
    for fmt in formats().values():
        if fmt.looks_like(root):
            return fmt
    raise DatasetError(root, "not a BIWI, 300W_LP or AFLW2000 tree (no recognisable files found)")


def check_finished(root: Path) -> None:
    """Refuse to read the folder of a maskbench run that has not finished (its journal is there and
    it has no manifest yet): its files are a part of what it will be, never a source or a suite."""
    if (root / JOURNAL / JOB).is_file() and maskbench_manifest(root) is None:
        raise DatasetError(root, f"an unfinished maskbench run (its journal {JOURNAL}/ is there and no manifest.json "
                           "yet): finish it with the same command and --resume, or redo it with --overwrite")
    if root.name.endswith(".maskbench-partial"):
        raise DatasetError(root, "the staging folder of an unfinished maskbench --overwrite; read the finished output "
                           "beside it instead")


def check_outside_datasets(out: Path, data_root: Path | None, what: str = "--out") -> None:
    """Refuse an output inside a dataset tree under the data root (``AFLW2000/rot``): it would add
    files to the user's dataset, which readers would then take for part of it."""
    if data_root is None:
        return
    out, root = out.expanduser().resolve(), data_root.expanduser().resolve()
    if not out.is_relative_to(root):
        return
    for parent in out.parents:
        if parent == root:
            return
        if parent.is_dir() and any(fmt.looks_like(parent) for fmt in formats().values()):
            raise UnsafeOutputError(f"{what} {out} lies inside {parent}, a dataset tree; writing there would add "
                                    "files to that dataset. Choose a folder beside it")


def open_reader(root: str | os.PathLike[str], fmt: DatasetFormat | None = None, **options: Any) -> DatasetReader:
    """A :class:`DatasetReader` over ``root`` (a path or a string; format detected when not given)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    check_finished(root)
    return DatasetReader(root=root, fmt=fmt or detect_format(root), options=dict(options))
