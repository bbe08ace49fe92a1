"""The public API: records, RandomMask, RandomInPlaneRotation, HeadPoseDataset, the README example."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import maskbench
from maskbench import BBox, HeadPose, geometry
from maskbench.augment.rotation import RotationParams
from maskbench.augment.rotation import make_transform as rotation_transform
from maskbench.datasets import open_reader
from maskbench.io.atomic import encode_image
from maskbench.io.labels import read_labels
from maskbench.pipeline import write_variant
from maskbench.synthesis.mask import SynthesisParams
from maskbench.synthesis.mask import make_transform as mask_transform
from maskbench.transforms import Compose, RandomInPlaneRotation, RandomMask

REPO = Path(__file__).resolve().parents[1]


def _first(folder: Path, n: int, tmp: Path) -> Path:
    """A tree of the first n pairs of a flat AFLW2000 folder."""
    tree = tmp / "src"
    tree.mkdir()
    for p in sorted(folder.glob("*.jpg"))[:n]:
        for suffix in (".jpg", ".mat"):
            (tree / f"{p.stem}{suffix}").write_bytes(p.with_suffix(suffix).read_bytes())
    return tree


def test_rotation_labels_equal_maskbench_rotate(sample_root: Path, tmp_path: Path) -> None:
    """Same seed and id: the same angle as `maskbench rotate`, the same labels (to the float32 of the
    written .mat) and the same landmarks (the sample data's AFLW2000 faces, raw layout)."""
    src = _first(sample_root / "AFLW2000", 8, tmp_path)
    write_variant(open_reader(src), tmp_path / "rot", transform=rotation_transform(open_reader(src).fmt, RotationParams()),
                transform_name="rotate", parameters={}, seed=5, progress=False)
    written = {s.id: s for s in open_reader(tmp_path / "rot")}
    angles = {row["id"]: float(row["rotation_deg"]) for row in read_labels(tmp_path / "rot")}
    rotate = RandomInPlaneRotation(seed=5)
    for rec in maskbench.open_dataset(src):
        out = rotate(rec)
        assert out["params"][-1]["angle_deg"] == pytest.approx(angles[rec["id"]], abs=1e-9)
        ref = written[rec["id"]]
        assert geometry.geodesic_deg(out["pose"].matrix, ref.pose.matrix) < 1e-4
        np.testing.assert_allclose(out["landmarks"], ref.landmarks_px, atol=1e-3)
        assert out["box"].center_px == pytest.approx(ref.bbox.center_px, abs=1e-3)


def test_mask_is_the_synthesize_mask_and_keeps_the_pose(sample_root: Path, tmp_path: Path) -> None:
    """Same seed and id: the bytes `maskbench synthesize` writes (a face the detector misses: unmasked in
    both); the pose is untouched (the sample data's AFLW2000 faces, raw layout)."""
    src = _first(sample_root / "AFLW2000", 8, tmp_path)
    write_variant(open_reader(src), tmp_path / "masked", transform=mask_transform(SynthesisParams()),
                transform_name="synthesize", parameters={}, seed=3, progress=False)
    mask = RandomMask(seed=3)
    rows = {r["id"]: r for r in read_labels(tmp_path / "masked")}
    applied = 0
    for rec in maskbench.open_dataset(src):
        out = mask(rec)
        assert out["params"][-1]["applied"] == (rows[rec["id"]]["mask_type"] != "none")
        assert out["pose"] is rec["pose"]
        assert encode_image(out["image"], ".jpg") == (tmp_path / "masked" / f"{rec['id']}.jpg").read_bytes()
        occ = cv2.imread(str(tmp_path / "masked" / "occlusion" / f"{rec['id']}.png"), cv2.IMREAD_GRAYSCALE) > 0
        if out["params"][-1]["applied"]:
            assert np.array_equal(out["occlusion"], occ) and occ.any()
        else:  # a missed face: nothing drawn, an empty map on disk
            assert not occ.any() and not np.asarray(out.get("occlusion", False)).any()
        assert "occlusion" not in rec  # the input record is not modified
        applied += out["params"][-1]["applied"]
    assert applied >= 7  # a rendered profile may be missed; the rest are masked


def test_a_plain_record_rotates_exactly_in_either_colour_order() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    pose = {"yaw_deg": 20.0, "pitch_deg": -10.0, "roll_deg": 5.0}
    lm = np.column_stack([rng.uniform(50, 110, 68), rng.uniform(30, 90, 68)])
    bgr = RandomInPlaneRotation().rotate({"image": image, "pose": pose, "landmarks": lm}, 30.0)
    expected = geometry.camera_roll_matrix(30.0) @ HeadPose.from_euler_deg(**pose).matrix
    assert geometry.geodesic_deg(bgr["pose"].matrix, expected) < 1e-9
    affine = geometry.image_rotation_affine(((160 - 1) / 2, (120 - 1) / 2), 30.0)
    np.testing.assert_allclose(bgr["landmarks"], geometry.apply_affine(lm, affine), atol=1e-9)
    assert bgr["box"] == BBox.from_points(bgr["landmarks"])
    rgb = RandomInPlaneRotation().rotate({"image": image[..., ::-1].copy(), "color": "RGB", "pose": pose,
                                          "landmarks": lm}, 30.0)
    assert np.array_equal(rgb["image"], bgr["image"][..., ::-1]) and rgb["color"] == "RGB"
    # a given box (no landmarks) moves as its corners do
    boxed = RandomInPlaneRotation().rotate({"image": image, "pose": pose, "box": (60, 40, 100, 80)}, 90.0)
    assert boxed["box"].width_px == pytest.approx(40.0) and boxed["box"].center_px == pytest.approx(
        tuple(geometry.apply_affine(np.array([[80.0, 60.0]]),
                                    geometry.image_rotation_affine((79.5, 59.5), 90.0))[0]))


@pytest.mark.parametrize("change, field", [
    ({"image": np.zeros((10, 10, 3), np.float32)}, "image"),
    ({"image": np.zeros((10, 10), np.uint8)}, "image"),
    ({"landmarks": np.zeros((67, 2))}, "landmarks"),
    ({"pose": {"yaw_deg": float("nan"), "pitch_deg": 0.0, "roll_deg": 0.0}}, "pose"),
    ({"pose": (1.0, 2.0, 3.0)}, "pose"),
    ({"color": "BRG"}, "color"),
    ({"box": (10, 10, 5, 20)}, "box"),
    ({"camera": np.eye(2)}, "camera"),
])
def test_bad_records_name_the_field(change: dict, field: str) -> None:  # type: ignore[type-arg]
    record = {"id": "x", "image": np.zeros((40, 40, 3), np.uint8), "pose": {"yaw_deg": 0.0, "pitch_deg": 0.0,
                                                                           "roll_deg": 0.0}}
    record.update(change)
    for transform in (RandomMask(landmarks="pose"), RandomInPlaneRotation()):
        with pytest.raises(ValueError, match=f"'{field}'"):
            transform(record)


def test_randomness_comes_from_the_generator_or_the_id() -> None:
    record = {"image": np.zeros((40, 40, 3), np.uint8), "pose": {"yaw_deg": 0.0, "pitch_deg": 0.0, "roll_deg": 0.0}}
    with pytest.raises(ValueError, match="rng"):
        RandomInPlaneRotation()(record)
    a = RandomInPlaneRotation()(record, rng=np.random.default_rng(4))["params"][-1]["angle_deg"]
    b = RandomInPlaneRotation()(record, rng=np.random.default_rng(4))["params"][-1]["angle_deg"]
    c = RandomInPlaneRotation()(dict(record, id="k"))["params"][-1]["angle_deg"]
    d = RandomInPlaneRotation(seed=1)(dict(record, id="k"))["params"][-1]["angle_deg"]
    assert a == b and c != d and -45 <= a <= 45
    skipped = RandomInPlaneRotation(p=0.0)(record, rng=np.random.default_rng(0))
    assert skipped["params"] == [{"name": "RandomInPlaneRotation", "applied": False}]


def test_dataset_tensors_do_not_depend_on_loader_workers(sample_root: Path) -> None:
    torch = pytest.importorskip("torch")
    from maskbench.torch_dataset import FaceCrop, HeadPoseDataset

    ds = HeadPoseDataset(sample_root / "AFLW2000", transform=Compose([RandomMask(p=0.5),
                                                                     RandomInPlaneRotation()]),
                         crop=FaceCrop(64), seed=1)
    forward = [ds[i] for i in range(4)]
    backward = [ds[i] for i in reversed(range(4))][::-1]
    two = list(torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(4)), batch_size=None, num_workers=2))
    for a, b, c in zip(forward, backward, two):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["image"], c["image"])
        assert torch.equal(a["pose_deg"], c["pose_deg"]) and a["id"] == c["id"]
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["pose_deg"], forward[0]["pose_deg"]) or not torch.equal(ds[0]["image"],
                                                                                         forward[0]["image"])


def test_public_names() -> None:
    assert set(maskbench.__all__) >= {"open_dataset", "RandomMask", "RandomInPlaneRotation", "Compose", "HeadPose"}
    assert maskbench.RandomMask is RandomMask


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "Use it in your own trainer" example, exactly as printed, where `make demo` leaves
    the user: a folder with data/AFLW2000 (16 rendered faces, as the demo makes them)."""
    from maskbench.sampledata import make_sample_dataset

    make_sample_dataset("AFLW2000", tmp_path / "data" / "AFLW2000", n=16, seed=0, progress=False)
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- example:trainer -->\n```python\n(.*?)```", text, re.S)
    assert block, "README example block not found"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}  # type: ignore[type-arg]
    exec(compile(block.group(1), "README example", "exec"), scope)  # noqa: S102
    batch = scope["batch"]
    assert tuple(batch["image"].shape) == (8, 3, 224, 224) and tuple(batch["pose_deg"].shape) == (8, 3)
    assert batch["image"].dtype.is_floating_point and float(batch["image"].max()) <= 1.0


def test_the_transform_and_the_cli_share_one_rotation_parameter_type() -> None:
    """RandomInPlaneRotation holds a RotationParams (what `maskbench rotate` uses): its choices draw
    one angle per record as before, the old keyword still works with a warning, and a sweep
    (angles_deg of the CLI) and choices cannot be mixed."""
    from maskbench.augment.rotation import RotationParams

    t = RandomInPlaneRotation(choices_deg=(10.0, 20.0, 30.0))
    assert isinstance(t.params, RotationParams) and t.params.choices_deg == (10.0, 20.0, 30.0)
    draws = [t.draw_angle(np.random.default_rng(k)) for k in range(20)]
    assert draws == [(10.0, 20.0, 30.0)[int(np.random.default_rng(k).integers(3))] for k in range(20)]
    ranged = RandomInPlaneRotation(range_deg=(-5.0, 5.0))
    assert ranged.draw_angle(np.random.default_rng(3)) == float(np.random.default_rng(3).uniform(-5.0, 5.0))
    with pytest.warns(DeprecationWarning, match="choices_deg"):
        old = RandomInPlaneRotation(angles_deg=(5.0,))
    assert old.params.choices_deg == (5.0,)
    with pytest.raises(ValueError, match="not both"):
        RotationParams(angles_deg=(1.0,), choices_deg=(2.0,))
    assert RotationParams(angles_deg=(1.0, 2.0)).draw_angles(np.random.default_rng(0)) == [1.0, 2.0]  # a sweep
