"""Shared fixtures: sample trees rendered once per session, and the real fixture folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maskbench.sampledata import make_sample_dataset

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MASKBENCH_FIXTURES", REPO.parent / "shared" / "fixtures" / "real"))


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real fixture files (``../shared/fixtures/real``); tests using it skip when absent."""
    if not REAL.is_dir():
        pytest.skip(f"real fixture folder not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BIWI, 300W_LP and AFLW2000 sample trees (8 images each, seed 0)."""
    root = tmp_path_factory.mktemp("data")
    for name in ("BIWI", "300W_LP", "AFLW2000"):
        make_sample_dataset(name, root / name, n=8, seed=0, progress=False)
    return root
