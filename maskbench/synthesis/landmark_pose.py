"""The head rotation 68 landmarks show: a least-squares fit of the generic head's landmarks to them.

This is the pose a mask is fitted to (step 2 of :mod:`maskbench.synthesis.fitting`): read from the
image's landmarks, never from the label."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from maskbench.synthesis.landmarks import generic_head

#: Landmarks used to fit scale and shift: nose, eyes, mouth, chin (not the jaw contour, whose
#: meaning differs between 3D-projected ground truth and a detector's visible contour).
FIT_LANDMARKS = list(range(27, 68)) + [8]


def landmark_rotation(landmarks_px: np.ndarray) -> np.ndarray:
    """The head rotation the image's landmarks show: the scaled-orthographic rotation that best maps
    the generic head's inner-face landmarks (:data:`FIT_LANDMARKS`: nose, eyes, mouth, chin) onto
    them. What a mask is oriented by unless ``--landmarks pose`` asks for the label: a mask fitted
    this way reads nothing from the pose label, so a model cannot read the label off the mask."""
    finite = np.isfinite(landmarks_px).all(axis=1)
    good = [k for k in FIT_LANDMARKS if finite[k]]
    if len(good) < 6:
        raise ValueError(f"only {len(good)} finite inner-face landmarks; at least 6 are needed to orient a mask")
    return fitted_rotation(head_normal_equations(tuple(good)), landmarks_px[good])


def fitted_rotation(equations: tuple[np.ndarray, np.ndarray | None], image_px: np.ndarray) -> np.ndarray:
    """Rotation of a scaled orthographic camera that best maps 3D model points to image points, from
    the model side's :func:`_normal_equations`."""
    m, inverse = equations
    x = image_px - image_px.mean(axis=0)
    if inverse is not None:
        affine = inverse @ (m.T @ x)  # (3, 2): x ~ m @ affine
    else:  # model points in a plane (a few landmarks left): the least-norm solution
        affine, *_ = np.linalg.lstsq(m, x, rcond=None)
    (a0, a1, a2), (b0, b1, b2) = _orthonormal_rows(affine.T)
    return np.array([[a0, a1, a2], [b0, b1, b2], [a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0]])


def _normal_equations(model_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(the model points less their mean, ``m``; the inverse of ``m^T m``, None when singular)."""
    m = model_mm - model_mm.mean(axis=0)
    inverse, det = symmetric_inverse((m.T @ m)[None])  # normal equations: 3 unknowns
    return m, (inverse[0] if abs(det[0]) > 1e-9 else None)


@lru_cache(maxsize=256)
def head_normal_equations(landmark_ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_normal_equations` of the generic head's landmarks ``landmark_ids``, made once per set
    (read-only): the same for every face where these landmarks are finite."""
    m, inverse = _normal_equations(generic_head().landmarks_mm[list(landmark_ids)])
    for a in (m, inverse):
        if a is not None:
            a.flags.writeable = False
    return m, inverse


def _orthonormal_rows(a: np.ndarray) -> np.ndarray:
    """The (2, 3) matrix with orthonormal rows nearest to ``a`` (its polar factor ``(a a^T)^(-1/2) a``,
    what ``u @ vt`` of its SVD gives), from the closed-form square root of the 2x2 ``a a^T``."""
    s = a @ a.T
    det = s[0, 0] * s[1, 1] - s[0, 1] * s[1, 0]
    if not det > 1e-12 * max(float(np.trace(s)) ** 2, 1e-300):  # rank < 2: the SVD decides
        u, _, vt = np.linalg.svd(a, full_matrices=False)
        return u @ vt
    root_det = np.sqrt(det)
    root = (s + root_det * np.eye(2)) / np.sqrt(s[0, 0] + s[1, 1] + 2.0 * root_det)  # sqrt(s)
    inv_root = np.array([[root[1, 1], -root[0, 1]], [-root[1, 0], root[0, 0]]]) / (
        root[0, 0] * root[1, 1] - root[0, 1] * root[1, 0])
    return inv_root @ a


def symmetric_inverse(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverses, determinants) of a stack of symmetric 3x3 matrices (M, 3, 3), from their cofactors
    (a few hundred small systems: ``np.linalg.solve`` and ``det`` cost 10x more in their set-up);
    a singular one gets an infinite or NaN inverse, which its determinant says to skip."""
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 1], m[:, 1, 2], m[:, 2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    adj = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22], axis=1).reshape(-1, 3, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        return adj / det[:, None, None], det
