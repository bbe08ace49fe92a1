"""The field's protocols: masked and rotated suites score exactly their source's faces (on real
dev-half photos), and unpaired sets are never compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.datasets import open_reader
from maskbench.datasets.aflw2000 import SOURCE_ANGLE_COLUMN, max_abs_stored_angle_deg
from maskbench.evaluation.suites import scored_samples
from maskbench.io.labels import labels_by_id


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
    own = {s.id for s in open_reader(rotated) if max_abs_stored_angle_deg(s) <= 99.0}
    assert len(own) == 990 and own != plain
    rows = labels_by_id(rotated)
    assert all(float(r[SOURCE_ANGLE_COLUMN]) == pytest.approx(max_abs_stored_angle_deg(s), abs=1e-6)
               for s in open_reader(dev) for r in [rows[s.id]])


def test_a_copy_of_a_copy_keeps_the_source_angles_and_masked_pairs(real_dir: Path, tmp_path: Path) -> None:
    dev = real_dir / "aflw2000_dev"
    # the photos nearest the limit, where a rotation can move a face across it, and a few others
    near = sorted(s.id for s in open_reader(dev) if 85 <= max_abs_stored_angle_deg(s) <= 130)[:16]
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
        return SuiteResult(name, score(np.zeros((1, 3)), np.ones((1, 3)), [np.eye(3)], [np.eye(3)]), 0, rows=rows)

    pens = masked_penalties([result("X", ["a", "b", "c"]), result("X_masked", ["a", "b", "d"])])
    assert "refused" in pens["X_masked"] and "1 only in X_masked, 1 only in X" in pens["X_masked"]["refused"]
    paired = masked_penalties([result("X", ["a", "b"]), result("X_masked", ["b", "a"])], n_boot=10)
    assert paired["X_masked"]["pairs"] == 2
    # compare: two reports of one suite with different n are not put side by side
    preds = tmp_path / "p.csv"
    with open(preds, "w") as f:
        f.write("id,yaw_deg,pitch_deg,roll_deg\n")
        for s in open_reader(sample_root / "AFLW2000"):
            f.write(f"{s.id},0,0,0\n")
    base = ["evaluate", "--predictions", str(preds), "--suite", "AFLW2000", "--data-root", str(sample_root)]
    assert run(*base, "--out", str(tmp_path / "a"))[0] == 0
    assert run(*base, "--limit", "3", "--out", str(tmp_path / "b"))[0] == 0
    code, text = run("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 2 and "scored on different faces" in text
    assert run("compare", str(tmp_path / "a"), str(tmp_path / "a"))[0] == 0


# ---------------------------------------------------------------------------------------------
# BIWI labels: the literature's conversion (depth frame) beside the RGB-calibrated one
# ---------------------------------------------------------------------------------------------
def _fsanet_biwi_angles(pose_txt: Path) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a BIWI pose file as FSA-Net's TYY_create_db_biwi_70_30.py and
    6DRepNet compute them: the 3x3 block read row by row, transposed, then three arctangents."""
    import math

    rows = [[float(v) for v in line.split()] for line in pose_txt.read_text().splitlines() if line.strip()]
    r = np.array(rows[:3]).T
    roll = -math.degrees(math.atan2(r[1][0], r[0][0]))
    yaw = -math.degrees(math.atan2(-r[2][0], math.sqrt(r[2][1] ** 2 + r[2][2] ** 2)))
    pitch = math.degrees(math.atan2(r[2][1], r[2][2]))
    return yaw, pitch, roll


def test_literature_biwi_labels_are_the_fsanet_conversion_of_the_real_frame(real_dir: Path, tmp_path: Path) -> None:
    from maskbench.evaluation.protocol import label_euler_deg

    biwi = real_dir / "biwi"
    literature = _fsanet_biwi_angles(biwi / "hpdb" / "01" / "frame_00003_pose.txt")
    assert literature == pytest.approx((3.291, 7.607, -1.567), abs=1e-3)
    non_cal = np.load(biwi / "headposeplus" / "Biwi_plus_non_cal_subset.npz")["ypr"][0]
    assert literature == pytest.approx(tuple(non_cal), abs=1e-3)  # the public non-calibrated labels agree
    (sample,) = list(open_reader(biwi))
    assert label_euler_deg(sample) == pytest.approx(literature, abs=1e-4)  # the default
    assert label_euler_deg(sample, "calibrated") == pytest.approx((3.852, 8.459, -1.742), abs=1e-3)
    # written: labels.csv carries the chosen convention, the manifest says which
    for labels, expected in (("literature", literature), ("calibrated", (3.852, 8.459, -1.742))):
        out = tmp_path / labels
        args = ["import", "--src", str(biwi), "--out", str(out)] + (["--biwi-labels", labels] if labels != "literature"
                                                                   else [])
        code, text = run(*args)
        assert code == 0, text
        (row,) = labels_by_id(out).values()
        assert (float(row["yaw_deg"]), float(row["pitch_deg"]), float(row["roll_deg"])) == pytest.approx(expected,
                                                                                                          abs=1e-3)
        assert json.loads((out / "manifest.json").read_text())["biwi_labels"] == labels
        # the native pose file is the same either way (byte for byte)
        assert (out / "hpdb" / "01" / "frame_00003_pose.txt").read_bytes() == \
            (biwi / "hpdb" / "01" / "frame_00003_pose.txt").read_bytes()
    # scored: a model that outputs the literature angles is exact under the default and off under calibrated
    preds = tmp_path / "p.csv"
    preds.write_text("id,yaw_deg,pitch_deg,roll_deg\n01/frame_00003,{!r},{!r},{!r}\n".format(*literature))
    maes = {}
    for labels in ("literature", "calibrated"):
        code, text = run("evaluate", "--predictions", str(preds), "--suite", str(biwi), "--biwi-labels", labels,
                         "--out", str(tmp_path / f"e_{labels}"))
        assert code == 0, text
        data = json.loads((tmp_path / f"e_{labels}" / "results.json").read_text())
        assert data["biwi_labels"] == labels
        assert any(n.startswith(f"BIWI labels: {labels}") for n in data["suites"]["biwi"]["notes"])
        maes[labels] = data["suites"]["biwi"]["mae_deg"]
    assert maes["literature"] < 1e-4 and maes["calibrated"] > 0.3  # (the pose file holds 6 digits)


def test_training_targets_follow_the_biwi_label_convention(sample_root: Path) -> None:
    from maskbench.datasets.biwi import label_matrix
    from maskbench.training.data import FaceDataset

    items = [(s, open_reader(sample_root / "BIWI").fmt) for s in open_reader(sample_root / "BIWI")][:2]
    for labels in ("literature", "calibrated"):
        dataset = FaceDataset(items, 64, None, 0, labels)
        for (sample, _), (_, target) in zip(items, (dataset[0], dataset[1])):
            assert target.rotations[0].numpy() == pytest.approx(label_matrix(sample, labels), abs=1e-6)
    calib = items[0][0].native["calibration"].rotation
    assert not np.allclose(calib, np.eye(3))  # the two conventions do differ on the sample data


# ---------------------------------------------------------------------------------------------
# Leak checks by identity: faces, not the rules that wrote the folders
# ---------------------------------------------------------------------------------------------
def _raw_sample(path: Path, n: int, seed: int) -> None:
    """AFLW2000-format renders as a raw tree (no labels.csv or manifest.json), free to be split any way."""
    from maskbench.sampledata import make_sample_dataset

    make_sample_dataset("AFLW2000", path, n=n, seed=seed, progress=False, scale=0.25)
    (path / "labels.csv").unlink()
    (path / "manifest.json").unlink()


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_leaks_are_found_by_face_whatever_the_folders_or_rules(tmp_path: Path) -> None:
    """Train on the training part of one AFLW2000 folder; scoring another AFLW2000 folder works (it was
    refused before: "split by different rules"), and a re-split of the training photos under another
    rule is scored with exactly its training faces marked."""
    from maskbench.evaluation.adapters import load_checkpoint
    from maskbench.sampledata import make_sample_dataset

    root = str(tmp_path)
    _raw_sample(tmp_path / "A_raw", 16, 5)
    make_sample_dataset("AFLW2000", tmp_path / "B", n=6, seed=6, progress=False, scale=0.25)
    for out, seed, only in (("A_train", "0", ["--only-split", "train"]), ("A_seed1", "1", [])):
        code, text = run("import", "--src", "A_raw", "--out", out, "--split-by", "id", "--split-seed", seed, *only,
                         "--data-root", root)
        assert code == 0, text
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"name": "tiny", "train": ["A_train"], "val_fraction": 0.2, "image_size": 64,
                               "epochs": 1, "batch_size": 4, "lr": 0.001}))
    code, text = run("train", "--config", str(cfg), "--data-root", root, "--out", str(tmp_path / "run"),
                     "--device", "cpu")
    assert code == 2 and "lacks pose_weight" in text  # a one-line error, not a KeyError
    cfg.write_text(json.dumps({"name": "tiny", "train": ["A_train"], "val_fraction": 0.2, "image_size": 64,
                               "epochs": 1, "batch_size": 4, "lr": 0.001, "pose_weight": 0.5}))
    code, text = run("train", "--config", str(cfg), "--data-root", root, "--out", str(tmp_path / "run"),
                     "--device", "cpu")
    assert code == 0, text
    ckpt = load_checkpoint(tmp_path / "run" / "last.pth")
    trained = {_sha(tmp_path / "A_train" / r["image"])[:20] for r in labels_by_id(tmp_path / "A_train").values()}
    assert set(ckpt["faces"]["train"]) | set(ckpt["faces"]["validation"]) == trained
    assert not set(ckpt["faces"]["train"]) & set(ckpt["faces"]["validation"])
    results = {}
    for suite in ("B", "A_seed1"):
        code, text = run("evaluate", str(tmp_path / "run" / "last.pth"), "--suite", suite, "--data-root", root,
                         "--out", str(tmp_path / f"e_{suite}"), "--device", "cpu")
        assert code == 0, text
        results[suite] = json.loads((tmp_path / f"e_{suite}" / "results.json").read_text())["suites"][suite]
    assert results["B"]["seen_in_training"] == 0
    scored = scored_samples(tmp_path / "A_seed1")[0]  # its test rows inside the 99-degree protocol
    expected = sum(_sha(s.image_path)[:20] in trained for s in scored)
    assert expected > 0 and results["A_seed1"]["seen_in_training"] == expected
    assert any(n.startswith("(train)") for n in results["A_seed1"]["notes"])
    with open(tmp_path / "e_A_seed1" / "predictions.csv") as f:
        import csv

        assert sum(row["seen"] == "True" for row in csv.DictReader(f)) == expected


def test_validation_holds_each_face_once_and_never_a_training_face(tmp_path: Path) -> None:
    from maskbench.training.data import HoldOut, training_items

    root = str(tmp_path)
    _raw_sample(tmp_path / "A_raw", 12, 5)
    for out, only in (("A_train", "train"), ("A_val", "val")):
        code, text = run("import", "--src", "A_raw", "--out", out, "--split-by", "id", "--val-fraction", "0.3",
                         "--only-split", only, "--data-root", root)
        assert code == 0, text
    code, text = run("synthesize", "--src", "A_val", "--landmarks", "gt", "--data-root", root)
    assert code == 0, text
    n_val_faces = len(labels_by_id(tmp_path / "A_val"))
    _, val, record = training_items([tmp_path / "A_train"], HoldOut(), [tmp_path / "A_val", tmp_path / "A_val_masked"])
    assert len(val) == n_val_faces == record["validation_samples"]  # not twice (16 for 8 before)
    # a validation folder that holds training faces (another rule over the same photos) is refused
    code, text = run("import", "--src", "A_raw", "--out", "other_val", "--split-by", "id", "--split-seed", "7",
                     "--val-fraction", "0.5", "--only-split", "val", "--data-root", root)
    assert code == 0, text
    with pytest.raises(ValueError, match="validation faces are also training faces"):
        training_items([tmp_path / "A_train"], HoldOut(), [tmp_path / "other_val"])
