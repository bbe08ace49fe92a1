"""Readers, units and signs proven on real files. The whole module is real-file evidence: without the real
fixture folder (``$MASKBENCH_FIXTURES``, else ../shared/fixtures/real) it skips as one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from maskbench import geometry
from maskbench.datasets import open_reader
from maskbench.datasets.registry import get_format
from tests.realfiles import require_fixtures
from tests.roundtrip import assert_write_read_identical

require_fixtures()

# (pitch, yaw, roll) in degrees, from the fixture README
AFLW_EXPECTED = {
    "image00782": (-0.3, -1.3, -0.1),
    "image00108": (-4.6, 82.3, -2.8),
    "image00473": (3.9, -80.6, 8.2),
    "image01621": (37.0, -3.8, 6.2),
    "image00814": (-33.4, 3.6, -3.7),
    "image02214": (4.1, -2.6, -80.0),
}


def _aflw(real_dir: Path) -> dict:
    return {s.id: s for s in open_reader(real_dir / "aflw2000")}


def test_aflw2000_angles_are_degrees_with_the_literature_values(real_dir: Path) -> None:
    samples = _aflw(real_dir)
    assert len(samples) == 8
    for name, (pitch, yaw, roll) in AFLW_EXPECTED.items():
        pose = samples[name].pose
        assert (pose.pitch_deg, pose.yaw_deg, pose.roll_deg) == pytest.approx((pitch, yaw, roll), abs=0.06)


def test_yaw_sign_nose_tip_against_face_centre(real_dir: Path) -> None:
    samples = _aflw(real_dir)
    for name in ("image00108", "image00473"):
        s = samples[name]
        offset = s.landmarks_px[30, 0] - s.landmarks_px[:, 0].mean()
        # positive yaw: the nose tip sits towards image LEFT of the face centre
        assert np.sign(offset) == -np.sign(s.pose.yaw_deg)
        assert abs(offset) > 30


def test_pitch_sign_nose_tip_against_face_centre(real_dir: Path) -> None:
    samples = _aflw(real_dir)
    for name in ("image01621", "image00814"):
        s = samples[name]
        offset = s.landmarks_px[30, 1] - s.landmarks_px[:, 1].mean()
        assert np.sign(offset) == -np.sign(s.pose.pitch_deg)  # looking up: nose moves up (v decreases)


def test_roll_equals_eye_line_angle(real_dir: Path) -> None:
    samples = _aflw(real_dir)
    for name in ("image02214", "image00782", "image00814", "image01621", "image00617"):
        s = samples[name]
        left, right = s.landmarks_px[36:42].mean(axis=0), s.landmarks_px[42:48].mean(axis=0)
        eye_line = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
        assert geometry.wrap_deg(eye_line - s.pose.roll_deg) == pytest.approx(0.0, abs=3.0)


def test_protocol_filter_is_explicit_and_reported(real_dir: Path) -> None:
    reader = open_reader(real_dir / "aflw2000", max_abs_angle_deg=99.0)
    kept = [s.id for s in reader]
    assert len(kept) == 6
    assert sorted(sum(reader.filtered.values(), [])) == ["image00617", "image03123"]
    assert len(list(open_reader(real_dir / "aflw2000"))) == 8  # no filter unless asked


def test_unwrapped_angles_still_give_a_rotation(real_dir: Path) -> None:
    s = _aflw(real_dir)["image03123"]
    raw = np.radians([-713.7, -351.2, -972.3])  # the README's values, rounded to 0.1 deg
    assert geometry.geodesic_deg(s.pose.matrix, geometry.matrix_from_3ddfa(*raw)) < 0.2
    assert all(-180 <= v < 180 for v in s.pose.euler_deg().values())
    left, right = s.landmarks_px[36:42].mean(axis=0), s.landmarks_px[42:48].mean(axis=0)
    eye_line = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    assert geometry.wrap_deg(eye_line - s.pose.roll_deg) == pytest.approx(0.0, abs=3.0)


def test_300w_lp_reader(real_dir: Path) -> None:
    (s,) = list(open_reader(real_dir / "300w_lp"))
    assert s.id == "IBUG/IBUG_image_008_1_0"
    assert (s.pose.pitch_deg, s.pose.yaw_deg, s.pose.roll_deg) == pytest.approx((-7.58, -44.01, 3.21), abs=0.01)
    assert s.landmarks_px.shape == (68, 2)
    # negative yaw: the face turns towards image right, so the nose tip is right of centre
    assert s.landmarks_px[30, 0] > s.landmarks_px[:, 0].mean()


def test_biwi_reader_matches_calibrated_biwi_plus(real_dir: Path) -> None:
    (s,) = list(open_reader(real_dir / "biwi" / "hpdb"))
    plus = np.load(real_dir / "biwi" / "headposeplus" / "Biwi_plus_subset.npz")
    assert plus["images"][0] == "01/frame_00003_rgb.png"
    yaw, pitch, roll = plus["ypr"][0]
    assert (s.pose.yaw_deg, s.pose.pitch_deg, s.pose.roll_deg) == pytest.approx((yaw, pitch, roll), abs=1e-3)
    # the face box is centred on the projected head centre: compare to the hand-checked Biwi+ box
    x, y, w, h = plus["bbox"][0]
    cx, cy = s.bbox.center_px
    assert abs(cx - (x + w / 2)) < 6 and abs(cy - (y + h / 2)) < 6
    assert s.bbox.width_px == pytest.approx(w, rel=0.05)


def test_biwi_depth_frame_labels_match_non_calibrated_biwi_plus(real_dir: Path) -> None:
    (s,) = list(open_reader(real_dir / "biwi"))  # the folder above hpdb/ works too
    raw = geometry.matrix_to_biwi(s.pose.matrix, s.native["calibration"].rotation)
    plus = np.load(real_dir / "biwi" / "headposeplus" / "Biwi_plus_non_cal_subset.npz")
    assert geometry.hopenet_biwi_euler_deg(raw) == pytest.approx(tuple(plus["ypr"][0]), abs=1e-3)


@pytest.mark.parametrize("sub", ["aflw2000", "300w_lp", "biwi/hpdb"])
def test_real_files_write_and_read_back_identically(real_dir: Path, tmp_path: Path, sub: str) -> None:
    assert_write_read_identical(real_dir / sub, tmp_path)


def test_written_mat_keeps_every_native_key_for_third_party_loaders(real_dir: Path, tmp_path: Path) -> None:
    fmt = get_format("AFLW2000")
    (s,) = [x for x in open_reader(real_dir / "aflw2000") if x.id == "image00108"]
    fmt.write(tmp_path, s, None)
    before = scipy.io.loadmat(real_dir / "aflw2000" / "image00108.mat")
    after = scipy.io.loadmat(tmp_path / "image00108.mat")
    for key in ("Pose_Para", "pt2d", "pt3d_68", "roi", "Shape_Para", "Exp_Para", "Tex_Para", "Illum_Para", "Color_Para"):
        np.testing.assert_array_equal(after[key], before[key])
        assert after[key].dtype == before[key].dtype
