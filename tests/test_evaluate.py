"""Metrics, adapters, suites and the evaluate command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskbench import geometry
from maskbench.cli import main
from maskbench.datasets import open_reader
from maskbench.evaluation.evaluator import evaluate_suite
from maskbench.evaluation.metrics import angle_errors_deg, score
from maskbench.evaluation.outputs import to_matrix
from maskbench.io.labels import labels_by_id, read_labels
from maskbench.types import HeadPose


def euler(mats: list[np.ndarray]) -> np.ndarray:
    return np.array([geometry.matrix_to_euler_deg(m) for m in mats])


def random_poses(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [geometry.euler_deg_to_matrix(*v) for v in zip(rng.uniform(-80, 80, n), rng.uniform(-40, 40, n),
                                                          rng.uniform(-40, 40, n))]


def test_perfect_predictions_score_zero() -> None:
    true = random_poses(50)
    s = score(euler(true), euler(true), true, true)
    for v in (s.yaw_mae_deg, s.pitch_mae_deg, s.roll_mae_deg, s.mae_deg, s.maev_deg, s.geodesic_deg):
        assert v == pytest.approx(0.0, abs=1e-6)
    assert s.miss_rate == 0.0


def test_known_offsets_score_exactly_those_offsets() -> None:
    true = random_poses(40, seed=1)
    t = euler(true)
    p = t + np.array([3.0, -2.0, 1.5])
    pm = [geometry.euler_deg_to_matrix(*v) for v in p]
    s = score(t, euler(pm), true, pm)
    assert (s.yaw_mae_deg, s.pitch_mae_deg, s.roll_mae_deg) == pytest.approx((3.0, 2.0, 1.5), abs=1e-9)
    assert s.mae_deg == pytest.approx(6.5 / 3, abs=1e-9)


def test_wrapping_179_vs_minus_179_is_two_degrees() -> None:
    assert angle_errors_deg(np.array([179.0]), np.array([-179.0]))[0] == pytest.approx(2.0)
    assert angle_errors_deg(np.array([-170.0]), np.array([170.0]))[0] == pytest.approx(20.0)


def test_a_miss_counts_in_miss_rate_not_in_mae() -> None:
    true = random_poses(4, seed=2)
    t = euler(true)
    preds = [true[0], true[1], None, true[3]]
    p = t.copy()
    p[2] = np.nan
    s = score(t, p, true, preds)
    assert s.miss_rate == pytest.approx(0.25) and s.n_missed == 1
    assert s.mae_deg == pytest.approx(0.0, abs=1e-9)


def test_model_outputs_euler_matrix_and_6d_agree() -> None:
    r = HeadPose.from_euler_deg(yaw_deg=30, pitch_deg=-10, roll_deg=5).matrix
    assert geometry.geodesic_deg(to_matrix([30, -10, 5]), r) < 1e-9
    assert geometry.geodesic_deg(to_matrix(r), r) < 1e-9
    six = np.concatenate([r[:, 0] * 2.0, r[:, 1] + 0.3 * r[:, 0]])  # unnormalised, not orthogonal
    assert geometry.geodesic_deg(to_matrix(six), r) < 1e-9
    with pytest.raises(ValueError):
        to_matrix(np.zeros(4))


def test_derived_splits_never_put_a_test_source_in_train(tmp_path: Path, sample_root: Path) -> None:
    runner = CliRunner()
    root = str(sample_root)
    for cmd in (["synthesize", "--src", "BIWI", "--out", str(tmp_path / "BIWI_masked")],
                ["rotate", "--src", str(tmp_path / "BIWI_masked"), "--out", str(tmp_path / "BIWI_mr"),
                 "--per-image", "3"]):
        assert runner.invoke(main, [*cmd, "--data-root", root]).exit_code == 0
    original = {r["id"]: r["split"] for r in read_labels(sample_root / "BIWI")}
    assert set(original.values()) == {"train", "test"}
    for d in ("BIWI_masked", "BIWI_mr"):
        for row in read_labels(tmp_path / d):
            assert row["split"] == original[row["source_id"]]


def write_predictions(path: Path, suite: Path, offset: tuple[float, float, float]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "yaw_deg", "pitch_deg", "roll_deg"])
        for s in open_reader(suite):
            e = s.pose.euler_deg()
            w.writerow([s.id, e["yaw_deg"] + offset[0], e["pitch_deg"] + offset[1], e["roll_deg"] + offset[2]])


def test_evaluate_command_with_predictions_file(sample_root: Path, tmp_path: Path) -> None:
    preds = tmp_path / "p.csv"
    write_predictions(preds, sample_root / "AFLW2000", (2.0, 0.0, 0.0))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "x", "--predictions", str(preds), "--suite", "AFLW2000",
                                       "--suite", "BIWI_masked", "--data-root", str(sample_root), "--out", str(out)])
    # a suite named explicitly must be there: an error that says how to create it, and no report
    assert result.exit_code == 2, result.output
    assert "BIWI_masked: not found" in result.output and "maskbench synthesize --src BIWI" in result.output
    assert not out.exists()
    result = CliRunner().invoke(main, ["evaluate", "x", "--predictions", str(preds), "--suite", "AFLW2000",
                                       "--data-root", str(sample_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())["suites"]["AFLW2000"]
    assert res["yaw_mae_deg"] == pytest.approx(2.0, abs=1e-6)
    assert res["pitch_mae_deg"] == pytest.approx(0.0, abs=1e-6)
    assert res["n"] + res["filtered"] == 8
    assert (out / "report.md").read_text().count("| AFLW2000 |") == 1
    with open(out / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == res["n"]


def constant_model(crops):  # type: ignore[no-untyped-def]
    """A python model for the callable adapter: always frontal, as a 6D vector."""
    return [np.array([1.0, 0, 0, 0, 1.0, 0]) for _ in crops]


def test_callable_torchscript_and_mean_baseline(sample_root: Path, tmp_path: Path) -> None:
    import torch

    class Frontal(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 3)

    ts = tmp_path / "frontal.pt"
    torch.jit.script(Frontal()).save(str(ts))
    results = {}
    for model in ("tests.test_evaluate:constant_model", str(ts), "baseline:mean"):
        out = tmp_path / model.replace("/", "_").replace(":", "_")
        r = CliRunner().invoke(main, ["evaluate", model, "--suite", "AFLW2000", "--data-root", str(sample_root),
                                      "--out", str(out), "--device", "cpu"])
        assert r.exit_code == 0, r.output
        results[model] = json.loads((out / "results.json").read_text())["suites"]["AFLW2000"]
    frontal_callable, frontal_ts, mean = results.values()
    assert frontal_callable["mae_deg"] == pytest.approx(frontal_ts["mae_deg"], abs=1e-9)
    truth = [s.pose for s in open_reader(sample_root / "AFLW2000", max_abs_angle_deg=99.0)]
    expected_yaw = np.mean([abs(p.yaw_deg) for p in truth])
    assert frontal_ts["yaw_mae_deg"] == pytest.approx(expected_yaw, abs=1e-6)
    assert mean["n"] == len(truth)
    # baseline:mean predicts, for every face, the mean rotation of the training rows (BIWI's train
    # sequences and 300W_LP; never a test row): recomputed here with an SVD, independently of the adapter
    train = [s.pose.matrix for s in open_reader(sample_root / "300W_LP")]
    biwi_rows = labels_by_id(sample_root / "BIWI")
    train += [s.pose.matrix for s in open_reader(sample_root / "BIWI") if biwi_rows[s.id]["split"] == "train"]
    u, _, vt = np.linalg.svd(np.sum(train, axis=0))
    expected = np.array(geometry.matrix_to_euler_deg(u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt))
    out = tmp_path / "baseline_mean"
    with open(out / "predictions.csv", newline="") as f:
        predicted = [[float(r[f"pred_{a}_deg"]) for a in ("yaw", "pitch", "roll")] for r in csv.DictReader(f)]
    assert len(predicted) == len(truth)
    np.testing.assert_allclose(predicted, np.broadcast_to(expected, (len(truth), 3)), atol=1e-6)
    assert mean["yaw_mae_deg"] == pytest.approx(np.mean([abs(geometry.wrap_deg(p.yaw_deg - expected[0]))
                                                         for p in truth]), abs=1e-6)


def test_pnp_baseline_on_real_faces_agrees_with_labels(real_dir: Path) -> None:
    """dlib + PnP in maskbench's convention lands near the labels on real near-frontal faces."""
    from maskbench.evaluation.adapters import PnPBaseline
    from maskbench.evaluation.protocol import EvalItem
    from maskbench.io.atomic import read_image

    samples = {s.id: s for s in open_reader(real_dir / "aflw2000")}
    preds = {}
    for sid in ("image00782", "image00814", "image01621"):
        s = samples[sid]
        (preds[sid],) = PnPBaseline().predict([EvalItem(s.id, read_image(s.image_path), s.bbox, None)])
    assert geometry.geodesic_deg(preds["image00782"], samples["image00782"].pose.matrix) < 10.0  # frontal
    assert geometry.geodesic_deg(preds["image00814"], samples["image00814"].pose.matrix) < 15.0  # looking down
    # looking up (pitch +37): the generic face underestimates it (measured +7.5), but the sign is right
    assert HeadPose(preds["image01621"]).pitch_deg > 3.0


def test_plots_and_compare(sample_root: Path, tmp_path: Path) -> None:
    preds = tmp_path / "p.csv"
    write_predictions(preds, sample_root / "AFLW2000", (4.0, 0.0, 0.0))
    runner = CliRunner()
    a, b = tmp_path / "a", tmp_path / "b"
    assert runner.invoke(main, ["evaluate", "x", "--predictions", str(preds), "--suite", "AFLW2000",
                                "--data-root", str(sample_root), "--out", str(a)]).exit_code == 0
    assert runner.invoke(main, ["evaluate", "baseline:mean", "--suite", "AFLW2000", "--data-root", str(sample_root),
                                "--out", str(b)]).exit_code == 0
    assert (a / "error_vs_yaw.png").stat().st_size > 1000
    r = runner.invoke(main, ["compare", str(a), str(b)])
    assert r.exit_code == 0
    header, _, row = r.output.strip().splitlines()[:3]
    assert "predictions:p.csv" in header and "baseline:mean" in header
    assert row.startswith("| AFLW2000 | 1.33 |")  # 4 degrees of yaw error averaged over 3 axes


def test_checkpoints_load_only_with_weights_only(tmp_path: Path) -> None:
    import pickle

    import torch

    from maskbench.evaluation.adapters import load_checkpoint

    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "config": {"name": "model1"}}, good)
    assert load_checkpoint(good)["config"]["name"] == "model1"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("this would run code",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(evil)
    r = CliRunner().invoke(main, ["evaluate", str(evil), "--suite", str(tmp_path)])
    assert r.exit_code == 2 and "refused" in r.output


class HalfBlindDetector:
    """Finds the face (exactly) in every other image: for checking miss accounting in --protocol full."""

    name = "half-blind"

    def predict(self, items):  # type: ignore[no-untyped-def]
        raise AssertionError("crop protocol must not be used here")

    def predict_full(self, items):  # type: ignore[no-untyped-def]
        from maskbench.datasets import open_reader as od

        truth = {s.id: s.pose.matrix for s in od(self.root)}
        order = sorted(truth)
        return [truth[it.sample_id] if order.index(it.sample_id) % 2 == 0 else None for it in items]


def test_full_protocol_counts_misses_and_scores_the_rest(sample_root: Path) -> None:
    model = HalfBlindDetector()
    model.root = sample_root / "300W_LP"
    res = evaluate_suite(model, "300W_LP", sample_root / "300W_LP", batch_size=1, protocol="full", progress=False)
    assert res.overall.n == 8 and res.overall.n_missed == 4
    assert res.overall.mae_deg == pytest.approx(0.0, abs=1e-9)
    assert sum(r["missed"] for r in res.rows) == 4


def test_decoding_ahead_for_gpu_models_scores_the_same(sample_root: Path) -> None:
    """A model on a GPU gets the next batch decoded while it runs; the scores and per-sample rows
    must be those of the decode-then-predict order used on the CPU (here: the same model flagged cuda)."""
    seen: list[str] = []

    class ById:  # a deterministic pose per id, so any mix-up of items between batches shows
        name = "by-id"

        def __init__(self, device: str) -> None:
            self.device = device

        def predict(self, items):  # type: ignore[no-untyped-def]
            seen.extend(i.sample_id for i in items)
            return [geometry.euler_deg_to_matrix(len(i.sample_id) + 3.0 * i.image_bgr.mean() % 40, 5.0, -3.0)
                    for i in items]

    cpu = evaluate_suite(ById("cpu"), "AFLW2000", sample_root / "AFLW2000", batch_size=3, progress=False)
    order_cpu, seen[:] = list(seen), []
    gpu = evaluate_suite(ById("cuda"), "AFLW2000", sample_root / "AFLW2000", batch_size=3, progress=False)
    assert seen == order_cpu and len(seen) > 6
    assert gpu.rows == cpu.rows and gpu.overall == cpu.overall
