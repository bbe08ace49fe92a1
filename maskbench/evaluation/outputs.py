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
