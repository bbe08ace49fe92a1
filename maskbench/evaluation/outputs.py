"""What a model returns, read as poses: Euler degrees kept as given, a 3x3 or 6D output as a rotation
matrix in the maskbench convention (:mod:`maskbench.geometry`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from maskbench import geometry


def to_matrix(output: Any) -> np.ndarray | None:
    """A model output (Euler degrees, 3x3 matrix or 6D) as a rotation matrix; None stays None."""
    if output is None:
        return None
    arr = np.asarray(output, dtype=np.float64)
    if arr.shape == (3,):
        return geometry.euler_deg_to_matrix(float(arr[0]), float(arr[1]), float(arr[2]))
    if arr.shape == (3, 3):
        return geometry.orthonormalize(arr)
    if arr.shape == (6,):
        return to_matrices(arr[None])[0]  # Gram-Schmidt, written once in to_matrices
    raise ValueError(f"model output of shape {arr.shape}: expected (3,) Euler degrees, (3, 3) or (6,)")


def model_output(output: Any) -> np.ndarray | None:
    """What an adapter returns for one model output: Euler degrees (3,) kept as they are (a model's
    own angles are scored as given), a 3x3 or 6D output as a rotation matrix (:func:`to_matrix`)."""
    if output is None:
        return None
    arr = np.asarray(output, dtype=np.float64)
    return arr.copy() if arr.shape == (3,) else to_matrix(arr)


def to_matrices(outputs: np.ndarray) -> list[np.ndarray | None]:
    """:func:`model_output` of each row of a batch output (N, 3) Euler degrees (kept), (N, 6) or
    (N, 3, 3); (N, 6) vectorised by :func:`maskbench.models.rotation6d.sixd_to_matrix` (the one
    Gram-Schmidt: the first two matrix columns, the third their cross product)."""
    arr = np.asarray(outputs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 6:
        return [model_output(v) for v in arr]
    import torch  # only 6D outputs need it

    from maskbench.models.rotation6d import sixd_to_matrix

    return list(sixd_to_matrix(torch.from_numpy(arr)).numpy())


#: Head frames a published model may report its rotation in, each as the matrix that maps it into
#: maskbench's camera frame (x right, y down, z into the scene): ``R_maskbench = C @ R @ C.T``.
#: "y-up": x right, y up, z towards the viewer (the 3DMM frame of 3DDFA and AFLW2000-3D's ``Pose_Para``,
#: and OpenGL's, which MediaPipe's facial transformation matrix uses).
FRAMES: dict[str, np.ndarray] = {"camera": np.eye(3), "y-up": geometry.FLIP_YZ}
#: Intel Open Model Zoo head-pose-estimation-adas-0001: its README's frame has x along the optical axis, y to
#: image right and z up, and R = Rz(yaw) Ry(pitch) Rx(roll). Labelled photos (tests/test_cards_published.py)
#: show roll turning about the axis that points from the camera into the face (positive roll = clockwise on
#: screen, as maskbench's), so x points into the scene: x_maskbench = y, y_maskbench = -z, z_maskbench = x
#: with roll's sign reversed, which is what this matrix and :func:`intel_zyx_to_matrix` encode.
INTEL_AXES = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])


def to_frame(matrix: np.ndarray, frame: str) -> np.ndarray:
    """A rotation reported in one of :data:`FRAMES` as a maskbench rotation."""
    c = FRAMES[frame]
    return c @ geometry.orthonormalize(np.asarray(matrix, np.float64)) @ c.T  # type: ignore[no-any-return]


def intel_zyx_to_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """A maskbench rotation from head-pose-estimation-adas-0001's (yaw, pitch, roll) (:data:`INTEL_AXES`)."""
    r = (geometry.rot_z(np.radians(yaw_deg)) @ geometry.rot_y(np.radians(pitch_deg))
         @ geometry.rot_x(np.radians(-roll_deg)))
    return INTEL_AXES @ r @ INTEL_AXES.T  # type: ignore[no-any-return]
