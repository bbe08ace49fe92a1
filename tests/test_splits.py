"""No leaks: one split rule for the trainer, the evaluator, the baselines and the pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.datasets import open_reader
from maskbench.evaluation.suites import scored_samples, training_matrices
from maskbench.io.labels import labels_by_id
from maskbench.sampledata import identity_for, make_sample_dataset, plan
from maskbench.splits import DEFAULT_RULE, SplitRule, recorded_rule, rule_of
from maskbench.training.data import HoldOut, split_samples, training_items


def _source_ids(folder: Path, samples: list) -> set[str]:  # type: ignore[type-arg]
    rows = labels_by_id(folder)
    return {rows.get(s.id, {}).get("source_id") or s.id for s in samples}


def _trained_sources(folder: Path) -> set[str]:
    return _source_ids(folder, [s for s, _ in split_samples(folder, "train")])


def _scored_sources(folder: Path) -> set[str]:
    return _source_ids(folder, scored_samples(folder)[0])


@pytest.fixture(scope="module")
def biwi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 sample BIWI frames (6 subjects), a raw copy without labels.csv/manifest.json, and derived
    folders of both split modes."""
    root = tmp_path_factory.mktemp("splits")
    make_sample_dataset("BIWI", root / "BIWI", n=24, seed=0, progress=False, scale=0.25)
    shutil.copytree(root / "BIWI", root / "BIWI_raw")
    (root / "BIWI_raw" / "labels.csv").unlink()
    (root / "BIWI_raw" / "manifest.json").unlink()
    runner = CliRunner()
    for args in (["import", "--src", "BIWI_raw", "--out", "BIWI_frame", "--split-by", "frame"],
                 ["rotate", "--src", "BIWI_frame", "--out", "BIWI_frame_rotated"],
                 ["rotate", "--src", "BIWI_raw", "--out", "BIWI_raw_rotated"]):
        r = runner.invoke(main, [*args, "--data-root", str(root)])
        assert r.exit_code == 0, r.output
    return root


def test_raw_tree_trainer_and_evaluator_use_one_split(biwi_root: Path) -> None:
    """A raw BIWI tree (no labels.csv): the trainer, the evaluator and baseline:mean agree; before, the
    evaluator scored all 24 frames, 18 of them training frames."""
    raw = biwi_root / "BIWI_raw"
    trained, scored = _trained_sources(raw), _scored_sources(raw)
    assert trained and scored
    assert not trained & scored
    assert len(trained | scored) == 24
    # the same split as the labelled sample tree, whose labels.csv was written with the default rule
    assert scored == _scored_sources(biwi_root / "BIWI")
    assert rule_of(raw) == DEFAULT_RULE and recorded_rule(biwi_root / "BIWI") == DEFAULT_RULE
    # baseline:mean's training poses are the training rows only
    (biwi_root / "mean_root").mkdir(exist_ok=True)
    link = biwi_root / "mean_root" / "BIWI"
    if not link.exists():
        link.symlink_to(raw)
    assert len(training_matrices(biwi_root / "mean_root")) == len(trained)


@pytest.mark.parametrize("base", ["BIWI_raw", "BIWI_frame"])
def test_derived_splits_never_score_a_trained_source(biwi_root: Path, base: str) -> None:
    """For both split modes: training on a folder and its rotated copy, scoring either, no source
    frame is in both sets."""
    folders = [biwi_root / base, biwi_root / f"{base}_rotated"]
    assert rule_of(folders[0]) == rule_of(folders[1])
    trained = set().union(*(_trained_sources(f) for f in folders))
    for folder in folders:
        scored = _scored_sources(folder)
        assert scored and not scored & trained, folder.name


def test_split_is_recorded_and_inherited(biwi_root: Path) -> None:
    frame = SplitRule(by="frame", train_fraction=0.7)
    assert recorded_rule(biwi_root / "BIWI_frame") == frame
    assert recorded_rule(biwi_root / "BIWI_frame_rotated") == frame  # inherited from its source
    assert recorded_rule(biwi_root / "BIWI_raw_rotated") == DEFAULT_RULE
    # the default is by subject: no sequence folder has frames in both splits, and both splits have some
    assert DEFAULT_RULE.by == "subject"
    for folder in ("BIWI", "BIWI_raw_rotated"):
        rows = labels_by_id(biwi_root / folder)
        by_seq: dict[str, set[str]] = {}
        for sid, row in rows.items():
            by_seq.setdefault(sid.split("/")[0], set()).add(row["split"])
        assert all(len(v) == 1 for v in by_seq.values()) and len(by_seq) == 6
        assert {next(iter(v)) for v in by_seq.values()} == {"train", "test"}


def test_the_default_biwi_split_is_16_of_24_sequences_seeded() -> None:
    """The published protocol: 16 sequences train, 8 test, whatever the seed; seeds differ."""
    for seed in range(5):
        rule = SplitRule(seed=seed)
        train, test = rule.sequences("train"), rule.sequences("test")
        assert len(train) == 16 and len(test) == 8 and not set(train) & set(test)
    assert SplitRule(seed=0).sequences("test") != SplitRule(seed=1).sequences("test")
    with_val = SplitRule(seed=0, val_fraction=2 / 24)
    assert len(with_val.sequences("val")) == 2 and len(with_val.sequences("test")) == 8
    assert with_val.sequences("test") == SplitRule(seed=0).sequences("test")  # val comes out of train


def test_a_frame_split_is_named_in_the_report(biwi_root: Path) -> None:
    from maskbench.evaluation.suites import protocol_notes
    from maskbench.splits import FRAME_SPLIT_WARNING

    class Trained:
        training_data = [{"name": "BIWI", "format": "BIWI", "split": SplitRule(by="frame").as_dict()}]

    assert FRAME_SPLIT_WARNING in protocol_notes(object(), biwi_root / "BIWI_frame")
    assert FRAME_SPLIT_WARNING not in protocol_notes(object(), biwi_root / "BIWI_raw")
    assert FRAME_SPLIT_WARNING in protocol_notes(Trained(), biwi_root / "BIWI_raw")
    assert "frames of the test people were trained on" in FRAME_SPLIT_WARNING


def test_a_contradicting_split_option_is_refused(biwi_root: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["synthesize", "--src", str(biwi_root / "BIWI_frame"), "--out",
                                  str(tmp_path / "x"), "--split-by", "subject", "--limit", "1"])
    assert r.exit_code == 2 and "already has a split" in r.output


def test_validation_is_a_hold_out_of_training_sources(biwi_root: Path) -> None:
    """Validation never reads a test row, and no copy of a validation frame is trained on."""
    folders = [biwi_root / "BIWI_raw", biwi_root / "BIWI_raw_rotated"]
    train, val, record = training_items(folders, HoldOut(fraction=0.3, seed=1, limit=100))
    assert val and train and record["validation_samples"] == len(val)
    test_ids = _scored_sources(biwi_root / "BIWI_raw")
    val_ids = {s.id for s in val}  # rotated copies keep the frame's id
    train_ids = {s.id for s, _ in train}
    assert not val_ids & test_ids and not train_ids & test_ids
    assert not val_ids & train_ids
    again = training_items(folders, HoldOut(fraction=0.3, seed=1, limit=100))[1]
    assert [s.id for s in again] == [s.id for s in val]  # seeded


def test_sample_identities_are_unique_per_dataset() -> None:
    """Two formats rendered with one seed share no person (AFLW2000 test faces were 300W_LP's)."""
    people = {name: {identity_for(name, p.identity_key, 0) for p in plan(name, 12)} for name in
              ("BIWI", "300W_LP", "AFLW2000")}
    assert len(people["AFLW2000"]) == 12
    assert not people["AFLW2000"] & people["300W_LP"]
    assert not people["BIWI"] & (people["300W_LP"] | people["AFLW2000"])


def test_sample_aflw2000_has_a_face_the_protocol_filter_drops(tmp_path: Path) -> None:
    make_sample_dataset("AFLW2000", tmp_path / "AFLW2000", n=8, seed=0, progress=False, scale=0.25)
    everything = {s.id: s for s in open_reader(tmp_path / "AFLW2000")}
    stored_deg = {sid: np.degrees(np.abs(s.native["pose_para"][:3])) for sid, s in everything.items()}
    beyond = [sid for sid, a in stored_deg.items() if a.max() > 99]
    assert beyond == ["image00007"]
    scored, n_filtered = scored_samples(tmp_path / "AFLW2000")
    assert n_filtered == 1 and {s.id for s in scored} == set(everything) - {"image00007"}
    r = CliRunner().invoke(main, ["import", "--src", "AFLW2000", "--out", "protocol", "--protocol-filter",
                                  "--data-root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert set(labels_by_id(tmp_path / "protocol")) == set(everything) - {"image00007"}


def test_reproduce_report_marks_suites_by_the_evaluators_face_identity(tmp_path: Path) -> None:
    """A suite is marked (train) when the evaluator found training faces among its scored faces, by
    identity; not by folder names (a BIWI_masked folder among the training folders contributes only
    its train rows, which the suite does not score)."""
    from maskbench.reproduce import PRESETS, write_report

    def scores(seen: int) -> dict:
        return {"yaw_mae_deg": 1.0, "pitch_mae_deg": 2.0, "roll_mae_deg": 3.0, "mae_deg": 2.0, "miss_rate": 0.0,
                "n": 16, "seen_in_training": seen}

    (tmp_path / "eval" / "model2").mkdir(parents=True)
    (tmp_path / "eval" / "model2" / "results.json").write_text(json.dumps(
        {"suites": {"300W_LP_masked": scores(16), "BIWI_masked": scores(0), "AFLW2000": scores(0)}}))
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "model2.json").write_text(json.dumps({"train": ["BIWI_masked", "300W_LP_masked"]}))
    report = write_report(tmp_path, PRESETS["smoke"], None, "cpu", 0, []).read_text()
    rows = {line.split(" | ")[1]: line for line in report.splitlines() if line.startswith("| model2 |")}
    assert set(rows) == {"300W_LP_masked (train)", "BIWI_masked", "AFLW2000"}
    assert rows["BIWI_masked"].rstrip().endswith("| 4.51 |")  # a test suite keeps its published number
    assert rows["300W_LP_masked (train)"].rstrip().endswith("|  |")  # training error: no published number beside it
