"""Shared fixtures: sample trees rendered once per session, and the real fixture folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskbench import devdata
from maskbench.sampledata import make_sample_dataset

REPO = Path(__file__).resolve().parents[1]
REAL = devdata.fixtures_dir()


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real fixture files (``$MASKBENCH_FIXTURES``, else ``../shared/fixtures/real``); tests using it skip
    when absent."""
    if not REAL.is_dir():
        pytest.skip(f"real fixture folder not found at {REAL} (set ${devdata.FIXTURES_ENV})")
    return REAL


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BIWI, 300W_LP and AFLW2000 sample trees (8 images each, seed 0)."""
    root = tmp_path_factory.mktemp("data")
    for name in ("BIWI", "300W_LP", "AFLW2000"):
        make_sample_dataset(name, root / name, n=8, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def dev_half() -> Path:
    """The AFLW2000 dev half among the real fixtures; tests using it skip when absent."""
    if not devdata.dev_half().is_dir():
        pytest.skip(f"AFLW2000 dev half not found at {devdata.dev_half()} (set $MASKBENCH_FIXTURES)")
    return devdata.dev_half()


@pytest.fixture(scope="session")
def retinaface_release() -> Path:
    """The RetinaFace MobileNet-0.25 release, shipped in the package (every clone has it)."""
    assert devdata.retinaface_release().is_file(), devdata.retinaface_release()
    return devdata.retinaface_release()


#: Fixtures that need the real files: a test using one is marked `real` (`pytest -m real` runs just those).
REAL_FIXTURES = {"real_dir", "dev_half"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("real"):
            item.add_marker(pytest.mark.real)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    """How many of the real-data tests ran: without ../shared they skip (one by one, or a real-data module as
    a whole: tests/realfiles.py), and the summary says so."""
    from tests.realfiles import SKIPPED_MODULES

    reports = [r for key in ("passed", "failed", "skipped") for r in terminalreporter.stats.get(key, [])
               if getattr(r, "when", "") in ("call", "setup") and "real" in getattr(r, "keywords", {})]
    ran = {r.nodeid for r in reports if r.when == "call" and not r.skipped}
    skipped = {r.nodeid for r in reports if r.skipped} - ran
    modules = SKIPPED_MODULES
    if ran or skipped or modules:
        whole = (f", and {len(modules)} real-data modules ({sum(modules.values())} test functions) skipped whole"
                 if modules else "")
        terminalreporter.write_line(f"real-data tests: {len(ran)} ran, {len(skipped)} skipped{whole}"
                                    + (f" (real files not found: set ${devdata.FIXTURES_ENV} / ${devdata.MODELS_ENV})"
                                       if skipped or modules else ""))


@pytest.fixture()
def user_root(sample_root: Path, tmp_path: Path) -> Path:
    """A data root as a user has it: photos in AFLW2000/ (the sample data's 8, as a raw tree: no
    labels.csv or manifest), an unrelated file, a notes folder (the data-safety tests)."""
    import shutil

    root = tmp_path / "D"
    src = root / "AFLW2000"
    src.mkdir(parents=True)
    for path in sorted((sample_root / "AFLW2000").glob("image*")):
        shutil.copyfile(path, src / path.name)
    (root / "precious.txt").write_text("do not delete\n")
    (root / "notes").mkdir()
    (root / "notes" / "thesis.tex").write_text("\\section{Results}\n")
    return root
