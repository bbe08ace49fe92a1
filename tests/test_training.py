"""Reference-model training: augmentation labels, resume, data-parallel equality, export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskbench import geometry
from maskbench.datasets import open_reader
from maskbench.sampledata import make_sample_dataset
from maskbench.training.data import FaceDataset, TrainAugment, split_samples
from maskbench.training.trainer import train

TINY = {"name": "tiny", "train": ["300W_LP"], "val_fraction": 0.0, "pose_weight": 1.0, "image_size": 64,
        "epochs": 3, "batch_size": 8, "lr": 0.002}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 300W_LP and 8 AFLW2000 samples at a quarter of the native size."""
    root = tmp_path_factory.mktemp("small")
    make_sample_dataset("300W_LP", root / "300W_LP", n=16, seed=3, progress=False, scale=0.25)
    make_sample_dataset("AFLW2000", root / "AFLW2000", n=8, seed=4, progress=False, scale=0.25)
    return root


def _item(items: list, sample_id: str) -> tuple:  # type: ignore[type-arg]
    return next(it for it in items if it[0].id == sample_id)


def test_flip_augmentation_equals_the_datasets_own_mirror(small_root: Path) -> None:
    """Mirroring the original at train time gives the labels the dataset's _Flip file states."""
    items = split_samples(small_root / "300W_LP", None)
    flips = [it for it in items if "_Flip/" in it[0].id]
    assert flips
    for flip in flips:
        original = _item(items, flip[0].id.replace("_Flip/", "/", 1))
        no_crop = {"face_fraction": None, "photometric": 0.0}
        x_aug, t_aug = FaceDataset([original], 112, TrainAugment(flip_prob=1.0, **no_crop))[0]
        x_ref, t_ref = FaceDataset([flip], 112, TrainAugment(flip_prob=0.0, **no_crop))[0]
        assert torch.allclose(t_aug.rotations, t_ref.rotations, atol=1e-6)
        # landmarks/box agree to a pixel's width (pixel-centre conventions at different scales)
        assert torch.allclose(t_aug.landmarks, t_ref.landmarks, atol=1.5 / 112)
        assert torch.allclose(t_aug.boxes, t_ref.boxes, atol=1.5 / 112)
        assert float((x_aug - x_ref).abs().mean()) < 0.02


def test_random_crop_holds_the_face_at_the_drawn_size(small_root: Path) -> None:
    items = split_samples(small_root / "300W_LP", None)
    ds = FaceDataset(items, 96, TrainAugment(face_fraction=(0.4, 0.6), flip_prob=0.0, photometric=0.0), seed=5)
    seen = set()
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(items)):
            _, t = ds[i]
            x0, y0, x1, y1 = t.boxes[0].tolist()
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            assert 0.4 - 1e-6 <= max(x1 - x0, y1 - y0) <= 0.6 + 1e-6
            lm = t.landmarks[0].view(5, 2)
            assert bool(((lm[:, 0] >= x0 - 0.02) & (lm[:, 0] <= x1 + 0.02)).all())
            assert bool(((lm[:, 1] >= y0 - 0.02) & (lm[:, 1] <= y1 + 0.02)).all())
            seen.add(round(x0, 4))
    assert len(seen) > len(items)  # crops differ between epochs


def test_protocol_crop_is_the_evaluators_input(small_root: Path) -> None:
    """``protocol_crop_prob=1``: each training canvas is the crop the evaluator gives the reference
    model (box + 25 %, clipped, letterboxed), and the labels move with it."""
    from maskbench.evaluation.adapters import ReferenceModel
    from maskbench.evaluation.protocol import load_item

    items = split_samples(small_root / "AFLW2000", None)
    ds = FaceDataset(items, 96, TrainAugment(protocol_crop_prob=1.0, flip_prob=0.0, photometric=0.0), seed=5)
    for i, (sample, _) in enumerate(items):
        x, t = ds[i]
        item = load_item(sample)
        canvas, scale = ReferenceModel(None, 96).prepare(item)
        assert np.array_equal((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), canvas)
        x0, y0, _, _ = item.crop_box()
        b = sample.bbox
        expect = np.array([b.x_min - x0, b.y_min - y0, b.x_max - x0, b.y_max - y0]) * scale / 96
        assert np.allclose(t.boxes[0].numpy(), np.clip(expect, 0, 1), atol=1e-5)


def test_online_rotation_recomputes_the_pose(small_root: Path) -> None:
    """model4's online rotation: the new label is the old one rolled by the drawn angle (geodesic = |theta|)."""
    items = split_samples(small_root / "300W_LP", None)[:6]
    aug = TrainAugment(face_fraction=None, flip_prob=0.0, photometric=0.0, rotate_prob=1.0, rotate_range_deg=(20, 40))
    ds = FaceDataset(items, 96, aug, seed=1)
    for i, (sample, _) in enumerate(items):
        _, t = ds[i]
        angle = geometry.geodesic_deg(t.rotations[0].double().numpy(), sample.pose.matrix)
        assert 20 - 1e-3 <= angle <= 40 + 1e-3


def test_online_mask_changes_the_lower_face_only(small_root: Path) -> None:
    items = split_samples(small_root / "300W_LP", None)[:4]
    plain = FaceDataset(items, 112, TrainAugment(face_fraction=None, flip_prob=0.0, photometric=0.0))
    masked = FaceDataset(items, 112, TrainAugment(face_fraction=None, flip_prob=0.0, photometric=0.0, mask_prob=1.0))
    for i in range(len(items)):
        (xp, tp), (xm, tm) = plain[i], masked[i]
        assert torch.equal(tp.rotations, tm.rotations)
        changed = (xp - xm).abs().sum(0) > 0.05
        assert changed.any()
        rows = changed.nonzero()[:, 0].float()
        eye_y = float(tp.landmarks[0, 1::2][:2].max()) * 112  # the lower eye centre, canvas pixels
        assert float(rows.median()) > eye_y


def _losses(run: Path) -> list[float]:
    return [x for h in json.loads((run / "history.json").read_text()) for x in h["losses"]]


def test_resume_continues_the_same_run(small_root: Path, tmp_path: Path) -> None:
    cfg = dict(TINY, epochs=3)
    train(cfg, small_root, tmp_path / "straight", progress=False)
    train(cfg, small_root, tmp_path / "stopped", epochs=3, max_minutes=0.0, progress=False)  # stops after epoch 1
    assert len(json.loads((tmp_path / "stopped" / "history.json").read_text())) == 1
    train(cfg, small_root, tmp_path / "stopped", progress=False, resume=True)
    np.testing.assert_allclose(_losses(tmp_path / "stopped"), _losses(tmp_path / "straight"), rtol=1e-5)


def test_two_gloo_processes_follow_the_one_process_loss_trajectory(small_root: Path, tmp_path: Path) -> None:
    """torchrun --nproc_per_node 2 on CPU (gloo), 4 + 4 images per step, equals 1 process with 8.

    Batch norm is frozen in this config: on CPU each process normalises with its own half batch
    (SyncBatchNorm needs CUDA), which would make the trajectories differ for that reason alone."""
    cfg = dict(TINY, epochs=2, freeze_bn=True)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    train(cfg, small_root, tmp_path / "one", progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "maskbench", "train", "--config", str(tmp_path / "cfg.json"), "--data-root", str(small_root),
           "--out", str(tmp_path / "two"), "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 2 * 16 // 8
    np.testing.assert_allclose(two, one, rtol=1e-4)
    assert json.loads((tmp_path / "two" / "history.json").read_text())[0]["images_per_s"] > 0


def test_export_torchscript_and_onnx_score_like_each_other(small_root: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from maskbench.cli import main
    from maskbench.models.inference import load_model_from_checkpoint
    from maskbench.models.pretrained import init_model

    # a deeper, narrower pose head than the default: loading, --init and export follow the config
    train(dict(TINY, epochs=1, pose_layers=3, pose_channels=16), small_root, tmp_path / "run", progress=False)
    model, _ = load_model_from_checkpoint(tmp_path / "run" / "last.pth")
    assert model.heads["pose6d"][0][-1].in_channels == 16 and len(model.heads["pose6d"][0]) == 4
    config = dict(TINY)
    again, network = init_model(tmp_path / "run" / "last.pth", config)
    assert (network["pose_layers"], network["pose_channels"]) == (3, 16) and config == TINY  # read, not written
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    g = torch.Generator().manual_seed(0)
    for key, value in ckpt["state_dict"].items():  # random convolutions: poses swing from face to face
        if key.endswith("weight") and value.ndim == 4:
            ckpt["state_dict"][key] = torch.randn(value.shape, generator=g) * (2.0 / value[0].numel()) ** 0.5
    torch.save(ckpt, tmp_path / "head.pth")
    runner = CliRunner()
    predicted = {}
    for name, model in (("checkpoint", tmp_path / "head.pth"), ("torchscript", tmp_path / "model.pt"),
                        ("onnx", tmp_path / "model.onnx")):
        if name != "checkpoint":
            r = runner.invoke(main, ["export", str(tmp_path / "head.pth"), "--format", name, "--out", str(model)])
            assert r.exit_code == 0, r.output
        r = runner.invoke(main, ["evaluate", str(model), "--suite", "AFLW2000", "--data-root", str(small_root),
                                 "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        with open(tmp_path / name / "predictions.csv", newline="") as f:
            predicted[name] = {row["id"]: geometry.euler_deg_to_matrix(*(float(row[f"pred_{a}_deg"])
                                                                         for a in ("yaw", "pitch", "roll")))
                               for row in csv.DictReader(f)}
    reference = predicted["checkpoint"]
    swing = np.mean([geometry.geodesic_deg(reference[i], reference[j]) for i, j in zip(sorted(reference),
                                                                                       sorted(reference)[1:])])
    assert swing > 10, swing  # poses that did not depend on the pixels would prove nothing
    for name in ("torchscript", "onnx"):  # each face: the exports compute the checkpoint's pose
        assert predicted[name].keys() == reference.keys()
        apart = [geometry.geodesic_deg(reference[i], predicted[name][i]) for i in reference]
        assert max(apart) <= 0.5, (name, max(apart))


def _poses(model, samples: list) -> list:  # type: ignore[no-untyped-def,type-arg]
    """The model's pose of each sample under the crop protocol, through its adapter's own ``prepare``."""
    import dataclasses

    from maskbench.evaluation.protocol import load_item

    items = [load_item(s) for s in samples]
    items = [dataclasses.replace(it, prepared=model.prepare(it)) for it in items]
    return [r for k in range(0, len(items), 32) for r in model.predict(items[k : k + 32])]


def test_the_export_computes_the_checkpoints_poses(small_root: Path, sample_root: Path, retinaface_release: Path,
                                                  tmp_path: Path) -> None:
    """#27: the exported TorchScript and ONNX files give, face by face, the poses of the checkpoint they
X
    16 AFLW2000 and 300W_LP faces: within 0.5 degrees mean is the bar. The model is the RetinaFace release
    (shipped in the package) with a seeded random pose head, so its poses swing with every pixel: fed the
    crop stretched to 224 px, as the export was before, the same file is tens of degrees off the checkpoint."""
    from maskbench.evaluation.adapters import CheckpointModel, OnnxModel, TorchScriptModel
    from maskbench.training.export import export

    train(dict(TINY, epochs=1), small_root, tmp_path / "run", progress=False, init=retinaface_release)
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    g = torch.Generator().manual_seed(0)
    for key, value in ckpt["state_dict"].items():  # a pose head that reads the pixels
        if key.startswith("heads.pose6d") and key.endswith("weight") and value.ndim == 4:
            ckpt["state_dict"][key] = torch.randn(value.shape, generator=g) * 0.2
    torch.save(ckpt, tmp_path / "head.pth")
    files = {"torchscript": export(tmp_path / "head.pth", tmp_path / "m.pt", "torchscript"),
             "onnx": export(tmp_path / "head.pth", tmp_path / "m.onnx", "onnx")}
    samples = list(open_reader(sample_root / "AFLW2000")) + list(open_reader(sample_root / "300W_LP"))
    reference = _poses(CheckpointModel(tmp_path / "head.pth"), samples)
    swing = np.mean([geometry.geodesic_deg(reference[0], r) for r in reference[1:]])
    assert swing > 30, swing  # a test model whose poses do not depend on the input would prove nothing
    for fmt, model in (("torchscript", TorchScriptModel(files["torchscript"])), ("onnx", OnnxModel(files["onnx"]))):
        assert model.letterbox_px == TINY["image_size"]
        apart = [geometry.geodesic_deg(a, b) for a, b in zip(reference, _poses(model, samples))]
        assert len(apart) == len(samples) == 16 and float(np.mean(apart)) <= 0.5, (fmt, np.mean(apart))


#: AFLW2000-format test sets of the generalisation test: seeds never used while tuning the recipe
#: (it was tuned on seed 7), each 100 renders of people not in the training set.
FRESH_TEST_SEEDS = (11, 12, 13)


@pytest.mark.skipif(os.environ.get("MASKBENCH_SLOW") != "1",
                    reason="5 CPU minutes of training: run by `make stress` (MASKBENCH_SLOW=1)")
def test_a_few_cpu_minutes_beat_the_mean_pose_3x_on_held_out_faces(tmp_path: Path) -> None:
    """The issue's bar: trained on 300W_LP-format sample data (fixed seed, 64 px inputs), the model's
    crop-protocol MAE on AFLW2000-format faces of other people, averaged over fresh test sets, is at
    most a third of baseline:mean's, and pitch and roll each at most 0.75x baseline:mean's (a model
    that gets only yaw right cannot pass: yaw-only scored 3.07x on the tuning set)."""
    from maskbench.evaluation.adapters import CheckpointModel, MeanBaseline
    from maskbench.evaluation.evaluator import evaluate_suite
    from maskbench.evaluation.suites import training_matrices

    make_sample_dataset("300W_LP", tmp_path / "300W_LP", n=1200, seed=0, progress=False, scale=0.25, workers=2)
    cfg = {"name": "generalise", "train": ["300W_LP"], "val_fraction": 0.0, "pose_weight": 2.0, "landmark_weight": 0.5,
           "image_size": 64, "epochs": 30, "batch_size": 32, "lr": 0.005, "augment": {"face_fraction": [0.5, 0.8]}}
    train(cfg, tmp_path, tmp_path / "run", seed=0, progress=False)
    model_fn = CheckpointModel(tmp_path / "run" / "last.pth")
    mean_fn = MeanBaseline(training_matrices(tmp_path))
    keys = ("yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg", "mae_deg")
    model, mean = [], []
    for seed in FRESH_TEST_SEEDS:
        suite = tmp_path / f"AFLW2000_{seed}"
        make_sample_dataset("AFLW2000", suite, n=100, seed=seed, progress=False, scale=0.25)
        m = evaluate_suite(model_fn, "AFLW2000", suite, progress=False).overall
        b = evaluate_suite(mean_fn, "AFLW2000", suite, progress=False).overall
        assert m.n_missed == 0 and m.n == b.n >= 90
        model.append([getattr(m, k) for k in keys])
        mean.append([getattr(b, k) for k in keys])
    model_avg, mean_avg = np.mean(model, axis=0), np.mean(mean, axis=0)
    print("held-out MAE per test seed, model / baseline:mean (yaw, pitch, roll, mean):",
          [f"{a[3]:.2f}/{b[3]:.2f}" for a, b in zip(model, mean)], model_avg.round(2), mean_avg.round(2))
    assert model_avg[3] * 3.0 <= mean_avg[3]
    assert model_avg[1] <= 0.75 * mean_avg[1] and model_avg[2] <= 0.75 * mean_avg[2]


def test_training_log_is_not_redrawn_per_batch_or_per_epoch(small_root: Path, tmp_path: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """Off a terminal one bar covers the run and is redrawn at most every 30 s: neither every batch's
    loss update nor every (short) epoch writes a line."""
    train(dict(TINY, epochs=3, batch_size=4), small_root, tmp_path / "run", progress=True)
    err = capfd.readouterr().err
    redraws = err.count("train:")
    assert 1 <= redraws <= 3, err[-2000:]  # 3 epochs x 4 batches: before, two lines per epoch (or one per batch)
    assert "epoch=3/3" in err, err[-2000:]  # the final state is written


def test_ema_weights_are_scored_and_saved_and_resume_keeps_the_raw_ones(small_root: Path, tmp_path: Path) -> None:
    cfg = dict(TINY, epochs=2, ema_decay=0.9)
    train(cfg, small_root, tmp_path / "straight", progress=False)
    last = torch.load(tmp_path / "straight" / "last.pth", weights_only=True)
    best = torch.load(tmp_path / "straight" / "best.pth", weights_only=True)
    assert "train_state_dict" in last and "train_state_dict" not in best
    w = "backbone.stage1.0.0.weight"
    ema, raw = last["state_dict"][w], last["train_state_dict"][w]
    assert not torch.equal(ema, raw)  # the average lags the raw weights
    train(cfg, small_root, tmp_path / "stopped", max_minutes=0.0, progress=False)  # stops after epoch 1
    train(cfg, small_root, tmp_path / "stopped", progress=False, resume=True)
    np.testing.assert_allclose(_losses(tmp_path / "stopped"), _losses(tmp_path / "straight"), rtol=1e-5)
    again = torch.load(tmp_path / "stopped" / "last.pth", weights_only=True)
    assert torch.allclose(again["state_dict"][w], ema, atol=1e-6)


def test_pretrained_parts_learn_at_a_fraction_of_the_rate() -> None:
    from maskbench.models.retinaface import RetinaFacePose
    from maskbench.training.trainer import _param_groups

    model = RetinaFacePose()
    fresh, pretrained = _param_groups(model, 0.01, 0.3)
    assert fresh["lr"] == 0.01 and pretrained["lr"] == pytest.approx(0.003)
    pose = {id(p) for p in model.heads["pose6d"].parameters()}
    assert {id(p) for p in fresh["params"]} == pose
    assert len(fresh["params"]) + len(pretrained["params"]) == len(list(model.parameters()))
    (single,) = _param_groups(model, 0.01, 1.0)
    assert single["lr"] == 0.01


def test_the_training_config_is_typed_and_records_what_was_given() -> None:
    from maskbench.training.config import TrainConfig, load_config

    raw = load_config("model1")
    cfg = TrainConfig.from_dict(raw)
    assert isinstance(cfg.train, tuple) and isinstance(cfg.lr, float) and cfg.epochs == int(raw["epochs"])
    recorded = cfg.as_dict()
    assert list(recorded)[: len(raw)] == list(raw) and recorded["biwi_labels"] == "literature"
    assert {k: recorded[k] for k in raw} == {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}
    shaped = TrainConfig.from_dict({**raw, "pose_layers": 4}).with_network({"pose_layers": 3, "pose_channels": 16,
                                                                           "input_norm": "bgr-mean"})
    assert shaped.network == {"pose_layers": 3, "pose_channels": 16, "input_norm": "bgr-mean"}
    assert shaped.as_dict()["pose_layers"] == 3 and shaped.as_dict()["input_norm"] == "bgr-mean"
    with pytest.raises(ValueError, match="lacks lr"):
        TrainConfig.from_dict({k: v for k, v in raw.items() if k != "lr"})
    with pytest.raises(ValueError, match="epochs = 'many'"):
        TrainConfig.from_dict({**raw, "epochs": "many"})
    with pytest.raises(ValueError, match="biwi_labels"):
        TrainConfig.from_dict({**raw, "biwi_labels": "depth"})


def test_augment_false_in_a_config_still_means_no_online_augmentation() -> None:
    from maskbench.training.config import TrainConfig, load_config

    raw = load_config("model1")
    assert TrainAugment.from_config(TrainConfig.from_dict({**raw, "augment": False}).augment) is None
    assert TrainAugment.from_config(TrainConfig.from_dict(raw).augment) == TrainAugment()
    assert TrainConfig.from_dict({**raw, "augment": False}).as_dict()["augment"] is False


def test_configs_are_named_for_their_data_and_the_studys_names_are_aliases() -> None:
    from maskbench.training.config import CONFIG_ALIASES, load_config

    for alias, name in CONFIG_ALIASES.items():
        assert load_config(alias) == load_config(name), alias
    assert load_config("masked")["train"] == ["BIWI", "300W_LP", "BIWI_masked", "300W_LP_masked"]
    assert load_config("rotated")["train"] == ["BIWI", "BIWI_rotated"]
    with pytest.raises(ValueError, match="model1 = plain"):
        load_config("model9")
