"""In-plane rotation: exact labels, everything moving together, on renders and real files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from maskbench import geometry
from maskbench.augment.rotation import RotationParams, make_transform, rotate_sample
from maskbench.datasets import open_reader
from maskbench.datasets.biwi import label_matrix
from maskbench.io.atomic import read_image
from maskbench.io.labels import read_labels
from maskbench.io.manifest import verify
from maskbench.pipeline import write_variant
from maskbench.render.head import BIWI_HEAD_CENTER_MM
from maskbench.sampledata import plan, scene_for
from maskbench.types import HeadPose


def eye_line_deg(landmarks: np.ndarray) -> float:
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def samples(root: Path) -> tuple:
    reader = open_reader(root)
    return reader.fmt, list(reader)


@pytest.mark.parametrize("name", ["BIWI", "300W_LP", "AFLW2000"])
@pytest.mark.parametrize("center", ["image", "face"])
def test_rotate_then_back_restores_labels(sample_root: Path, name: str, center: str) -> None:
    fmt, items = samples(sample_root / name)
    for s in items[:4]:
        image = read_image(s.image_path)
        there, img2 = rotate_sample(fmt, s, image, 37.0, center)
        back, _ = rotate_sample(fmt, there, img2, -37.0, center)
        for k, v in s.pose.euler_deg().items():
            assert geometry.wrap_deg(back.pose.euler_deg()[k] - v) == pytest.approx(0.0, abs=1e-6)
        if s.landmarks_px is not None and center == "image":
            np.testing.assert_allclose(back.landmarks_px, s.landmarks_px, atol=1e-9)


@pytest.mark.parametrize("name", ["300W_LP", "AFLW2000", "BIWI"])
def test_compose_and_geodesic(sample_root: Path, name: str) -> None:
    fmt, items = samples(sample_root / name)
    s = items[0]
    image = read_image(s.image_path)
    a, _ = rotate_sample(fmt, s, image, 20.0)
    ab, _ = rotate_sample(fmt, a, image, 15.0)
    direct, _ = rotate_sample(fmt, s, image, 35.0)
    assert ab.pose.geodesic_deg(direct.pose) < 1e-9
    assert direct.pose.geodesic_deg(s.pose) == pytest.approx(35.0, abs=1e-6)


def test_near_frontal_roll_follows_the_eye_line_on_renders(tmp_path: Path) -> None:
    from maskbench.sampledata import make_sample_dataset

    make_sample_dataset("AFLW2000", tmp_path / "A", n=24, seed=11, progress=False)
    fmt, items = samples(tmp_path / "A")
    frontal = [s for s in items if abs(s.pose.yaw_deg) < 25 and abs(s.pose.pitch_deg) < 25]
    assert frontal
    for s in frontal:
        image = read_image(s.image_path)
        for angle in (-40.0, 25.0):
            r, _ = rotate_sample(fmt, s, image, angle)
            # counter-clockwise on screen lowers roll by the angle, and the eye line turns with it
            assert geometry.wrap_deg(r.pose.roll_deg - s.pose.roll_deg + angle) == pytest.approx(0.0, abs=8.0)
            turned = geometry.wrap_deg(eye_line_deg(r.landmarks_px) - eye_line_deg(s.landmarks_px))
            assert turned == pytest.approx(-angle, abs=1e-6)


def test_real_fixture_roll_and_eye_line(real_dir: Path) -> None:
    fmt, items = samples(real_dir / "aflw2000")
    s = next(x for x in items if x.id == "image00782")  # frontal
    image = read_image(s.image_path)
    for angle in (-30.0, 45.0):
        r, rotated = rotate_sample(fmt, s, image, angle)
        assert r.pose.roll_deg == pytest.approx(s.pose.roll_deg - angle, abs=1.5)
        assert geometry.wrap_deg(eye_line_deg(r.landmarks_px) - r.pose.roll_deg) == pytest.approx(0.0, abs=3.0)
        assert rotated.shape == image.shape


def test_rotated_landmarks_match_a_re_render_at_the_new_pose(sample_root: Path) -> None:
    """Orthographic formats: project the head's 3D landmarks at the recomputed pose."""
    fmt, items = samples(sample_root / "AFLW2000")
    by_id = {s.id: s for s in items}
    for planned in plan("AFLW2000", 8):
        if planned.sample_id not in by_id:
            continue
        s = by_id[planned.sample_id]
        scene = scene_for("AFLW2000", planned, seed=0)
        r, _ = rotate_sample(fmt, s, read_image(s.image_path), 30.0)
        affine = geometry.image_rotation_affine(((450 - 1) / 2, (450 - 1) / 2), 30.0)
        k = scene.camera.camera_matrix
        (cx, cy), = geometry.apply_affine(np.array([[k[0, 2], k[1, 2]]]), affine)
        lm_cam = scene.head.landmarks_mm @ r.pose.matrix.T
        reprojected = lm_cam[:, :2] * scene.camera.ortho_scale_px_per_mm + [cx, cy]
        assert np.abs(reprojected - r.landmarks_px).max() < 1e-2


@pytest.mark.parametrize("center,tolerance_px", [("image", 1e-6), ("face", 1.5)])
def test_biwi_rerender_at_new_pose(sample_root: Path, center: str, tolerance_px: float) -> None:
    """Perspective: about the principal point exact; about the face corrected (measured max 1.09 px)."""
    fmt, items = samples(sample_root / "BIWI")
    by_id = {s.id: s for s in items}
    for planned in plan("BIWI", 8):
        s = by_id[planned.sample_id]
        scene = scene_for("BIWI", planned, seed=0)
        rendered = geometry.project_points(scene.head.landmarks_mm @ s.pose.matrix.T + scene.translation_mm,
                                           scene.camera.camera_matrix)
        for angle in (-25.0, 30.0):
            r, _ = rotate_sample(fmt, s, read_image(s.image_path), angle, center)
            c = s.bbox.center_px if center == "face" else (320.0, 240.5)
            moved = geometry.apply_affine(rendered, geometry.image_rotation_affine(c, angle))
            # the stored head centre is BIWI's (the face-template centroid), not the render origin
            t_new = np.asarray(r.head_center_mm) - r.pose.matrix @ BIWI_HEAD_CENTER_MM
            again = geometry.project_points(scene.head.landmarks_mm @ r.pose.matrix.T + t_new,
                                            scene.camera.camera_matrix)
            err = np.abs(again - moved).max()
            assert err < tolerance_px
            if center == "face":
                assert r.extra["perspective_correction_deg"] > 0


def test_rotate_split_end_to_end(sample_root: Path, tmp_path: Path) -> None:
    reader = open_reader(sample_root / "BIWI")
    params = RotationParams(angles_deg=(-20.0, 20.0))
    out = tmp_path / "BIWI_rotated"
    summary = write_variant(reader, out, transform=make_transform(reader.fmt, params), transform_name="rotate",
                          parameters=params.as_dict(), seed=0)
    assert summary.written == 16 and verify(out) == []
    rows = {r["id"]: r for r in read_labels(out)}
    src_rows = {r["id"]: r for r in read_labels(sample_root / "BIWI")}
    back = {s.id: s for s in open_reader(out)}
    src = {s.id: s for s in open_reader(sample_root / "BIWI")}
    for rid, row in rows.items():
        assert row["split"] == src_rows[row["source_id"]]["split"]  # derived split inherits
        assert float(row["rotation_deg"]) in (-20.0, 20.0)
        expected = geometry.rotate_in_plane(src[row["source_id"]].pose, float(row["rotation_deg"]))
        assert back[rid].pose.geodesic_deg(expected) < 1e-6
        assert float(row["yaw_deg"]) == pytest.approx(HeadPose(label_matrix(back[rid])).yaw_deg, abs=1e-6)
        assert back[rid].bbox.center_px == pytest.approx((float(row["x_min"]) / 2 + float(row["x_max"]) / 2,
                                                         float(row["y_min"]) / 2 + float(row["y_max"]) / 2), abs=1e-6)


def test_rotate_a_rotated_split_keeps_the_original_source_id(sample_root: Path, tmp_path: Path) -> None:
    reader = open_reader(sample_root / "AFLW2000")
    p = RotationParams(angles_deg=(10.0,))
    write_variant(reader, tmp_path / "r1", transform=make_transform(reader.fmt, p), transform_name="rotate",
                parameters={}, seed=0)
    r1 = open_reader(tmp_path / "r1")
    write_variant(r1, tmp_path / "r2", transform=make_transform(r1.fmt, p), transform_name="rotate",
                parameters={}, seed=0)
    rows = read_labels(tmp_path / "r2")
    assert all(r["source_id"] == r["id"] for r in rows)
    twice = {s.id: s for s in open_reader(tmp_path / "r2")}
    orig = {s.id: s for s in open_reader(sample_root / "AFLW2000")}
    for k, s in orig.items():
        assert twice[k].pose.geodesic_deg(geometry.rotate_in_plane(s.pose, 20.0)) < 1e-4  # float32 Pose_Para


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="LO <= HI"):
        RotationParams(range_deg=(10.0, -10.0))
    with pytest.raises(ValueError, match="border"):
        RotationParams(border="wrap")
    rng = np.random.default_rng(0)
    draws = RotationParams(range_deg=(-5.0, 5.0), per_image=50).draw_angles(rng)
    assert len(draws) == 50 and all(-5 <= a <= 5 for a in draws)
