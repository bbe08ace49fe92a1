"""The README's numbers cannot go stale: the cheap check table is recomputed and compared."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _make_tables():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_tables", REPO / "docs" / "make_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_block(name: str) -> list[str]:
    from maskbench.provenance import file_with_block

    text = file_with_block(name, REPO).read_text()
    block = re.search(rf"<!-- table:{name} -->\n(.*?)<!-- /table:{name} -->", text, re.S)
    assert block is not None, f"no {name} block"
    return [line for line in block.group(1).splitlines() if line.startswith("|")]


def test_the_readme_check_table_is_what_the_code_measures_today(real_dir: Path, tmp_path: Path) -> None:
    tables = _make_tables()
    if not (tables.MODELS / "fsanet").is_dir():
        pytest.skip(f"FSA-Net weights not found at {tables.MODELS / 'fsanet'}")
    measured = tables.check_table(tmp_path, real=real_dir)
    assert len(measured) == 2 + 6
    assert readme_block("check100") == measured, (
        "README.md's check100 table differs from what the code measures now: run `make tables` "
        "(docs/make_tables.py) and commit the regenerated README")


def test_every_measured_block_is_stamped_with_a_commit() -> None:
    from maskbench.provenance import documents

    text = "\n".join(p.read_text() for p in documents(REPO))
    blocks = re.findall(r"<!-- table:(\S+) -->\n(.*?)<!-- /table:\1 -->", text, re.S)
    assert {name for name, _ in blocks} >= {"pnp", "fsanet", "fsanet-penalty", "check100", "generalisation"}
    import subprocess

    for name, body in blocks:
        stamp = re.search(r"Measured (\d{4}-\d{2}-\d{2}) at commit ([0-9a-f]{7,})(\+changes)? by `((docs|benchmarks)/\w+\.py)`",
                          body)
        assert stamp, name
        assert (REPO / stamp.group(4)).is_file(), (name, stamp.group(4))  # the script that wrote it exists
        known = subprocess.run(["git", "cat-file", "-e", f"{stamp.group(2)}^{{commit}}"], cwd=REPO, capture_output=True)
        if known.returncode != 0 and not (REPO / ".git" / "shallow").exists():
            raise AssertionError(f"{name}: stamped with commit {stamp.group(2)}, which this repository does not have")


def test_reports_name_the_commit_they_ran_on() -> None:
    """make tables, make bench and maskbench reproduce stamp their numbers with the checkout's commit."""
    import subprocess

    from maskbench.provenance import source_commit

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    assert source_commit().removesuffix("+changes") == head
    from maskbench.provenance import replace_marked_block

    text = "a\n<!-- table:t -->\nold\n<!-- /table:t -->\nb\n"
    new = replace_marked_block(text, "t", ["| x |"], by="docs/make_tables.py")
    assert f"at commit {source_commit()} by `docs/make_tables.py`" in new and "old" not in new and "| x |" in new
    assert new.startswith("a\n") and new.endswith("b\n")  # only the block is replaced
    for path in ("maskbench/provenance.py", "benchmarks/run_all.py", "maskbench/reproduce/report.py"):
        assert "source_commit()" in (REPO / path).read_text(), path
    for path in ("docs/make_tables.py", "benchmarks/generalisation_seeds.py", "docs/make_placement.py",
                 "docs/make_leaderboard.py", "benchmarks/run_all.py"):  # measured blocks, stamped there
        assert "write_block(" in (REPO / path).read_text(), path


def test_the_goal_rows_count_passes_and_faces_short() -> None:
    from maskbench.judge import Face, Item

    tables = _make_tables()
    hit, miss = Face((0.0, 0.0, 1.0, 1.0), 0.9, 0.1), Face((0.0, 0.0, 1.0, 1.0), 0.2, 0.8)
    mix = ([(Item(f"f{k}", "", mask_type="surgical", abs_yaw_deg=10.0), hit) for k in range(97)]
           + [(Item("m1", "", mask_type="surgical", abs_yaw_deg=20.0), miss), (Item("m2", "", mask_type="surgical",
                                                                                  abs_yaw_deg=70.0), None)]
           + [(Item(f"c{k}", "", mask_type="cloth", abs_yaw_deg=80.0), hit) for k in range(3)])
    surgical = [(Item(f"s{k}", "", mask_type="surgical", abs_yaw_deg=65.0), hit if k < 19 else miss) for k in range(20)]
    rows = tables.goal_rows(mix, surgical)
    assert rows[2] == "| five-type mix, all faces | 102 | 100 (98.04 %) | 95 % | met |"
    assert rows[3].endswith("| 98 | 97 (98.98 %) | 99 % | not met (1 short) |")  # 97 of 98 below 60: 98 needed
    assert rows[5].endswith("| 1 | 0 (0.00 %) | 95 % | not met (1 short) |")  # no face found counts as a fail
    assert rows[6].endswith("| 20 | 19 (95.00 %) | 95 % | met |")
    assert rows[4] == "| surgical below abs(yaw) 60: every face given one | 0 | - | 99 % | no faces |"


def test_the_seed_rows_read_the_mix_and_its_surgical_faces_per_seed() -> None:
    from maskbench.judge import Face, Item

    tables = _make_tables()
    hit = Face((0.0, 0.0, 1.0, 1.0), 0.9, 0.1)
    seed0 = [(Item("a", "", mask_type="surgical", abs_yaw_deg=10.0), hit), (Item("b", "", mask_type="surgical",
                                                                            abs_yaw_deg=75.0), None),
             (Item("c", "", mask_type="kn95", abs_yaw_deg=75.0), hit)]
    seed1 = [(Item("a", "", mask_type="cloth", abs_yaw_deg=10.0), hit)]
    rows = tables.seed_rows({1: seed1, 0: seed0})
    assert rows[2] == "| 0 | 2/3 (66.67 %) | 1/1 (100.00 %) | 0/1 (0.00 %) |"
    assert rows[3] == "| 1 | 1/1 (100.00 %) | - | - |"  # no surgical face drawn at this seed
