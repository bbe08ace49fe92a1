"""Errors every layer may raise (this module imports nothing from maskbench).

Each names the file or option at fault in one line; the command line prints that line and exits 2.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class DatasetError(Exception):
    """A file of a dataset is missing or unreadable; the message names the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class UnsafeOutputError(Exception):
    """An output location maskbench refuses to write: it is, holds or lies inside data maskbench did
    not write (a source, the data root, a user's folder). Nothing was touched."""


def require_file(path: Path, what: str) -> None:
    """Raise DatasetError when ``path`` is not a readable, non-empty file."""
    try:
        st = os.stat(path)  # one system call for both checks
    except (OSError, ValueError):
        raise DatasetError(path, f"{what} not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(path, f"{what} not found")
    if st.st_size == 0:
        raise DatasetError(path, f"{what} is empty (0 bytes)")
