"""The pose convention: round trips, native encodings, in-plane rotation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maskbench import geometry
from maskbench.types import HeadPose


def random_rotations(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for q in rng.normal(size=(n, 4)):
        w, x, y, z = q / np.linalg.norm(q)
        out.append(np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]))
    return out


def test_matrix_euler_matrix_round_trip_uniform_rotations() -> None:
    for r in random_rotations(2000):
        yaw, pitch, roll = geometry.matrix_to_euler_deg(r)
        assert -90 <= yaw <= 90
        np.testing.assert_allclose(geometry.euler_deg_to_matrix(yaw, pitch, roll), r, atol=1e-9)


def test_euler_round_trip_away_from_gimbal_lock() -> None:
    rng = np.random.default_rng(1)
    for yaw, pitch, roll in zip(rng.uniform(-89, 89, 2000), rng.uniform(-179, 179, 2000), rng.uniform(-179, 179, 2000)):
        got = geometry.matrix_to_euler_deg(geometry.euler_deg_to_matrix(yaw, pitch, roll))
        assert got == pytest.approx((yaw, pitch, roll), abs=1e-9)


@pytest.mark.parametrize("yaw", [90.0, -90.0, 90 - 1e-7, -90 + 1e-7, 89.9999, 90 - 1e-12])
def test_near_and_at_gimbal_lock_the_matrix_survives(yaw: float) -> None:
    for pitch, roll in [(10.0, 20.0), (-35.0, 5.0), (170.0, -120.0)]:
        r = geometry.euler_deg_to_matrix(yaw, pitch, roll)
        back = geometry.euler_deg_to_matrix(*geometry.matrix_to_euler_deg(r))
        np.testing.assert_allclose(back, r, atol=1e-9)
        assert geometry.matrix_to_euler_deg(r)[0] == pytest.approx(yaw, abs=1e-6)


def test_3ddfa_encoding_is_the_same_three_numbers() -> None:
    rng = np.random.default_rng(2)
    for pitch, yaw, roll in rng.uniform(-1.5, 1.5, size=(500, 3)):
        r = geometry.matrix_from_3ddfa(pitch, yaw, roll)
        np.testing.assert_allclose(r, geometry.euler_deg_to_matrix(*np.degrees([yaw, pitch, roll])), atol=1e-12)
        assert geometry.matrix_to_3ddfa_rad(r) == pytest.approx((pitch, yaw, roll), abs=1e-12)


def test_3ddfa_release_matrix_is_the_transposed_form() -> None:
    # RotationMatrix.m: R_y = [cos 0 -sin; 0 1 0; sin 0 cos], i.e. a positive yaw sends +z to -x
    r3 = geometry.matrix_3ddfa_from_pose_para(0.0, math.radians(30), 0.0)
    assert r3[0, 2] == pytest.approx(-math.sin(math.radians(30)))


def test_hopenet_biwi_formulas_equal_the_convention() -> None:
    for r in random_rotations(500, seed=3):
        assert geometry.hopenet_biwi_euler_deg(r) == pytest.approx(geometry.matrix_to_euler_deg(r), abs=1e-9)


def test_biwi_calibration_round_trip() -> None:
    cal = geometry.euler_deg_to_matrix(0.5, -0.9, 0.3)
    for r in random_rotations(50, seed=4):
        back = geometry.matrix_to_biwi(geometry.matrix_from_biwi(r, cal), cal)
        np.testing.assert_allclose(back, r, atol=1e-12)


def test_signs_in_words() -> None:
    nose_head = np.array([0.0, 0.0, -1.0])  # the face looks along -z of the head frame
    top_head = np.array([0.0, -1.0, 0.0])
    yawed = HeadPose.from_euler_deg(yaw_deg=30, pitch_deg=0, roll_deg=0).matrix @ nose_head
    assert yawed[0] < 0  # positive yaw: nose towards image left
    pitched = HeadPose.from_euler_deg(yaw_deg=0, pitch_deg=30, roll_deg=0).matrix @ nose_head
    assert pitched[1] < 0  # positive pitch: nose towards the top of the image (looks up)
    rolled = HeadPose.from_euler_deg(yaw_deg=0, pitch_deg=0, roll_deg=30).matrix @ top_head
    assert rolled[0] > 0  # positive roll: top of the head towards image right


def test_in_plane_rotation_inverse_composition_and_geodesic() -> None:
    rng = np.random.default_rng(5)
    for r in random_rotations(200, seed=6):
        pose = HeadPose(r)
        a, b = rng.uniform(-180, 180, 2)
        back = geometry.rotate_in_plane(geometry.rotate_in_plane(pose, a), -a)
        assert back.geodesic_deg(pose) < 1e-9
        both = geometry.rotate_in_plane(geometry.rotate_in_plane(pose, a), b)
        assert both.geodesic_deg(geometry.rotate_in_plane(pose, a + b)) < 1e-9
        assert geometry.rotate_in_plane(pose, a).geodesic_deg(pose) == pytest.approx(abs(a), abs=1e-7)


def test_in_plane_rotation_of_frontal_face_changes_only_roll() -> None:
    pose = HeadPose.from_euler_deg(yaw_deg=0, pitch_deg=0, roll_deg=0)
    rotated = geometry.rotate_in_plane(pose, 25.0)  # counter-clockwise on screen
    assert rotated.roll_deg == pytest.approx(-25.0, abs=1e-9)
    assert rotated.yaw_deg == pytest.approx(0.0, abs=1e-9) and rotated.pitch_deg == pytest.approx(0.0, abs=1e-9)


def test_in_plane_rotation_of_turned_face_moves_yaw_and_pitch() -> None:
    pose = HeadPose.from_euler_deg(yaw_deg=50, pitch_deg=0, roll_deg=0)
    rotated = geometry.rotate_in_plane(pose, 30.0)
    assert abs(rotated.pitch_deg) > 5 and abs(rotated.yaw_deg - 50) > 2


def test_image_affine_matches_camera_roll() -> None:
    k = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    pts = np.random.default_rng(7).uniform([-200, -150, 600], [200, 150, 1200], size=(40, 3))
    angle = 33.0
    a = geometry.image_rotation_affine((320.0, 240.0), angle)
    moved = geometry.apply_affine(geometry.project_points(pts, k), a)
    rolled = geometry.project_points(pts @ geometry.camera_roll_matrix(angle).T, k)
    np.testing.assert_allclose(moved, rolled, atol=1e-9)


def test_geodesic_small_and_large_angles() -> None:
    r = np.eye(3)
    assert geometry.geodesic_deg(r, geometry.rot_z(math.radians(1e-6))) == pytest.approx(1e-6, rel=1e-6)
    assert geometry.geodesic_deg(r, geometry.rot_x(math.radians(179.0))) == pytest.approx(179.0, abs=1e-6)


def test_wrap_deg() -> None:
    assert geometry.wrap_deg(179.0 - (-179.0)) == pytest.approx(-2.0)
    assert geometry.wrap_deg(-972.3) == pytest.approx(107.7)


def test_headpose_rejects_non_rotations_and_nan() -> None:
    with pytest.raises(ValueError):
        HeadPose(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError):
        HeadPose.from_euler_deg(yaw_deg=float("nan"), pitch_deg=0, roll_deg=0)
    assert not HeadPose(np.eye(3)).matrix.flags.writeable


def test_box_iou_numpy_and_torch_agree_and_are_right() -> None:
    """One IoU for numpy (geometry.box_iou) and one for torch (box_utils.iou_broadcast): the same numbers,
    and the right ones on boxes worked out by hand."""
    import torch

    from maskbench.geometry import box_iou
    from maskbench.models.box_utils import iou, iou_broadcast

    a = (0.0, 0.0, 10.0, 10.0)
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 5], [2, 2, 2, 8]], float)
    expected = [1.0, 50 / 150, 0.0, 25 / 100, 0.0]
    assert box_iou(a, boxes) == pytest.approx(expected)
    t = torch.tensor(boxes)
    assert iou_broadcast(torch.tensor(a), t).numpy() == pytest.approx(expected)
    assert iou(t, t).numpy()[0] == pytest.approx(box_iou(boxes[0], boxes))


@pytest.mark.parametrize("ypr", [(20.0, -10.0, 5.0), (-75.0, 30.0, -40.0), (0.0, 0.0, 0.0)])
def test_mirrored_rotation_negates_yaw_and_roll_and_keeps_pitch(ypr: tuple[float, float, float]) -> None:
    """One mirror for the whole house: the renderer's flipped copies, the training flip and the
    model's mirrored crop all use geometry.mirrored_rotation / MIRROR_X."""
    r = geometry.euler_deg_to_matrix(*ypr)
    m = geometry.mirrored_rotation(r)
    np.testing.assert_allclose(geometry.matrix_to_euler_deg(m), (-ypr[0], ypr[1], -ypr[2]), atol=1e-9)
    np.testing.assert_allclose(geometry.mirrored_rotation(m), r, atol=1e-12)
    stack = geometry.mirrored_rotation(np.stack([r, r.T]))
    np.testing.assert_allclose(stack[1], geometry.mirrored_rotation(r.T), atol=1e-12)


def test_polygon_inside_and_distances_are_right_by_hand() -> None:
    """One home for 2D outline geometry: the renderer's lips, eyes and brows and the mask fit's
    face outline (straps within reach of it) use geometry.inside_polygon / polyline_distance."""
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    notch = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [5.0, 4.0], [0.0, 10.0]])  # concave: a V from the top
    pts = np.array([[5.0, 5.0], [13.0, 5.0], [5.0, 8.0], [13.0, 14.0], [-2.0, 5.0]])
    assert geometry.inside_polygon(pts, square).tolist() == [True, False, True, False, False]
    assert geometry.inside_polygon(pts, notch).tolist() == [False, False, False, False, False]
    assert geometry.inside_polygon(np.array([[5.0, 2.0]]), notch).tolist() == [True]
    open_line = square[:3]  # (0,0) -> (10,0) -> (10,10): the left side is not part of it
    assert geometry.polyline_distance(pts, open_line) == pytest.approx([5.0, 3.0, 5.0, 5.0, math.hypot(2.0, 5.0)])
    assert geometry.polyline_distance(pts, np.vstack([square, square[:1]])) == pytest.approx([5.0, 3.0, 2.0, 5.0, 2.0])
    assert geometry.distance_outside(pts, square) == pytest.approx([0.0, 3.0, 0.0, 5.0, 2.0])
    rng = np.random.default_rng(0)  # the all-at-once convex version agrees with the edge loops
    ring = np.column_stack([np.cos(np.linspace(0, 6, 17)), np.sin(np.linspace(0, 6, 17))]) * 80 + 100
    many = rng.uniform(0, 200, (300, 2))
    looped = np.where(geometry.inside_polygon(many, ring), 0.0, geometry.polyline_distance(many, np.vstack([ring, ring[:1]])))
    assert np.allclose(geometry.distance_outside(many, ring), looped, atol=1e-9)
