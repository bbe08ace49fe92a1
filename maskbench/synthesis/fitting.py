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

The output of :func:`fit_mask` is, for every covered pixel, its texture coordinate and surface
normal; blending is in :mod:`maskbench.synthesis.blending`.
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


@dataclass(frozen=True)
class MaskSurface:
    """A mask type's surface on the generic head (head frame, mm)."""

    name: str
    vertices_mm: np.ndarray  # (GRID_V * GRID_U, 3)
    normals: np.ndarray  # (N, 3) unit, outward
    uv: np.ndarray  # (N, 2) in [0, 1]
    triangles: np.ndarray  # (T, 3) vertex indices, counter-clockwise seen from outside


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
    tris = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return MaskSurface(name, grid.reshape(-1, 3), normals.reshape(-1, 3), np.column_stack([uu.ravel(), vv.ravel()]),
                       tris)


@dataclass(frozen=True)
class Fit:
    """A fitted mask in an image: per covered pixel of a bounding box, texture coords and normal."""

    x0: int
    y0: int
    covered: np.ndarray  # (h, w) bool
    uv: np.ndarray  # (h, w, 2) float32, valid where covered
    normal_cam: np.ndarray  # (h, w, 3) float32, valid where covered
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
    ids = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.int32)
    order = np.flatnonzero(facing)
    depth = v_cam[tri[order]].mean(axis=1)[:, 2]
    drawn = tri[order[np.argsort(-depth, kind="stable")]]  # far to near (painter's algorithm)
    corners = px[drawn] - np.array([x0, y0], dtype=np.float64)  # (T, 3, 2) in box pixels
    polys = np.round(corners * 16).astype(np.int32)
    for value, poly in enumerate(polys, start=1):  # ids: 1 + position in the drawing order
        cv2.fillConvexPoly(ids, poly, value, lineType=cv2.LINE_8, shift=4)
    covered = ids > 0
    if not covered.any():
        return None
    # attributes (u, v, normal) are affine in the pixel position inside each triangle: solve each
    # triangle's 3x3 system once, then every pixel is one gather and a multiply-add (no per-pixel
    # barycentrics). Row 0 of ``planes`` is zeros for uncovered pixels.
    corners_h = np.concatenate([corners, np.ones(corners.shape[:2] + (1,))], axis=2)  # rows (x, y, 1)
    attrs = np.concatenate([surf.uv[drawn], n_cam[drawn]], axis=2)  # (T, 3, 5)
    solvable = np.abs(np.linalg.det(corners_h)) > 1e-9
    planes = np.zeros((len(drawn) + 1, 3, 5), np.float32)
    planes[1:][solvable] = np.linalg.solve(corners_h[solvable], attrs[solvable])
    planes[1:][~solvable, 2] = attrs[~solvable].mean(axis=1)  # sliver triangles: their mean value
    g = planes.reshape(len(planes), 15).T[:, ids]  # (15, h, w): one contiguous plane per coefficient
    yy, xx = np.mgrid[0 : ids.shape[0], 0 : ids.shape[1]].astype(np.float32)
    u, v, nx, ny, nz = (xx * g[j] + yy * g[5 + j] + g[10 + j] for j in range(5))
    inv_norm = 1.0 / (np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12)
    uv_img = np.clip(np.stack([u, v], axis=-1), 0.0, 1.0)  # a pixel rounded in from a neighbouring edge
    n_img = np.stack([nx * inv_norm, ny * inv_norm, nz * inv_norm], axis=-1)
    return Fit(int(x0), int(y0), covered, uv_img, n_img, px)


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
