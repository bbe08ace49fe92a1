"""Modules that are real-photo evidence as a whole (readers on the real files, masks on real photos) skip
as one when the real fixture files are absent: one line with the reason and how many tests it holds.
Tests that need real files beside others in a module take the ``real_dir`` / ``dev_half`` fixtures
(tests/conftest.py) and skip one by one."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from maskbench import devdata

#: Modules skipped as a whole in this run: module path -> its number of test functions (tests/conftest.py's
#: summary line reads it).
SKIPPED_MODULES: dict[str, int] = {}


def require_fixtures(*parts: str) -> Path:
    """The real fixture folder (or ``parts`` under it); when absent, skip the calling module as a whole
    with the reason and the number of test functions it holds. Call at module level."""
    folder = devdata.fixtures_dir().joinpath(*parts)
    if not folder.is_dir():
        caller = Path(sys._getframe(1).f_globals["__file__"])
        n = len(re.findall(r"^def test_", caller.read_text(), re.M))
        SKIPPED_MODULES[f"{caller.parent.name}/{caller.name}"] = n
        pytest.skip(f"real-data module {caller.parent.name}/{caller.name} ({n} test functions): real fixture folder "
                    f"not found at {folder} (set ${devdata.FIXTURES_ENV})", allow_module_level=True)
    return folder
