"""Pure functions on arrays for in-plane rotation (no I/O, no Sample objects).

Pixel convention: OpenCV (x right, y down, integer coordinates at pixel centres). Angles are
counter-clockwise on screen for positive values, as in ``cv2.getRotationMatrix2D``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from maskbench import geometry

BORDER_MODES = {
    "reflect": cv2.BORDER_REFLECT_101,
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
}


def rotate_image(image: np.ndarray, affine: np.ndarray, border: str = "reflect", nearest: bool = False) -> np.ndarray:
    """Warp ``image`` with a 2x3 affine into the same size (bilinear, or nearest for label maps)."""
    h, w = image.shape[:2]
    return cv2.warpAffine(
        image, affine, (w, h), flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=BORDER_MODES[border], borderValue=0,
    )


def square_crop(image: np.ndarray, affine: np.ndarray, size: int, to_rgb: bool = True) -> np.ndarray:
    """The ``size`` x ``size`` crop a 2x3 ``affine`` (image -> crop) takes, bilinear, black outside the
    image; a BGR image comes out RGB unless ``to_rgb`` is False. The one crop warp of both torch
    datasets (:class:`maskbench.torch_dataset.FaceCrop`, the trainer's random face crops)."""
    crop = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if to_rgb else crop


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (Rodrigues)."""
    a = np.asarray(a, float) / np.linalg.norm(a)
    b = np.asarray(b, float) / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    s = float(np.linalg.norm(v))
    if s < 1e-15:
        return np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / s
    angle = math.atan2(s, c)
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def camera_rotation_for(
    angle_deg: float, center_px: tuple[float, float], camera_matrix: np.ndarray | None, head_center_mm: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Camera-frame rotation that labels an image rotated by ``angle_deg`` about ``center_px``.

    Orthographic labels (``camera_matrix`` None: 300W_LP, AFLW2000): a rotation about any centre
    is an exact camera roll, ``Rz(-angle)``. Pinhole (BIWI): about the principal point it is exact;
    about another point the image also shifts by ``d = (I - Rot)(c - p)``, which no camera roll
    explains. The shift is turned into the camera rotation ``Q`` that carries the head centre's ray
    to where the head centre now appears, giving ``Q @ Rz(-angle)``: the pose seen at the face is
    right to first order. Returns the rotation and the angle of ``Q`` in degrees (0 when exact),
    recorded per sample as ``perspective_correction_deg``.
    """
    roll = geometry.camera_roll_matrix(angle_deg)
    if camera_matrix is None or head_center_mm is None:
        return roll, 0.0
    k = np.asarray(camera_matrix, float)
    principal = (float(k[0, 2]), float(k[1, 2]))
    if np.allclose(center_px, principal, atol=1e-9):
        return roll, 0.0
    rolled_center = roll @ np.asarray(head_center_mm, float)
    (u, v), = geometry.project_points(rolled_center[None], k)
    shift = geometry.apply_affine(np.array([list(center_px)]), geometry.image_rotation_affine(center_px, angle_deg))[0]
    shift = shift - geometry.apply_affine(np.array([list(center_px)]), geometry.image_rotation_affine(principal, angle_deg))[0]
    target = np.linalg.solve(k, np.array([u + shift[0], v + shift[1], 1.0]))
    q = rotation_between(rolled_center, target)
    return q @ roll, geometry.geodesic_deg(q, np.eye(3))
