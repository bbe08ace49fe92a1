"""maskbench leaderboard: the same faces for every model, paired penalties, a cache that scores only what is new,
and a row (exit 1) for a model that cannot be used."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.sampledata import make_sample_dataset

MODULE = '''
def {name}(crops):
    with open({log!r}, "a") as f:
        f.write(f"{{len(crops)}}\\n")
    return [({yaw}, 0.0, 0.0) for _ in crops]
'''


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """AFLW2000 sample data and its masked and rotated suites."""
    data = tmp_path / "data"
    make_sample_dataset("AFLW2000", data / "AFLW2000", n=8, seed=0, progress=False)
    runner = CliRunner()
    for args in (["synthesize", "--src", "AFLW2000"], ["rotate", "--src", "AFLW2000", "--angles=-30,30"]):
        result = runner.invoke(main, [*args, "--data-root", str(data)])
        assert result.exit_code == 0, result.output
    return data


def _models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    for name, yaw in (("front", 0.0), ("left", 30.0)):
        (tmp_path / f"lbm_{name}.py").write_text(MODULE.format(name="predict", log=str(log), yaw=yaw))
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("lbm_front", "lbm_left"):
        sys.modules.pop(mod, None)
    return log


def test_leaderboard_pairs_caches_and_reports_a_broken_model(root: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    log = _models(tmp_path, monkeypatch)
    out = tmp_path / "board"
    runner = CliRunner()
    args = ["leaderboard", "lbm_front:predict", "--data-root", str(root), "--out", str(out),
            "--models-dir", str(tmp_path / "no-models")]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    data = json.loads((out / "leaderboard.json").read_text())
    front = data["models"]["lbm_front:predict"]
    assert set(front["suites"]) == {"AFLW2000", "AFLW2000_masked", "AFLW2000_rotated"}
    n = {s: r["n"] for s, r in front["suites"].items()}
    assert n["AFLW2000_masked"] == n["AFLW2000"] and n["AFLW2000_rotated"] == 2 * n["AFLW2000"]
    # a constant prediction has the same error on a face and its masked copy: penalty exactly 0
    assert front["penalties"]["AFLW2000_masked"]["mae_deg"][0] == pytest.approx(0.0, abs=1e-9)
    assert front["penalties"]["AFLW2000_masked"]["pairs"] == n["AFLW2000"]
    calls_after_first = len(log.read_text().splitlines())

    # adding a model (and a broken one) scores only the new one; the broken one gets a row and exit 1
    second = runner.invoke(main, [*args[:2], "lbm_left:predict", "whenet", *args[2:]])
    assert second.exit_code == 1, second.output
    data = json.loads((out / "leaderboard.json").read_text())
    assert "weight file(s) not found" in data["models"]["whenet"]["error"]
    left = data["models"]["lbm_left:predict"]
    assert {s: r["n"] for s, r in left["suites"].items()} == n  # the same faces for every model
    assert data["models"]["lbm_front:predict"]["suites"] == front["suites"]  # replayed from the cache
    new_calls = [int(k) for k in log.read_text().splitlines()[calls_after_first:]]
    assert sum(new_calls) == sum(n.values())  # only lbm_left ran: once per face of each suite
    md = (out / "leaderboard.md").read_text()
    assert "| whenet | not scored:" in md and "lbm_left:predict" in md
    assert (out / "leaderboard.png").stat().st_size > 1000
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("model,suite,n") and sum(line.startswith('"lbm_left') for line in csv) == 3


def test_leaderboard_refuses_a_foreign_out_folder(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _models(tmp_path, monkeypatch)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    result = CliRunner().invoke(main, ["leaderboard", "lbm_front:predict", "--data-root", str(root), "--out", str(out)])
    assert result.exit_code == 2 and (out / "notes.txt").read_text() == "keep me\n", result.output
    shutil.rmtree(out)
