"""The one pose convention of maskbench, and the math that converts into and out of it.

Convention:
    Camera frame (OpenCV): x points to image right, y points to image down, z points forward,
    away from the camera, into the scene. Pixel coordinates (u, v) grow the same way as x and y.

    Head frame: when the subject looks straight into the camera with the head upright, the head
    axes coincide with the camera axes: x towards the subject's left ear (image right), y towards
    the chin (image down), z from the face towards the back of the head. The face looks along -z.

    A pose is the rotation matrix ``R`` (3x3, float64) with ``p_camera = R @ p_head + t``.

    Euler angles, in degrees, are defined by::

        R = Rx(-pitch_deg) @ Ry(yaw_deg) @ Rz(roll_deg)

    where Rx, Ry, Rz are the ordinary right-handed rotations about the *camera* axes
    (``Rz(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]]``). Read right to left, the head
    is first rolled about the camera's optical axis, then yawed about the camera's vertical axis,
    then pitched about the camera's horizontal axis. Ranges: yaw in [-90, 90], pitch and roll in
    (-180, 180]. At |yaw| = 90 (gimbal lock) roll is set to 0 and pitch carries the remainder.

    In words, as seen in the image:
      * positive yaw: the subject turns to their right; the nose moves towards image LEFT;
      * positive pitch: the subject looks UP; the nose moves towards the top of the image;
      * positive roll: the top of the head tilts towards image RIGHT, i.e. the head turns clockwise
        on screen; the line from the image-left eye to the image-right eye then points downwards
        and its angle ``atan2(dv, du)`` is approximately +roll.

    These are exactly the numbers stored in AFLW2000-3D / 300W_LP ``Pose_Para`` (after radians to
    degrees), and exactly what the Hopenet / FSA-Net BIWI conversion computes from a BIWI pose
    matrix, so yaw/pitch/roll here mean what they mean in the head-pose literature. The signs are
    checked against landmarks of the real fixture files in ``tests/test_real_fixtures.py``.

Native encodings converted here:
    * 3DDFA (AFLW2000-3D, 300W_LP): ``Pose_Para[:3] = [pitch, yaw, roll]`` in radians. The release
      code builds ``R3 = Rx'(pitch) Ry'(yaw) Rz'(roll)`` with transposed ("passive") elementary
      matrices in the 3DMM frame (x right, y up, z towards the viewer) and projects
      orthographically with a vertical flip. With ``F = diag(1, -1, -1)``, ``R = F R3 F``, which
      gives the decomposition above with the same three numbers.
    * BIWI: ``frame_XXXXX_pose.txt`` holds a rotation in the depth camera frame, whose axes are
      OpenCV-like (the head centre projects onto the face with x right, y down). ``rgb.cal`` holds
      ``(R_cal, T_cal)`` with ``p_rgb = R_cal @ p_depth + T_cal``. maskbench stores the pose in the
      RGB camera frame: ``R = R_cal @ R_depth`` (the "calibrated" Biwi+ labels). The Hopenet-style
      Euler formulas applied to a BIWI matrix are identical to :func:`matrix_to_euler_deg`.

In-plane rotation:
    Rotating an image by ``angle_deg`` counter-clockwise on screen about the principal point (the
    sense of ``cv2.getRotationMatrix2D`` with a positive angle) is the camera rolling about its
    optical axis: ``R' = Rz(-angle) @ R`` and ``t' = Rz(-angle) @ t``. Because the outermost Euler
    factor is Rx, not Rz, this changes yaw and pitch too unless the head is frontal; for a frontal
    head roll changes by exactly ``-angle_deg``. Always compose matrices; never add to roll by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np


class _Box(Protocol):
    """What the box functions read (:class:`maskbench.types.BBox` has it); geometry imports nothing of
    maskbench, so every other module may import it."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def width_px(self) -> float: ...

    @property
    def height_px(self) -> float: ...


class _Pose(Protocol):
    """What :func:`rotate_in_plane` reads and builds (:class:`maskbench.types.HeadPose`)."""

    matrix: np.ndarray

    def __init__(self, matrix: np.ndarray) -> None: ...


PoseT = TypeVar("PoseT", bound=_Pose)

#: Conjugation between the 3DMM frame (x right, y up, z towards viewer) and the OpenCV frame.
FLIP_YZ = np.diag([1.0, -1.0, -1.0])
#: A horizontal image flip negates x: a head rotation R is seen in the mirrored image as
#: ``MIRROR_X @ R @ MIRROR_X`` (:func:`mirrored_rotation`): yaw and roll change sign, pitch stays.
MIRROR_X = np.diag([-1.0, 1.0, 1.0])

#: Below this value of cos(yaw), the decomposition is treated as gimbal-locked.
_GIMBAL_EPS = 1e-12


def rot_x(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about x by ``angle_rad`` (3x3)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about y by ``angle_rad`` (3x3)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about z by ``angle_rad`` (3x3)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def euler_deg_to_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation matrix of the maskbench convention: ``Rx(-pitch) @ Ry(yaw) @ Rz(roll)``."""
    return rot_x(-math.radians(pitch_deg)) @ rot_y(math.radians(yaw_deg)) @ rot_z(math.radians(roll_deg))


def matrix_to_euler_deg(matrix: np.ndarray) -> tuple[float, float, float]:
    """Decompose a rotation matrix into ``(yaw_deg, pitch_deg, roll_deg)`` of the convention.

    The returned tuple is ordered yaw, pitch, roll; callers crossing a module border should use
    :class:`maskbench.types.HeadPose` and its named properties instead of the tuple.
    """
    r = np.asarray(matrix, dtype=np.float64)
    cos_yaw = math.hypot(r[0, 0], r[0, 1])
    yaw = math.atan2(r[0, 2], cos_yaw)
    if cos_yaw > _GIMBAL_EPS:
        roll = math.atan2(-r[0, 1], r[0, 0])
        neg_pitch = math.atan2(-r[1, 2], r[2, 2])
    else:
        # R = Rx(a) Ry(+-90) Rz(c) depends only on a +- c: put everything into pitch.
        roll = 0.0
        neg_pitch = math.atan2(r[2, 1], r[1, 1])
    return math.degrees(yaw), -math.degrees(neg_pitch), math.degrees(roll)


def euler_triples_deg(matrix: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Both Euler triples ``(yaw, pitch, roll)`` (degrees) of a rotation: the decomposition of
    :func:`matrix_to_euler_deg` (yaw in [-90, 90]) and its twin ``(180 - yaw, pitch + 180, roll + 180)``
    (wrapped to [-180, 180)), which builds the same matrix: ``Rx(a) Ry(b) Rz(c) = Rx(a + 180) Ry(180 - b)
    Rz(c + 180)``. A label such as yaw 95 (AFLW2000 keeps |angles| up to 99) is the twin's kind."""
    yaw, pitch, roll = matrix_to_euler_deg(matrix)
    return (yaw, pitch, roll), (wrap_deg(180.0 - yaw), wrap_deg(pitch + 180.0), wrap_deg(roll + 180.0))


def closest_euler_deg(matrix: np.ndarray, reference_deg: tuple[float, float, float]) -> tuple[float, float, float]:
    """Of the two Euler triples of ``matrix`` (:func:`euler_triples_deg`), the one whose wrapped
    differences to ``reference_deg`` (yaw, pitch, roll; e.g. a dataset's label, possibly unwrapped)
    sum to less: how a predicted rotation is compared axis by axis with a label."""
    def distance(t: tuple[float, float, float]) -> float:
        return sum(abs(wrap_deg(a - b)) for a, b in zip(t, reference_deg))

    first, twin = euler_triples_deg(matrix)
    return twin if distance(twin) < distance(first) else first


def is_rotation_matrix(matrix: np.ndarray, tol: float = 1e-6) -> bool:
    """True when ``matrix`` is 3x3, finite, orthonormal to ``tol`` and has determinant +1."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (3, 3):
        return False
    (a, b, c), (d, e, f), (g, h, i) = m.tolist()  # plain floats: ~10x faster than numpy on 3x3
    if not all(math.isfinite(v) for v in (a, b, c, d, e, f, g, h, i)):
        return False
    gram = (a * a + d * d + g * g - 1.0, b * b + e * e + h * h - 1.0, c * c + f * f + i * i - 1.0,
            a * b + d * e + g * h, a * c + d * f + g * i, b * c + e * f + h * i)  # M^T M - I
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return max(abs(v) for v in gram) <= tol and abs(det - 1.0) < tol


def orthonormalize(matrix: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (SVD projection); used on labels stored with ~6 digits."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def geodesic_deg(matrix_a: np.ndarray, matrix_b: np.ndarray) -> float:
    """Angle of the rotation taking ``matrix_a`` to ``matrix_b``, in degrees, in [0, 180].

    Uses ``2 asin(||A - B||_F / sqrt(8))``, which stays accurate for tiny angles where the
    trace formula loses half its digits.
    """
    diff = np.linalg.norm(np.asarray(matrix_a, dtype=np.float64) - np.asarray(matrix_b, dtype=np.float64))
    return math.degrees(2.0 * math.asin(min(1.0, diff / math.sqrt(8.0))))


def geodesic_deg_many(matrices_a: np.ndarray, matrices_b: np.ndarray) -> np.ndarray:
    """:func:`geodesic_deg` of each pair of two (N, 3, 3) stacks, (N,) degrees (same formula)."""
    a, b = np.asarray(matrices_a, dtype=np.float64), np.asarray(matrices_b, dtype=np.float64)
    chord = np.linalg.norm((a - b).reshape(len(a), 9), axis=1) / math.sqrt(8.0)
    return np.degrees(2.0 * np.arcsin(np.minimum(chord, 1.0)))


def wrap_deg(angle_deg: float) -> float:
    """Wrap an angle to [-180, 180)."""
    return (angle_deg + 180.0) % 360.0 - 180.0


# --------------------------------------------------------------------------------------------
# 3DDFA (AFLW2000-3D, 300W_LP)
# --------------------------------------------------------------------------------------------
def matrix_3ddfa_from_pose_para(pitch_rad: float, yaw_rad: float, roll_rad: float) -> np.ndarray:
    """The matrix the 3DDFA release code builds from ``Pose_Para`` (3DMM frame, y up).

    ``R3 = Rx'(pitch) Ry'(yaw) Rz'(roll)`` where each primed matrix is the transpose of the
    right-handed rotation, as in the release's ``RotationMatrix.m``.
    """
    return rot_x(pitch_rad).T @ rot_y(yaw_rad).T @ rot_z(roll_rad).T


def matrix_from_3ddfa(pitch_rad: float, yaw_rad: float, roll_rad: float) -> np.ndarray:
    """maskbench rotation (OpenCV frame) from the three ``Pose_Para`` angles (radians)."""
    return FLIP_YZ @ matrix_3ddfa_from_pose_para(pitch_rad, yaw_rad, roll_rad) @ FLIP_YZ


def matrix_to_3ddfa_rad(matrix: np.ndarray) -> tuple[float, float, float]:
    """``(pitch_rad, yaw_rad, roll_rad)`` as stored in ``Pose_Para[:3]`` for a maskbench rotation."""
    yaw_deg, pitch_deg, roll_deg = matrix_to_euler_deg(matrix)
    return math.radians(pitch_deg), math.radians(yaw_deg), math.radians(roll_deg)


# --------------------------------------------------------------------------------------------
# BIWI
# --------------------------------------------------------------------------------------------
def matrix_from_biwi(rotation_depth: np.ndarray, calib_rotation: np.ndarray) -> np.ndarray:
    """Pose in the RGB camera frame from a BIWI pose matrix (depth frame) and ``rgb.cal``'s R."""
    return np.asarray(calib_rotation, dtype=np.float64) @ np.asarray(rotation_depth, dtype=np.float64)


def matrix_to_biwi(matrix: np.ndarray, calib_rotation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`matrix_from_biwi`: the depth-frame matrix written to ``_pose.txt``."""
    return np.asarray(calib_rotation, dtype=np.float64).T @ np.asarray(matrix, dtype=np.float64)


def hopenet_biwi_euler_deg(rotation: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees by the formulas of the Hopenet / FSA-Net BIWI loaders.

    Kept as an independent re-statement of those published formulas so tests can show that they
    agree with :func:`matrix_to_euler_deg`.
    """
    rt = np.asarray(rotation, dtype=np.float64).T
    roll = -math.atan2(rt[1, 0], rt[0, 0])
    yaw = -math.atan2(-rt[2, 0], math.sqrt(rt[2, 1] ** 2 + rt[2, 2] ** 2))
    pitch = math.atan2(rt[2, 1], rt[2, 2])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


# --------------------------------------------------------------------------------------------
# In-plane rotation and projection
# --------------------------------------------------------------------------------------------
def camera_roll_matrix(angle_deg: float) -> np.ndarray:
    """Camera-frame rotation equal to rotating the image ``angle_deg`` counter-clockwise on screen."""
    return rot_z(-math.radians(angle_deg))


def rotate_in_plane(pose: PoseT, angle_deg: float) -> PoseT:
    """Pose after rotating the image by ``angle_deg`` (counter-clockwise on screen).

    Exact for a rotation about the principal point; see the module docstring.
    """
    return type(pose)(camera_roll_matrix(angle_deg) @ pose.matrix)


def image_rotation_affine(center_px: tuple[float, float], angle_deg: float) -> np.ndarray:
    """2x3 affine matrix that rotates pixel coordinates ``angle_deg`` counter-clockwise on screen
    about ``center_px``; the same matrix ``cv2.getRotationMatrix2D(center, angle_deg, 1)`` gives."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    cx, cy = center_px
    return np.array([[c, s, (1 - c) * cx - s * cy], [-s, c, s * cx + (1 - c) * cy]])


#: The evaluator's crop protocol: the labelled box grown by this fraction of its size on every side.
PROTOCOL_CROP_MARGIN = 0.25


def protocol_crop_box(bbox: _Box, image_hw: tuple[int, int],
                      margin: float = PROTOCOL_CROP_MARGIN) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixels of the crop protocol's face crop: ``bbox`` grown by ``margin`` of
    its width/height on every side, clipped to the image (at least one pixel)."""
    h, w = image_hw
    mx, my = margin * bbox.width_px, margin * bbox.height_px
    x0, y0 = max(int(bbox.x_min - mx), 0), max(int(bbox.y_min - my), 0)
    x1, y1 = min(int(np.ceil(bbox.x_max + mx)), w), min(int(np.ceil(bbox.y_max + my)), h)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def box_iou(box: np.ndarray | tuple[float, ...], boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one corner box ``(x_min, y_min, x_max, y_max)`` with each of
    ``boxes`` (N, 4); 0 where the union is empty. (Torch tensors: :func:`maskbench.models.box_utils.iou`.)"""
    a = np.asarray(box, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0.0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def best_match(box: np.ndarray | Sequence[float], boxes: np.ndarray | Sequence[Sequence[float]],
               min_iou: float) -> int | None:
    """Index of the box of ``boxes`` that overlaps ``box`` most (:func:`box_iou`; the first of equal
    ones), when that IoU is at least ``min_iou``; None otherwise, or when ``boxes`` is empty. The one
    rule for "which detection is the labelled face" (the judge, ``--protocol full``, dlib landmarks),
    each use with its own threshold, stated where it is used."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(b):
        return None
    ious = box_iou(box, b)
    k = int(ious.argmax())
    return k if ious[k] >= min_iou else None


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, max_iou: float, order: Sequence[int] | None = None) -> list[int]:
    """Indices kept by greedy non-maximum suppression: by descending score (equal scores: lower
    index first; or in ``order`` when given), a box is kept unless its IoU with a box kept before
    exceeds ``max_iou``. The one NMS (the judge's detector and the reference model's detections)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    kept: list[int] = []
    if order is None:
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    for i in order:
        if not kept or (box_iou(b[i], b[kept]) <= max_iou).all():
            kept.append(int(i))
    return kept


def apply_affine(points_px: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N, 2) points; NaN rows (missing points) stay NaN."""
    pts = np.asarray(points_px, dtype=np.float64)
    return pts @ affine[:, :2].T + affine[:, 2]


def project_points(points_camera_mm: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray:
    """Pinhole projection of (N, 3) camera-frame points with intrinsics K (3x3) to (N, 2) pixels."""
    pts = np.asarray(points_camera_mm, dtype=np.float64)
    uvw = pts @ np.asarray(camera_matrix, dtype=np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


def mirrored_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation a horizontally mirrored image shows: ``M R M`` with ``M = MIRROR_X`` (works on
    (..., 3, 3) stacks)."""
    return MIRROR_X @ np.asarray(matrix, dtype=np.float64) @ MIRROR_X


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of (N, 2) points against a closed polygon's (M, 2) corners."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    n = len(polygon)
    for k in range(n):
        x1, y1 = polygon[k]
        x2, y2 = polygon[(k + 1) % n]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


def polyline_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Euclidean distance of (N, 2) points to an open polyline (its corners in order; repeat the
    first corner at the end for a polygon's outline)."""
    best = np.full(len(points), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        h = np.clip((points - a) @ ab / float(ab @ ab), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + h[:, None] * ab), axis=1))
    return best


def distance_outside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Euclidean distance of (N, 2) points to a convex polygon (corners in order), 0 inside it.

    All points against all edges at once: for the few hundred points and the face outline's few
    dozen edges of a mask fit this is 3x faster than :func:`inside_polygon` and
    :func:`polyline_distance` (which loop over the edges, for the renderer's many pixels)."""
    ab = np.concatenate([polygon[1:], polygon[:1]]) - polygon  # (E, 2) edges (np.roll: 10x the call's cost)
    abx, aby = ab[:, 0], ab[:, 1]
    apx = points[:, 0, None] - polygon[:, 0]  # (P, E), x and y apart (a trailing axis of 2 is slow)
    apy = points[:, 1, None] - polygon[:, 1]
    t = np.clip((apx * abx + apy * aby) / np.maximum(abx * abx + aby * aby, 1e-12), 0.0, 1.0)
    dx, dy = apx - t * abx, apy - t * aby
    d = np.sqrt((dx * dx + dy * dy).min(axis=1))
    cross = abx * apy - aby * apx
    inside = (cross >= 0).all(axis=1) | (cross <= 0).all(axis=1)
    return np.where(inside, 0.0, d)


def camera_3x4_to_matrix(params: np.ndarray) -> np.ndarray:
    """The rotation of a 3x4 affine camera (12 numbers, row-major): its first two rows' 3-vectors
    normalised and their cross product (the scaled-orthographic decomposition used by 3DDFA)."""
    p = np.asarray(params, np.float64)[:12].reshape(3, 4)[:, :3]
    r1, r2 = p[0] / np.linalg.norm(p[0]), p[1] / np.linalg.norm(p[1])
    return np.stack([r1, r2, np.cross(r1, r2)])
