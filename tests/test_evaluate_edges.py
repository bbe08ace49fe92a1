"""Rough edges of a real evaluation run (issue items b-i) and the masked penalty."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskbench import geometry
from maskbench.cli import main
from maskbench.evaluation.evaluator import evaluate_suite, masked_penalties
from maskbench.evaluation.plots import compare_table
from maskbench.evaluation.report import write_report
from maskbench.evaluation.suites import scored_samples


def _predictions(path: Path, suite: Path, offset_deg: float = 0.0, every: int = 1, prefix: str = "") -> Path:
    """A predictions CSV with the labels of every ``every``-th scored sample of a suite, yaw + offset."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "yaw_deg", "pitch_deg", "roll_deg"])
        for k, s in enumerate(scored_samples(suite)[0]):
            if k % every == 0:
                yaw, pitch, roll = geometry.matrix_to_euler_deg(s.pose.matrix)
                w.writerow([prefix + s.id, yaw + offset_deg, pitch, roll])
    return path


def _evaluate(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["evaluate", *args])  # click >= 8.2: output holds stdout and stderr
    return r.exit_code, r.output


def test_predictions_without_a_model_argument_and_their_protocol_line(sample_root: Path, tmp_path: Path) -> None:
    """b: `--predictions P.csv --suite S` needs no MODEL; f: its report does not claim a crop."""
    csv_path = _predictions(tmp_path / "p.csv", sample_root / "AFLW2000", offset_deg=3.0)
    code, out = _evaluate("--predictions", str(csv_path), "--suite", "AFLW2000", "--data-root", str(sample_root),
                          "--out", str(tmp_path / "ev"))
    assert code == 0, out
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "predictions file" in report and "ground-truth box + 25 %" not in report
    res = json.loads((tmp_path / "ev" / "results.json").read_text())["suites"]["AFLW2000"]
    assert res["yaw_mae_deg"] == pytest.approx(3.0, abs=1e-6)
    code, out = _evaluate("--suite", "AFLW2000", "--data-root", str(sample_root))
    assert code == 2 and "--predictions" in out


def test_ids_that_match_nothing_fail_and_partial_matches_warn(sample_root: Path, tmp_path: Path) -> None:
    """d: a CSV whose ids match no sample is an error, not a 100 % miss rate; e: breakdowns show misses."""
    none = _predictions(tmp_path / "none.csv", sample_root / "AFLW2000", prefix="AFLW2000/")
    code, out = _evaluate("--predictions", str(none), "--suite", "AFLW2000", "--data-root", str(sample_root),
                          "--out", str(tmp_path / "ev0"))
    assert code == 2 and "none of the" in out and "AFLW2000/image00000" in out
    half = _predictions(tmp_path / "half.csv", sample_root / "AFLW2000", every=2)
    code, out = _evaluate("--predictions", str(half), "--suite", "AFLW2000", "--data-root", str(sample_root),
                          "--out", str(tmp_path / "ev1"))
    assert code == 0, out
    report = (tmp_path / "ev1" / "report.md").read_text()
    assert "| group | MAE | scored | missed |" in report
    data = json.loads((tmp_path / "ev1" / "results.json").read_text())["suites"]["AFLW2000"]
    assert data["n_missed"] == 3 and data["n"] == 7
    for label, b in data["breakdown"]["abs_yaw_deg"].items():
        assert f"| {label} | " in report and f"| {b['n'] - b['n_missed']} | {b['n_missed']} |" in report


def test_a_callable_in_the_current_folder_is_found(sample_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """c: `maskbench evaluate mymodule:fn` finds ./mymodule.py."""
    (tmp_path / "mb_local_model_xyz.py").write_text("def predict(crops):\n    return [(0.0, 0.0, 0.0) for _ in crops]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    code, out = _evaluate("mb_local_model_xyz:predict", "--suite", "AFLW2000", "--data-root", str(sample_root),
                          "--out", str(tmp_path / "ev"))
    assert code == 0, out


def test_help_texts() -> None:
    """g: evaluate --help names every MODEL kind and prints one % sign; train --help lists model4."""
    r = CliRunner().invoke(main, ["evaluate", "--help"])
    assert ".onnx" in r.output and ".pth" in r.output and "fsanet-fusion" in r.output
    assert "25 %%" not in r.output and "25 %" in r.output
    assert "model4" in CliRunner().invoke(main, ["train", "--help"]).output


def test_info_counts_filtered_apart_from_unreadable(sample_root: Path) -> None:
    """h: `info --protocol-filter` says how many the filter dropped (not 'readable')."""
    r = CliRunner().invoke(main, ["info", "AFLW2000", "--protocol-filter", "--data-root", str(sample_root)])
    assert r.exit_code == 0
    assert "7 of 8 samples kept, 1 outside the protocol, 0 unreadable" in r.output


def test_manifest_lists_skipped_files_relative(sample_root: Path, tmp_path: Path) -> None:
    """i: skipped files in manifest.json are named relative to the source tree."""
    src = tmp_path / "src"
    shutil.copytree(sample_root / "AFLW2000", src, ignore=shutil.ignore_patterns("labels.csv", "manifest.json"))
    (src / "image00001.mat").write_bytes(b"garbage")
    r = CliRunner().invoke(main, ["import", "--src", str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    skipped = json.loads((tmp_path / "out" / "manifest.json").read_text())["skipped"]
    assert len(skipped) == 1 and skipped[0].startswith("image00001.mat: ")
    assert str(tmp_path) not in json.dumps(skipped)


class _Offset:
    """Predicts each label plus a per-suite yaw offset (rotation output, compared via the closest triple)."""

    def __init__(self, offsets: dict[str, float]) -> None:
        self.name = "offset"
        self.offsets = offsets
        self.suite = ""

    def predict(self, items):  # type: ignore[no-untyped-def]
        return [geometry.euler_deg_to_matrix(self.truth[i.sample_id][0] + self.offsets[self.suite],
                                             *self.truth[i.sample_id][1:]) for i in items]


def test_masked_penalty_is_paired_with_an_interval(sample_root: Path, tmp_path: Path) -> None:
    """3: X_masked minus X on the same faces, per axis, with a bootstrap interval; compare shows it."""
    from maskbench.datasets import open_reader
    from maskbench.pipeline import write_variant
    from maskbench.synthesis.mask import SynthesisParams, make_transform

    root = tmp_path / "data"
    root.mkdir()
    shutil.copytree(sample_root / "AFLW2000", root / "AFLW2000")
    write_variant(open_reader(root / "AFLW2000"), root / "AFLW2000_masked", transform=make_transform(SynthesisParams()),
                transform_name="synthesize", parameters={}, seed=0, progress=False)
    model = _Offset({"AFLW2000": 2.0, "AFLW2000_masked": 5.0})
    model.truth = {s.id: geometry.matrix_to_euler_deg(s.pose.matrix) for s in scored_samples(root / "AFLW2000")[0]}
    results = []
    for suite in ("AFLW2000", "AFLW2000_masked"):
        model.suite = suite
        results.append(evaluate_suite(model, suite, root / suite, progress=False))
    pen = masked_penalties(results)["AFLW2000_masked"]
    assert pen["vs"] == "AFLW2000" and pen["pairs"] == 7
    yaw, lo, hi = pen["overall"]["yaw_mae_deg"]
    assert yaw == pytest.approx(3.0, abs=1e-6) and lo == pytest.approx(3.0, abs=1e-6) and hi == pytest.approx(3.0, abs=1e-6)
    assert pen["overall"]["mae_deg"][0] == pytest.approx(1.0, abs=1e-6)
    assert pen["overall"]["pitch_mae_deg"][0] == pytest.approx(0.0, abs=1e-6)
    assert sum(b["n"] for b in pen["by_abs_yaw_deg"].values()) == 7
    write_report(tmp_path / "ev", "offset", results, [])
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "Masked penalty: AFLW2000_masked minus AFLW2000 on the same 7 faces" in report
    table = compare_table([tmp_path / "ev"])
    assert "AFLW2000_masked - AFLW2000 | +1.00 [+1.00, +1.00]" in table


def test_bootstrap_interval_covers_noise() -> None:
    from maskbench.evaluation.metrics import paired_delta

    rng = np.random.default_rng(3)
    plain = rng.uniform(0, 10, (400, 3))
    masked = plain + 2.0 + rng.normal(0, 1.0, (400, 3))
    d = paired_delta(plain, masked)
    for key in ("yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg"):
        point, lo, hi = d[key]
        assert lo < point < hi and lo < 2.0 < hi and hi - lo < 0.5
