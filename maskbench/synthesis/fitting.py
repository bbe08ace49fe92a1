"""Pose-aware mask fitting: a 3D mask surface on a generic head, posed, projected, warped to the face.

1. **Surface** (once per mask type): on maskbench's average procedural head, a grid in mask
   texture space (u, v) is placed by its template's anchors: u is the azimuth around the head
   (``-azimuth_deg .. +azimuth_deg``), v runs from the top edge (over the nose bridge landmark, up
   to the cheek landmarks at the sides) to the bottom edge (under the chin landmark, up to the jaw
   landmarks at the sides). Each grid point is cast onto the head surface, pushed out by the
   template's stand-off, and then the fabric is *tented*: in every row and every column the
   points are moved onto the outer convex envelope, so the mask spans from the nose ridge to the
   cheeks and from the nose tip to the chin instead of following the philtrum.
2. **Pose**: the surface is rotated by the sample's ground-truth rotation. A scaled orthographic
   projection (scale and shift) is fitted by least squares to the sample's nose, eye, mouth and
   chin landmarks.
3. **Person**: residuals of the anchor landmarks (nose, mouth corners, chin, and the jaw points
   whose surface faces the camera) are spread over the mask with Gaussian weights, so the mask
   follows this face's visible jaw line and chin rather than the generic ones.
4. **Visibility**: triangles facing away from the camera are dropped and the rest drawn far to
   near, so at large yaw the far half of the mask is compressed and hidden behind the nose and
   the near cheek; nothing is drawn off a profile's silhouette.

The output of :func:`fit_mask` is, for every covered pixel, its texture coordinate and its
shading (the Lambert term of :data:`LIGHT_DIR` at the mask's vertices, interpolated: Gouraud);
blending is in :mod:`maskbench.synthesis.blending`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from maskbench.render.head import Head
from maskbench.synthesis.landmarks import generic_head
from maskbench.synthesis.templates import load

GRID_U, GRID_V = 25, 13
#: Landmarks used to fit scale and shift: nose, eyes, mouth, chin (not the jaw contour, whose
#: meaning differs between 3D-projected ground truth and a detector's visible contour).
FIT_LANDMARKS = list(range(27, 68)) + [8]
#: Anchors whose residuals bend the mask to the person's face.
ANCHOR_LANDMARKS = [27, 28, 30, 33, 48, 54, 57, 8]
JAW_LANDMARKS = list(range(2, 15))
#: Light direction in the camera frame (travelling from upper left, slightly from the camera).
LIGHT_DIR = np.array([0.25, 0.45, 1.0]) / np.linalg.norm([0.25, 0.45, 1.0])


@dataclass(frozen=True)
class MaskSurface:
    """A mask type's surface on the generic head (head frame, mm)."""

    name: str
    vertices_mm: np.ndarray  # (GRID_V * GRID_U, 3)
    normals: np.ndarray  # (N, 3) unit, outward
    uv: np.ndarray  # (N, 2) in [0, 1]
    triangles: np.ndarray  # (T, 3) vertex indices, counter-clockwise seen from outside
    quads: np.ndarray  # (T / 2, 4) each grid cell's corners in order around it (a, b, d, c)


def _outer_envelope(coord: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Upper convex envelope of the points (coord, radius), sampled at ``coord`` (monotone chain)."""
    order = np.argsort(coord, kind="stable")
    c, r = coord[order], radius[order]
    hull: list[int] = []
    for i in range(len(c)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (c[b] - c[a]) * (r[i] - r[a]) - (r[b] - r[a]) * (c[i] - c[a]) >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    out = np.empty_like(radius)
    out[order] = np.interp(c, c[hull], r[hull])
    return out


def _radial_to_hull(points_xz: np.ndarray, directions_xz: np.ndarray) -> np.ndarray:
    """Distance along each unit direction from the origin to the convex hull of the points + origin."""
    pts = np.vstack([points_xz, [[0.0, 0.0]]]).astype(np.float32)
    hull = cv2.convexHull(pts, clockwise=False).reshape(-1, 2).astype(np.float64)
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.column_stack([edges[:, 1], -edges[:, 0]])
    centre = hull.mean(axis=0)
    flip = np.einsum("ij,ij->i", normals, hull - centre) < 0
    normals[flip] *= -1  # outward
    offsets = np.einsum("ij,ij->i", normals, hull)
    proj = directions_xz @ normals.T  # (N, E)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(proj > 1e-12, offsets[None, :] / proj, np.inf)
    return t.min(axis=1)


@cache
def surface(name: str) -> MaskSurface:
    """Build (and cache per process) the 3D surface of mask type ``name``."""
    tpl = load(name)
    g = tpl.geometry
    lm = generic_head().landmarks_mm
    head = Head(generic_head().identity, ears=False)  # straps pass over the ears; the fabric does not
    phi_max = math.radians(g["azimuth_deg"])
    y_top_c = lm[g["top"]["landmark"], 1] - g["top"]["offset_mm"]
    y_top_s = float(np.mean(lm[g["side_top"], 1]))
    y_bot_c = lm[g["bottom"]["landmark"], 1] + g["bottom"]["offset_mm"]
    y_bot_s = float(np.mean(lm[g["side_bottom"], 1]))
    u = np.linspace(0.0, 1.0, GRID_U)
    v = np.linspace(0.0, 1.0, GRID_V)
    uu, vv = np.meshgrid(u, v)  # (GRID_V, GRID_U)
    phi = (2 * uu - 1) * phi_max
    w = np.abs(2 * uu - 1)
    # the top edge rests on the nose bridge and drops quickly to the cheeks, clear of the eyes
    rise = np.sin(np.minimum(w / 0.45, 1.0) * np.pi / 2)
    y_top = y_top_c + rise * (y_top_s - y_top_c)
    y_bot = (1 - w**1.5) * y_bot_c + w**1.5 * y_bot_s
    y = y_top + vv * (y_bot - y_top)
    direction = np.stack([np.sin(phi), np.zeros_like(phi), -np.cos(phi)], axis=-1).reshape(-1, 3)
    origins = direction * 400.0 + np.column_stack([np.zeros(y.size), y.ravel(), np.zeros(y.size)])
    hit, pts = head.cast(origins, -direction, max_steps=300)
    if not hit.all():
        raise RuntimeError(f"mask surface {name}: {int((~hit).sum())} grid rays missed the head")
    # stand-off tapers to zero at the top edge: the nose wire presses the fabric onto the bridge
    taper = np.clip(vv.ravel() / 0.4, 0.0, 1.0)[:, None]
    pts = pts + head.normals(pts) * g["standoff_mm"] * taper
    grid = pts.reshape(GRID_V, GRID_U, 3).copy()
    dirs = direction.reshape(GRID_V, GRID_U, 3)[..., [0, 2]]  # unit (x, z) of each grid column's azimuth
    radius = np.einsum("ijk,ijk->ij", grid[..., [0, 2]], dirs)
    for j in range(GRID_U):  # columns: the fabric spans from the nose tip to the chin
        radius[:, j] = np.maximum(radius[:, j], _outer_envelope(grid[:, j, 1], radius[:, j]))
    for i in range(GRID_V):  # rows: from the nose ridge to the cheeks
        on_hull = _radial_to_hull(radius[i][:, None] * dirs[i], dirs[i])
        radius[i] = np.maximum(radius[i], on_hull)
    grid[..., 0], grid[..., 2] = radius * dirs[..., 0], radius * dirs[..., 1]
    du = np.gradient(grid, axis=1)
    dv = np.gradient(grid, axis=0)
    normals = np.cross(dv, du)  # outward for this orientation (checked in tests)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    idx = np.arange(GRID_V * GRID_U).reshape(GRID_V, GRID_U)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    # triangles (a, c, b) of every cell, then (b, c, d) of every cell; the cell itself a -> b -> d -> c
    tris = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    quads = np.stack([a, b, d, c], -1).reshape(-1, 4)
    return MaskSurface(name, grid.reshape(-1, 3), normals.reshape(-1, 3), np.column_stack([uu.ravel(), vv.ravel()]),
                       tris, quads)


@dataclass(frozen=True)
class Fit:
    """A fitted mask in an image: per pixel of a bounding box, coverage, texture coords and shading."""

    x0: int
    y0: int
    covered: np.ndarray  # (h, w) bool
    u: np.ndarray  # (h, w) float32 in [0, 1], texture x; valid where covered
    v: np.ndarray  # (h, w) float32 in [0, 1], texture y; valid where covered
    shade: np.ndarray  # (h, w) float32 in [0, 1]: Lambert term for LIGHT_DIR; valid where covered
    vertices_px: np.ndarray  # (N, 2) projected mask vertices (for debugging and tests)


def _weak_perspective(model_xy: np.ndarray, image_xy: np.ndarray) -> tuple[float, np.ndarray]:
    """Scale and shift minimising ||s * model + t - image||^2."""
    ma, ia = model_xy.mean(axis=0), image_xy.mean(axis=0)
    dm, di = model_xy - ma, image_xy - ia
    s = float((dm * di).sum() / max((dm * dm).sum(), 1e-12))
    return s, ia - s * ma


def fit_mask(name: str, rotation: np.ndarray, landmarks_px: np.ndarray, image_shape: tuple[int, ...]) -> Fit | None:
    """Fit mask ``name`` to a face with pose ``rotation`` and 68 ``landmarks_px``; None if not visible."""
    surf = surface(name)
    head = generic_head()
    r = np.asarray(rotation, dtype=np.float64)
    lm_cam = head.landmarks_mm @ r.T
    finite = np.isfinite(landmarks_px).all(axis=1)
    good = [k for k in FIT_LANDMARKS if finite[k]]
    s, t = _weak_perspective(lm_cam[good, :2], landmarks_px[good])
    if not s > 0:
        return None
    v_cam = surf.vertices_mm @ r.T
    px = s * v_cam[:, :2] + t
    # bend the mask to this face: Gaussian-weighted anchor residuals
    jaw_normals = _generic_jaw_normals() @ r.T
    visible_jaw = [k for k, n in zip(JAW_LANDMARKS, jaw_normals) if n[2] < -0.15]
    anchors = [k for k in ANCHOR_LANDMARKS + visible_jaw if finite[k]]
    if anchors:
        model_px = s * lm_cam[anchors, :2] + t
        resid = landmarks_px[anchors] - model_px
        sigma = 35.0 * s
        d2 = ((px[:, None, :] - model_px[None, :, :]) ** 2).sum(-1)
        wts = np.exp(-d2 / (2 * sigma**2))
        px = px + (wts @ resid) / (wts.sum(axis=1, keepdims=True) + 1e-3)
    n_cam = surf.normals @ r.T
    shade = np.clip(-(n_cam @ LIGHT_DIR), 0.0, 1.0)  # per vertex; interpolated (Gouraud shading)
    tri = surf.triangles
    p0, p1, p2 = px[tri[:, 0]], px[tri[:, 1]], px[tri[:, 2]]
    signed = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    facing = (n_cam[tri].mean(axis=1)[:, 2] < 0.05) & (np.abs(signed) > 1e-6)
    # a triangle whose projected winding flipped is seen from behind (after the bending warp too)
    front_sign = _front_winding_sign()
    facing &= np.sign(signed) == front_sign
    if not facing.any():
        return None
    h_img, w_img = image_shape[:2]
    lo = np.floor(px.min(axis=0)).astype(int)
    hi = np.ceil(px.max(axis=0)).astype(int)
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w_img - 1), min(hi[1], h_img - 1)
    if x1 <= x0 or y1 <= y0:
        return None
    offset = np.array([x0, y0], dtype=np.float64)
    polys, corner_ids = _drawn_polygons(surf, px, facing, front_sign, v_cam[:, 2], offset)
    ids = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.int32)
    for value, poly in enumerate(polys, start=1):  # ids: 1 + position in the drawing order (far to near)
        cv2.fillConvexPoly(ids, poly, value, lineType=cv2.LINE_8, shift=4)
    covered = ids > 0
    if not covered.any():
        return None
    # (u, v, shade) are affine in the pixel position inside each triangle: one 3x3 solve per
    # triangle (least squares over the 4 corners of a quad, which is nearly planar on this fine
    # grid), then every pixel is one gather and a multiply-add. Row 0 of ``planes``: uncovered.
    attrs = np.column_stack([surf.uv, shade])  # (N, 3)
    planes = np.zeros((len(polys) + 1, 3, 3), np.float64)
    for members in corner_ids:  # quads, triangles
        rows, verts = members[:, 0], members[:, 1:]
        a = np.concatenate([px[verts] - offset, np.ones(verts.shape + (1,))], axis=2)  # (M, 3 or 4, 3): x, y, 1
        b = attrs[verts]  # (M, 3 or 4, 3)
        ata = np.einsum("mki,mkj->mij", a, a)
        atb = np.einsum("mki,mkj->mij", a, b)
        solvable = np.abs(np.linalg.det(ata)) > 1e-9
        planes[1 + rows[solvable]] = np.linalg.solve(ata[solvable], atb[solvable])
        planes[1 + rows[~solvable], 2] = b[~solvable].mean(axis=1)  # slivers: their mean value
    coef = np.ascontiguousarray(planes.astype(np.float32).reshape(len(planes), 9).T)  # (9, polygons + 1)
    h, w = ids.shape
    flat = ids.ravel()
    xs, ys = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
    u, v, lit = (_affine_plane(coef[j], coef[3 + j], coef[6 + j], flat, xs, ys) for j in range(3))
    np.clip(u, 0.0, 1.0, out=u)  # a pixel rounded in from a neighbouring edge
    np.clip(v, 0.0, 1.0, out=v)
    np.clip(lit, 0.0, 1.0, out=lit)
    return Fit(int(x0), int(y0), covered, u, v, lit, px)


def _affine_plane(cx: np.ndarray, cy: np.ndarray, c1: np.ndarray, flat_ids: np.ndarray, xs: np.ndarray,
                  ys: np.ndarray) -> np.ndarray:
    """``cx[id] * x + cy[id] * y + c1[id]`` per pixel, (h, w) float32, in place on the gathers."""
    shape = (len(ys), xs.shape[1])
    out = cx.take(flat_ids).reshape(shape)
    out *= xs
    gy = cy.take(flat_ids).reshape(shape)
    gy *= ys
    out += gy
    out += c1.take(flat_ids).reshape(shape)
    return out


def _drawn_polygons(surf: MaskSurface, px: np.ndarray, facing: np.ndarray, front_sign: float, depth: np.ndarray,
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
    e = np.roll(q, -1, axis=1) - q
    e_next = np.roll(e, -1, axis=1)
    turn = e[:, :, 0] * e_next[:, :, 1] - e[:, :, 1] * e_next[:, :, 0]
    # convex when all four turns have one sign; a -> b -> d -> c runs against the triangles' winding
    as_quad = facing[:cells] & facing[cells:] & (np.sign(turn) == -front_sign).all(axis=1)
    shapes = [quad[as_quad], tri[facing & ~np.concatenate([as_quad, as_quad])]]  # (Q, 4), (T, 3)
    order = np.argsort(-np.concatenate([depth[sh].mean(axis=1) for sh in shapes]), kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    fixed = [np.round((px[sh] - offset) * 16).astype(np.int32) for sh in shapes]
    n_quads = len(shapes[0])
    polys = [fixed[0][i] if i < n_quads else fixed[1][i - n_quads] for i in order.tolist()]
    rows = [np.column_stack([position[:n_quads], shapes[0]]), np.column_stack([position[n_quads:], shapes[1]])]
    return polys, [r for r in rows if len(r)]


@lru_cache(maxsize=1)
def _generic_jaw_normals() -> np.ndarray:
    """Outward surface normals of the generic head at the jaw landmarks (head frame)."""
    head = generic_head()
    return head.normals(head.landmarks_mm[JAW_LANDMARKS])


@lru_cache(maxsize=1)
def _front_winding_sign() -> float:
    """Sign of the projected triangle area for triangles seen from the front (frontal pose)."""
    surf = surface("surgical")
    mid = len(surf.triangles) // 4
    tri = surf.triangles[mid]
    p = surf.vertices_mm[tri][:, :2]
    signed = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])
    return float(np.sign(signed))
