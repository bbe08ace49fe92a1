"""Reference-model building blocks: 6D rotations, geodesic loss, boxes, anchors, NMS, forward, loss."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from maskbench import geometry
from maskbench.evaluation.outputs import to_matrix
from maskbench.models import box_utils
from maskbench.models.losses import Target, multitask_loss
from maskbench.models.retinaface import RetinaFacePose
from maskbench.models.rotation6d import geodesic_loss, matrix_to_sixd, sixd_to_matrix


def test_sixd_round_trip_and_agreement_with_the_numpy_adapter() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    r = sixd_to_matrix(x)
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    assert torch.allclose(r.transpose(1, 2) @ r, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(64, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(sixd_to_matrix(matrix_to_sixd(r)), r, atol=1e-12)
    for k in range(5):
        np.testing.assert_allclose(r[k].numpy(), to_matrix(x[k].numpy()), atol=1e-12)


def test_geodesic_loss_matches_geometry() -> None:
    a = torch.tensor(geometry.euler_deg_to_matrix(10, 20, 30))
    b = torch.tensor(geometry.euler_deg_to_matrix(-5, 25, 40))
    expected = np.radians(geometry.geodesic_deg(a.numpy(), b.numpy()))
    assert float(geodesic_loss(a[None], b[None])) == pytest.approx(expected, abs=1e-6)
    x = matrix_to_sixd(a[None]).clone().requires_grad_(True)
    geodesic_loss(sixd_to_matrix(x), a[None]).backward()
    assert torch.isfinite(x.grad).all()  # finite gradient at zero error


def test_box_and_landmark_encoding_round_trip() -> None:
    pri = box_utils.priors(160, 160)[:50]
    boxes = box_utils.center_to_corners(pri) + 0.01
    assert torch.allclose(box_utils.decode_boxes(box_utils.encode_boxes(boxes, pri), pri), boxes, atol=1e-6)
    pts = torch.rand(50, 10)
    assert torch.allclose(box_utils.decode_landmarks(box_utils.encode_landmarks(pts, pri), pri), pts, atol=1e-6)


def test_nms_equals_a_brute_force_reference() -> None:
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(60, 2, generator=g) * 0.8
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(60, 2, generator=g) * 0.1], dim=1)
    scores = torch.rand(60, generator=g)
    kept = box_utils.nms(boxes, scores, 0.4).tolist()
    ious = box_utils.iou(boxes, boxes).numpy()
    reference: list[int] = []
    for i in np.argsort(-scores.numpy()):
        if all(ious[i, j] <= 0.4 for j in reference):
            reference.append(int(i))
    assert kept == reference


def test_every_face_gets_at_least_one_anchor() -> None:
    pri = box_utils.priors(160, 160)
    boxes = torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.4, 0.3, 0.95, 0.9], [0.0, 0.0, 0.05, 0.06]])
    best_gt, pos = box_utils.match(boxes, pri)
    assert set(best_gt[pos].tolist()) == {0, 1, 2}


def test_forward_shapes_and_a_loss_that_decreases() -> None:
    torch.manual_seed(0)
    model = RetinaFacePose()
    x = torch.rand(2, 3, 96, 96)
    pri = box_utils.priors(96, 96)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "loc": (2, len(pri), 4), "conf": (2, len(pri), 2), "landmarks": (2, len(pri), 10), "pose6d": (2, len(pri), 6)}
    rot = torch.tensor(geometry.euler_deg_to_matrix(30, -10, 5), dtype=torch.float32)
    nan_lm = torch.full((1, 10), float("nan"))
    targets = [Target(torch.tensor([[0.2, 0.2, 0.7, 0.8]]), torch.rand(1, 10), rot[None]),
               Target(torch.tensor([[0.3, 0.1, 0.9, 0.6]]), nan_lm, rot[None])]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        terms = multitask_loss(model(x), targets, pri, pose_weight=0.5)
        first = first if first is not None else {k: float(v.detach()) for k, v in terms.items()}
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    last = multitask_loss(model(x), targets, pri)
    assert float(last["total"]) < 0.7 * first["total"]
    assert float(last["pose"]) < first["pose"]


def test_train_checkpoint_and_evaluate_through_the_cli(tmp_path: Path) -> None:
    """A short CPU run writes weights_only checkpoints that `maskbench evaluate` scores (crop protocol)."""
    import json

    from click.testing import CliRunner

    from maskbench.cli import main
    from maskbench.evaluation.adapters import load_checkpoint
    from maskbench.sampledata import make_sample_dataset

    for name in ("BIWI", "300W_LP"):
        make_sample_dataset(name, tmp_path / name, n=12, seed=2, progress=False)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"name": "tiny", "train": ["BIWI", "300W_LP"], "pose_weight": 0.5,
                               "image_size": 96, "epochs": 2, "batch_size": 8, "lr": 0.001}))
    runner = CliRunner()
    r = runner.invoke(main, ["train", "--config", str(cfg), "--data-root", str(tmp_path), "--out", str(tmp_path / "run"),
                             "--device", "cpu"])
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "run" / "best.pth")
    assert ckpt["config"]["name"] == "tiny" and len(ckpt["training_data"]) == 2
    assert all(len(ref["manifest_sha256"]) == 64 for ref in ckpt["training_data"])
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    r = runner.invoke(main, ["evaluate", str(tmp_path / "run" / "best.pth"), "--suite", "BIWI", "--data-root",
                             str(tmp_path), "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "eval" / "results.json").read_text())["suites"]["BIWI"]
    assert res["n"] > 0 and res["miss_rate"] == 0.0
    # the reported MAE is the mean of the per-face errors of predictions.csv (labels against predictions)
    with open(tmp_path / "eval" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    errors = [abs(geometry.wrap_deg(float(r[f"pred_{a}_deg"]) - float(r[f"true_{a}_deg"])))
              for r in rows for a in ("yaw", "pitch", "roll")]
    assert len(rows) == res["n"] and res["mae_deg"] == pytest.approx(float(np.mean(errors)), abs=1e-6)
    r = runner.invoke(main, ["evaluate", str(tmp_path / "run" / "best.pth"), "--suite", "BIWI", "--protocol", "full",
                             "--data-root", str(tmp_path), "--out", str(tmp_path / "eval_full"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    full = json.loads((tmp_path / "eval_full" / "results.json").read_text())
    assert full["protocol"] == "full" and full["suites"]["BIWI"]["n"] == res["n"]
    r = runner.invoke(main, ["evaluate", "baseline:mean", "--suite", "BIWI", "--protocol", "full",
                             "--data-root", str(tmp_path), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "cannot run --protocol full" in r.output


def test_batched_detection_equals_one_image_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluator's batched detector (chunks of DETECT_BATCH) gives each image its own faces."""
    from maskbench.models import inference
    from maskbench.models.canvas import letterbox

    monkeypatch.setattr(inference, "DETECT_BATCH", 2)  # 3 images: two chunks
    torch.manual_seed(0)
    model = RetinaFacePose().eval()
    with torch.no_grad():  # the pose head starts at the identity for every input: move it off
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((80, 120), (96, 96), (150, 60))]
    for top1 in (True, False):
        batched = inference.detect_letterboxed(model, [letterbox(im, 96) for im in images], 96,
                                             score_threshold=0.0, top1=top1)
        assert len(batched) == len(images)
        for image, faces in zip(images, batched):
            alone = inference.detect(model, image, 96, score_threshold=0.0, top1=top1)
            assert len(faces) == len(alone) > 0
            for a, b in zip(faces, alone):
                np.testing.assert_allclose(a.box_px, b.box_px, atol=1e-3)
                np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-5)
                assert a.score == pytest.approx(b.score, abs=1e-5)
        assert not np.allclose(batched[0][0].rotation, batched[2][0].rotation)


def test_pose_vote_and_mirror() -> None:
    """The vote ignores anchors off the face and averages the ones on it; the mirror negates yaw and roll."""
    from maskbench.models.inference import mean_rotation, mirrored, voted_rotations
    from maskbench.models.rotation6d import matrix_to_sixd

    a = torch.tensor(geometry.euler_deg_to_matrix(20.0, -10.0, 5.0))
    b = torch.tensor(geometry.euler_deg_to_matrix(30.0, -10.0, 5.0))
    far = torch.tensor(geometry.euler_deg_to_matrix(-80.0, 40.0, 0.0))
    six = torch.stack([matrix_to_sixd(a), matrix_to_sixd(b), matrix_to_sixd(far)])[None].float()
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    scores = torch.tensor([[0.9, 0.9, 0.95]])
    r = voted_rotations(six, scores, boxes, torch.tensor([0]))[0].numpy()
    yaw, pitch, roll = geometry.matrix_to_euler_deg(r)
    assert yaw == pytest.approx(25.0, abs=0.3) and pitch == pytest.approx(-10.0, abs=0.3)
    lone = voted_rotations(six, torch.tensor([[0.9, 0.2, 0.95]]), boxes, torch.tensor([0]))[0].numpy()
    np.testing.assert_allclose(lone, a.numpy(), atol=1e-6)  # a weak neighbour (score < half) does not vote
    m = mirrored(a[None])[0].numpy()
    np.testing.assert_allclose(geometry.matrix_to_euler_deg(m), (-20.0, -10.0, -5.0), atol=1e-6)
    np.testing.assert_allclose(mirrored(mirrored(a[None]))[0].numpy(), a.numpy(), atol=1e-12)
    np.testing.assert_allclose(mean_rotation(a[None], a[None])[0].numpy(), a.numpy(), atol=1e-9)
