"""Rasterising a projected mask: which triangles are drawn, and each covered pixel's texture coordinate and shading."""

from __future__ import annotations

import cv2
import numpy as np

from maskbench.synthesis.landmark_pose import symmetric_inverse
from maskbench.synthesis.surface import MaskSurface


def pixel_attributes(attrs: np.ndarray, n_polys: int, corner_ids: list[np.ndarray], px: np.ndarray,
                      offset: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, shade) of every pixel of the id map from the per-vertex ``attrs`` (N, 3).

    They are affine in the pixel position inside each triangle: one 3x3 solve per triangle (least
    squares over the 4 corners of a quad, which is nearly planar on this fine grid), then every pixel
    is one gather and a multiply-add. Row 0 of ``planes``: uncovered."""
    planes = np.zeros((n_polys + 1, 3, 3), np.float64)
    for members in corner_ids:  # quads, triangles
        rows, verts = members[:, 0], members[:, 1:]
        a = np.concatenate([px[verts] - offset, np.ones(verts.shape + (1,))], axis=2)  # (M, 3 or 4, 3): x, y, 1
        b = attrs[verts]  # (M, 3 or 4, 3)
        at = a.transpose(0, 2, 1)
        inverse, det = symmetric_inverse(at @ a)
        solvable = np.abs(det) > 1e-9
        planes[1 + rows[solvable]] = inverse[solvable] @ (at[solvable] @ b[solvable])
        planes[1 + rows[~solvable], 2] = b[~solvable].mean(axis=1)  # slivers: their mean value
    coef = np.ascontiguousarray(planes.astype(np.float32).reshape(len(planes), 9).T)  # (9, polygons + 1)
    h, w = ids.shape
    xs, ys = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
    if len(planes) <= 256:  # a table lookup on 8-bit ids (cv2.LUT) is about 3x faster than numpy's take
        table = np.zeros((9, 256), np.float32)
        table[:, : len(planes)] = coef
        small = ids.astype(np.uint8)
        gather = lambda row: cv2.LUT(small, table[row])  # noqa: E731
    else:
        flat = ids.ravel()
        gather = lambda row: coef[row].take(flat).reshape(h, w)  # noqa: E731
    u, v, lit = (_affine_plane(gather(j), gather(3 + j), gather(6 + j), xs, ys) for j in range(3))
    np.clip(u, 0.0, 1.0, out=u)  # a pixel rounded in from a neighbouring edge
    np.clip(v, 0.0, 1.0, out=v)
    np.clip(lit, 0.0, 1.0, out=lit)
    return u, v, lit


def _affine_plane(cx: np.ndarray, cy: np.ndarray, c1: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``cx * x + cy * y + c1`` per pixel from the gathered (h, w) float32 coefficients, in place."""
    cx *= xs
    cy *= ys
    cx += cy
    cx += c1
    return cx


def drawn_polygons(surf: MaskSurface, px: np.ndarray, facing: np.ndarray, front_sign: float, depth: np.ndarray,
                    offset: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Polygons to draw far to near, and their corners' vertex ids grouped by corner count.

    A grid cell whose two triangles both face the camera and whose projection is convex is drawn
    as one quad (half the drawing calls); the other facing triangles one by one. Returns the
    polygons in drawing order (box pixels, 4 fractional bits, for ``cv2.fillConvexPoly``) and, for
    quads and for triangles, an array of rows ``(position in the drawing order, vertex ids...)``.
    """
    tri, quad = surf.triangles, surf.quads
    cells = len(quad)  # cell k is made of triangles k and cells + k
    q = px[quad]  # (cells, 4, 2)
    nxt = [1, 2, 3, 0]
    e = q[:, nxt] - q
    e_next = e[:, nxt]
    turn = e[:, :, 0] * e_next[:, :, 1] - e[:, :, 1] * e_next[:, :, 0]
    # convex when all four turns have one sign; a -> b -> d -> c runs against the triangles' winding
    as_quad = facing[:cells] & facing[cells:] & (np.sign(turn) == -front_sign).all(axis=1)
    shapes = [quad[as_quad], tri[facing & ~np.concatenate([as_quad, as_quad])]]  # (Q, 4), (T, 3)
    order = np.argsort(-np.concatenate([depth[sh].mean(axis=1) for sh in shapes]), kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    fixed = [np.round((px[sh] - offset) * 16).astype(np.int32) for sh in shapes]
    n_quads = len(shapes[0])
    pieces = [*fixed[0], *fixed[1]]
    polys = [pieces[i] for i in order.tolist()]
    rows = [np.column_stack([position[:n_quads], shapes[0]]), np.column_stack([position[n_quads:], shapes[1]])]
    return polys, [r for r in rows if len(r)]
