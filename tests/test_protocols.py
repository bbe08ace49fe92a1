"""The field's protocols: masked and rotated suites score exactly their source's faces (on real
dev-half photos), and unpaired sets are never compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.datasets import open_dataset
from maskbench.datasets.aflw2000 import SOURCE_ANGLE_COLUMN, max_abs_stored_angle_deg
from maskbench.evaluation.evaluator import scored_samples
from maskbench.io.manifest import labels_by_id


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _scored_sources(folder: Path) -> set[str]:
    rows = labels_by_id(folder)
    return {(rows.get(s.id) or {}).get("source_id") or s.id for s in scored_samples(folder)[0]}


def test_the_rotated_dev_half_scores_the_984_faces_of_the_source_protocol(real_dir: Path, tmp_path: Path) -> None:
    """Before, the 99-degree filter was re-applied to the rotated copy's recomputed angles: 990 rotated
    faces against 984 originals, some of them different faces."""
    dev = real_dir / "aflw2000_dev"
    code, text = run("rotate", "--src", str(dev), "--out", str(tmp_path / "AFLW2000_rotated"), "--range", "-45", "45",
                     "--workers", "2")
    assert code == 0, text
    rotated = tmp_path / "AFLW2000_rotated"
    plain = _scored_sources(dev)
    assert len(plain) == 984
    assert _scored_sources(rotated) == plain  # the same faces, not only as many
    # the copy's own angles would have told another story (what the filter read before)
    own = {s.id for s in open_dataset(rotated) if max_abs_stored_angle_deg(s) <= 99.0}
    assert len(own) == 990 and own != plain
    rows = labels_by_id(rotated)
    assert all(float(r[SOURCE_ANGLE_COLUMN]) == pytest.approx(max_abs_stored_angle_deg(s), abs=1e-6)
               for s in open_dataset(dev) for r in [rows[s.id]])


def test_a_copy_of_a_copy_keeps_the_source_angles_and_masked_pairs(real_dir: Path, tmp_path: Path) -> None:
    dev = real_dir / "aflw2000_dev"
    # the photos nearest the limit, where a rotation can move a face across it, and a few others
    near = sorted(s.id for s in open_dataset(dev) if 85 <= max_abs_stored_angle_deg(s) <= 130)[:16]
    src = tmp_path / "D" / "AFLW2000"
    src.mkdir(parents=True)
    for sid in near:
        for suffix in (".jpg", ".mat"):
            (src / f"{sid}{suffix}").write_bytes((dev / f"{sid}{suffix}").read_bytes())
    root = str(tmp_path / "D")
    for args in (["synthesize", "--src", "AFLW2000", "--landmarks", "gt"],
                 ["rotate", "--src", "AFLW2000_masked", "--range", "-60", "60", "--seed", "3"]):
        code, text = run(*args, "--data-root", root)
        assert code == 0, text
    plain = _scored_sources(src)
    assert 0 < len(plain) < len(near)  # some of them are outside the protocol
    for name in ("AFLW2000_masked", "AFLW2000_masked_rotated"):
        assert _scored_sources(tmp_path / "D" / name) == plain, name
    # the penalty is computed on the same faces; the report says how many
    preds = tmp_path / "p.csv"
    preds.write_text("id,yaw_deg,pitch_deg,roll_deg\n" + "".join(f"{sid},0,0,0\n" for sid in near))
    code, text = run("evaluate", "--predictions", str(preds), "--suite", "AFLW2000", "--suite", "AFLW2000_masked",
                     "--data-root", root, "--out", str(tmp_path / "e"))
    assert code == 0, text
    pen = json.loads((tmp_path / "e" / "results.json").read_text())["suites"]["AFLW2000_masked"]["masked_penalty"]
    assert pen["pairs"] == len(plain)


def test_unpaired_sets_get_no_penalty_and_compare_refuses_them(sample_root: Path, tmp_path: Path) -> None:
    from maskbench.evaluation.evaluator import SuiteResult, masked_penalties
    from maskbench.evaluation.metrics import score

    def result(name: str, ids: list[str]) -> SuiteResult:
        rows = [{"source_id": i, "missed": False, "true_yaw_deg": 0.0, "true_pitch_deg": 0.0, "true_roll_deg": 0.0,
                 "pred_yaw_deg": 1.0, "pred_pitch_deg": 0.0, "pred_roll_deg": 0.0} for i in ids]
        import numpy as np
        return SuiteResult(name, score(np.zeros((1, 3)), np.ones((1, 3)), [np.eye(3)], [np.eye(3)]), 0, rows=rows)

    pens = masked_penalties([result("X", ["a", "b", "c"]), result("X_masked", ["a", "b", "d"])])
    assert "refused" in pens["X_masked"] and "1 only in X_masked, 1 only in X" in pens["X_masked"]["refused"]
    paired = masked_penalties([result("X", ["a", "b"]), result("X_masked", ["b", "a"])], n_boot=10)
    assert paired["X_masked"]["pairs"] == 2
    # compare: two reports of one suite with different n are not put side by side
    preds = tmp_path / "p.csv"
    with open(preds, "w") as f:
        f.write("id,yaw_deg,pitch_deg,roll_deg\n")
        for s in open_dataset(sample_root / "AFLW2000"):
            f.write(f"{s.id},0,0,0\n")
    base = ["evaluate", "--predictions", str(preds), "--suite", "AFLW2000", "--data-root", str(sample_root)]
    assert run(*base, "--out", str(tmp_path / "a"))[0] == 0
    assert run(*base, "--limit", "3", "--out", str(tmp_path / "b"))[0] == 0
    code, text = run("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 2 and "scored on different faces" in text
    assert run("compare", str(tmp_path / "a"), str(tmp_path / "a"))[0] == 0
