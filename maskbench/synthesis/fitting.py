"""Pose-aware mask fitting: a 3D mask surface on a generic head, posed, projected, warped to the face.

1. **Surface** (once per mask type): on maskbench's average procedural head, a grid in mask
   texture space (u, v) is placed by its template's anchors: u is the azimuth around the head
   (``-azimuth_deg .. +azimuth_deg``), v runs from the top edge (over the nose bridge landmark, up
   to the cheek landmarks at the sides) to the bottom edge (under the chin landmark, up to the jaw
   landmarks at the sides). Each grid point is cast onto the head surface, pushed out by the
   template's stand-off, and then the fabric is *tented*: in every row and every column the
   points are moved onto the outer convex envelope, so the mask spans from the nose ridge to the
   cheeks and from the nose tip to the chin instead of following the philtrum.
2. **Pose**: the surface is rotated by the rotation it is given: by default the one the image's
   landmarks show (:func:`landmark_rotation`, so the mask reads nothing from the pose label); the
   label's only with ``--landmarks pose``. A scaled orthographic projection (scale and shift) is
   fitted by least squares to the sample's nose, eye, mouth and chin landmarks.
3. **Person**: residuals of the anchor landmarks (nose, mouth corners, chin, and the jaw points
   whose surface faces the camera) are spread over the mask with Gaussian weights, so the mask
   follows this face's visible jaw line and chin rather than the generic ones.
4. **Visibility**: triangles facing away from the camera are dropped and the rest drawn far to
   near, so at large yaw the far half of the mask is compressed and hidden behind the nose and
   the near cheek. Turned away from the camera, the mask is clipped to the face's silhouette as
   the landmarks draw it: past the hull edges that face the way the face looks (nose tip, lips,
   chin at a profile) by at most the template's ``silhouette_margin_mm``; jaw landmarks other than
   the chin that leave the face outline (residual over 15 % of the face height) do not bend it.
5. **Physical size**: the fabric stands at most ``max_protrusion_mm`` off the skin along each
   grid ray (about 3 cm in front of the mouth for cup shapes).
6. **Straps**: ear loops (or head straps) run on the head surface from the mask's side corners,
   along its edge and then curving to the ear; they are bent like the fabric and also by the
   visible top of the jaw (in front of the ears); only the parts on surface that faces the camera
   are drawn.

The output of :func:`fit_mask` is, for every covered pixel, its texture coordinate and its
shading (the Lambert term of :data:`LIGHT_DIR` at the mask's vertices, interpolated: Gouraud);
blending is in :mod:`maskbench.synthesis.blending`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from maskbench.geometry import distance_outside
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
#: The jaw's top points, in front of the ears: the straps (not the fabric) follow them.
EAR_LANDMARKS = [0, 1, 15, 16]
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
    size_mm: tuple[float, float]  # mean width along u and height along v of the fabric
    straps_mm: tuple[np.ndarray, ...]  # (K, 3) polylines on the head from the side corners to the ears
    strap_normals: tuple[np.ndarray, ...]  # (K, 3) outward head normals along each strap


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


def _hull_edges(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, 2) corners of the points' convex hull and (E, 2) unit outward normals of the edges that
    start at them (zero-length edges dropped)."""
    hull = cv2.convexHull(points.astype(np.float32), clockwise=False).reshape(-1, 2).astype(np.float64)
    edges = np.concatenate([hull[1:], hull[:1]]) - hull
    normals = np.column_stack([edges[:, 1], -edges[:, 0]])
    lengths = np.sqrt((normals * normals).sum(axis=1))  # what np.linalg.norm computes, without its checks
    ok = lengths > 1e-9
    hull, normals = hull[ok], normals[ok] / lengths[ok, None]
    flip = (normals * (hull - hull.mean(axis=0))).sum(axis=1) < 0
    normals[flip] *= -1  # outward
    return hull, normals


def _radial_to_hull(points_xz: np.ndarray, directions_xz: np.ndarray) -> np.ndarray:
    """Distance along each unit direction from the origin to the convex hull of the points + origin."""
    hull, normals = _hull_edges(np.vstack([points_xz, [[0.0, 0.0]]]))
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
    skin_radius = np.einsum("ij,ij->i", pts[:, [0, 2]], direction[:, [0, 2]]).reshape(GRID_V, GRID_U)
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
    radius = np.minimum(radius, skin_radius + float(g.get("max_protrusion_mm", 30.0)))
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
    width_mm = float(np.linalg.norm(np.diff(grid, axis=1), axis=-1).sum(axis=1).mean())
    height_mm = float(np.linalg.norm(np.diff(grid, axis=0), axis=-1).sum(axis=0).mean())
    straps, strap_normals = _straps(head, grid, tpl.straps.get("kind", "ear_loop"), tpl.straps.get("anchor_v", (0.0, 1.0)))
    return MaskSurface(name, grid.reshape(-1, 3), normals.reshape(-1, 3), np.column_stack([uu.ravel(), vv.ravel()]),
                       tris, quads, (width_mm, height_mm), straps, strap_normals)


#: Where straps end on the generic head (head frame, mm; x sign chosen per side): an ear loop runs
#: to the root of the ear above and below (it then passes behind the ear, out of sight); a head
#: strap passes above and below the ear towards the back of the head.
STRAP_ENDS_MM = {"ear_loop": ((68.0, -30.0, 6.0), (66.0, 16.0, 6.0)),
                 "head_strap": ((70.0, -48.0, 45.0), (62.0, 34.0, 40.0))}
STRAP_POINTS = 24


def _straps(head: Head, grid: np.ndarray, kind: str,
            anchor_v: tuple[float, float]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Four strap curves (upper/lower on each side), each laid on the head surface 1.5 mm out.

    They start on the fabric's side edges at texture heights ``anchor_v`` (where the outline's
    side is: the corners of a rectangle, higher up the sides of an oval) and leave the corner along
    the fabric's edge (a quadratic Bezier whose control point continues the edge's row outwards, for
    half the way from the upper corner, a quarter from the lower one), then turn towards their end:
    an ear loop carries on from the mask's top edge over the cheek and bends up to the ear, it does
    not leave the corner as a straight chord; the lower one soon climbs over the jaw to the lobe
    (continued further, it would run on the neck, off the face's outline)."""
    if kind not in STRAP_ENDS_MM:
        raise ValueError(f"unknown strap kind {kind!r}; known: {', '.join(STRAP_ENDS_MM)}")
    lines, normals = [], []
    t = np.linspace(0.0, 1.0, STRAP_POINTS)[:, None]
    rows = [int(round(v * (GRID_V - 1))) for v in anchor_v]
    for col, inner, side in ((0, 1, -1.0), (-1, -2, 1.0)):  # u = 0 is the subject's right (negative x)
        for row, end, reach in ((rows[0], STRAP_ENDS_MM[kind][0], 0.5), (rows[1], STRAP_ENDS_MM[kind][1], 0.25)):
            start = grid[row, col]
            stop = np.array([side * end[0], end[1], end[2]])
            along = start - grid[row, inner]  # the edge's row, continued outwards
            control = start + along / max(float(np.linalg.norm(along)), 1e-9) * reach * float(np.linalg.norm(stop - start))
            p = (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * stop
            dirs = np.column_stack([p[:, 0], np.zeros(len(p)), p[:, 2]])
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            origins = dirs * 400.0 + np.column_stack([np.zeros(len(p)), p[:, 1], np.zeros(len(p))])
            hit, on = head.cast(origins, -dirs, max_steps=300)
            on = np.where(hit[:, None], on, p)
            n = head.normals(on)
            lines.append(on + 1.5 * n)
            normals.append(n)
    return tuple(lines), tuple(normals)


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
    px_per_mm: float = 1.0  # image pixels per millimetre of the generic head at this face
    size_mm: tuple[float, float] = (180.0, 110.0)  # the fabric's width (along u) and height (along v)
    straps_px: tuple[np.ndarray, ...] = ()  # (K, 2) image polylines: visible runs of the straps
    ahead_px: tuple[np.ndarray, ...] = ()  # image polygons; inside all of them: beyond the profile (see profile_cut)


def _weak_perspective(model_xy: np.ndarray, image_xy: np.ndarray) -> tuple[float, np.ndarray]:
    """Scale and shift minimising ||s * model + t - image||^2."""
    ma, ia = model_xy.mean(axis=0), image_xy.mean(axis=0)
    dm, di = model_xy - ma, image_xy - ia
    s = float((dm * di).sum() / max((dm * dm).sum(), 1e-12))
    return s, ia - s * ma


def fit_mask(name: str, rotation: np.ndarray, landmarks_px: np.ndarray, image_shape: tuple[int, ...]) -> Fit | None:
    """Fit mask ``name`` to a face with head ``rotation`` (camera from head frame; see
    :func:`landmark_rotation`) and 68 ``landmarks_px``; None if not visible."""
    surf = surface(name)
    head = generic_head()
    r = np.asarray(rotation, dtype=np.float64)
    lm_cam = head.landmarks_mm @ r.T
    finite = np.isfinite(landmarks_px).all(axis=1)
    good = [k for k in FIT_LANDMARKS if finite[k]]
    s, t = _weak_perspective(lm_cam[good, :2], landmarks_px[good])
    if not s > 0 and len(good) >= 6:
        # the labelled pose contradicts the landmarks (a few AFLW2000 labels are wrong): follow the face
        r = _fitted_rotation(_head_normal_equations(tuple(good)), landmarks_px[good])
        lm_cam = head.landmarks_mm @ r.T
        s, t = _weak_perspective(lm_cam[good, :2], landmarks_px[good])
    if not s > 0:
        return None
    v_cam = surf.vertices_mm @ r.T
    px, strap_px = _bent_projection(surf, v_cam, r, s, t, lm_cam, landmarks_px, finite)
    n_cam = surf.normals @ r.T
    shade = np.clip(-(n_cam @ LIGHT_DIR), 0.0, 1.0)  # per vertex; interpolated (Gouraud shading)
    tri = surf.triangles
    p0, p1, p2 = px[tri[:, 0]], px[tri[:, 1]], px[tri[:, 2]]
    signed = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    facing = (n_cam[:, 2][tri].mean(axis=1) < 0.05) & (np.abs(signed) > 1e-6)
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
    fill = cv2.fillConvexPoly
    for value, poly in enumerate(polys, start=1):  # ids: 1 + position in the drawing order (far to near)
        fill(ids, poly, value, cv2.LINE_8, 4)  # positional: keyword parsing costs a fifth of the call
    face_hull, face_normals = _hull_edges(landmarks_px[finite])  # the face outline, for the clip and the straps
    _clip_to_silhouette(ids, face_hull - offset, face_normals, r,
                        float(load(name).geometry.get("silhouette_margin_mm", 3.0)) * s)
    covered = ids > 0
    if not covered.any():
        return None
    u, v, lit = _pixel_attributes(np.column_stack([surf.uv, shade]), len(polys), corner_ids, px, offset, ids)
    straps = _visible_runs(strap_px, [n @ r.T for n in surf.strap_normals], face_hull, STRAP_REACH_MM * s)
    return Fit(int(x0), int(y0), covered, u, v, lit, px, float(s), surf.size_mm, straps,
               profile_cut(landmarks_px, r, float(h_img + w_img)))


def _bent_projection(surf: MaskSurface, v_cam: np.ndarray, r: np.ndarray, s: float, t: np.ndarray, lm_cam: np.ndarray,
                     landmarks_px: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The surface's vertices and strap lines in pixels, bent to this face: Gaussian-weighted
    residuals of the anchor landmarks (nose, mouth, chin, the visible jaw; for the straps also the
    visible top of the jaw, in front of the ears)."""
    px = s * v_cam[:, :2] + t
    strap_px = [s * (line @ r.T)[:, :2] + t for line in surf.straps_mm]
    jaw_normals = _generic_jaw_normals() @ r.T
    visible = [k for k, n in zip(JAW_LANDMARKS + EAR_LANDMARKS, jaw_normals) if n[2] < -0.15]
    ids, model_px, resid = _followed(ANCHOR_LANDMARKS + visible, s, lm_cam, t, landmarks_px, finite)
    # the straps also follow the jaw's top points where they face the camera: they lie in front of
    # the ear, so the straps end on this face's ear rather than on the generic head's; the fabric not
    fabric = np.array([k not in EAR_LANDMARKS for k in ids], bool)
    px = _bend(px, model_px[fabric], resid[fabric], 35.0 * s)
    if strap_px:  # all lines in one call
        bent = _bend(np.concatenate(strap_px), model_px, resid, 35.0 * s)
        strap_px = _split_rows(bent, [len(line) for line in strap_px])
    return px, strap_px


def _followed(anchors: list[int], s: float, lm_cam: np.ndarray, t: np.ndarray, landmarks_px: np.ndarray,
              finite: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(landmark ids, model pixels, residuals) of the ``anchors`` a bend follows (maybe none). A
    visible jaw point far off the generic jaw has left the face outline (onto hair, the neck): not
    followed. The :data:`ANCHOR_LANDMARKS` always are, the chin among them: the generic chin lies
    about 20 mm above AFLW2000's, and dropping it as an outlier left masks ending above real chins."""
    anchors = [k for k in anchors if finite[k]]
    model_px = s * lm_cam[anchors, :2] + t
    resid = landmarks_px[anchors] - model_px
    limit = JAW_OUTLIER_FRACTION * FACE_HEIGHT_MM * s
    keep = [i for i, k in enumerate(anchors)
            if k in ANCHOR_LANDMARKS or k not in JAW_LANDMARKS + EAR_LANDMARKS or np.hypot(*resid[i]) <= limit]
    return [anchors[i] for i in keep], model_px[keep], resid[keep]


def _pixel_attributes(attrs: np.ndarray, n_polys: int, corner_ids: list[np.ndarray], px: np.ndarray,
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
        inverse, det = _symmetric_inverse(at @ a)
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


#: How far outside the landmarks' hull a strap may run (to the ear behind the jaw's first point).
#: 20 mm and the -0.05 visibility of :func:`_visible_runs` (were 14 mm and -0.25) were chosen on the
#: AFLW2000 dev half with the real-photo mask detector (all 1,005 faces, seed 0: 91.5 % -> 92.8 %
#: read as masked; 92.7 % with the occluder rule refitted after it); no test asserts on that rate.
STRAP_REACH_MM = 20.0
#: Generic face height (nose bridge to chin, mm) that the jaw-outlier threshold is a fraction of.
FACE_HEIGHT_MM = 120.0
JAW_OUTLIER_FRACTION = 0.15
#: The silhouette clip starts once the face turns this far from the camera (sine of the angle).
SILHOUETTE_MIN_TURN = 0.3


#: A turned face's profile line, top to bottom: nose tip, under the nose, upper lip, lower lip, chin.
PROFILE_CHAIN = [30, 33, 51, 57, 8]
#: The jaw contour from the chin to the ear, on the subject's left and on the right.
JAW_SIDES = (list(range(8, 17)), list(range(8, -1, -1)))


def profile_cut(landmarks_px: np.ndarray, rotation: np.ndarray, reach_px: float) -> tuple[np.ndarray, ...]:
    """Polygons (image pixels) whose common part is what lies beyond a face's outline on the side it
    is turned to: ahead of both its profile line (:data:`PROFILE_CHAIN`) and the jaw contour on that
    side (at a small turn the far cheek still shows beyond the nose and the lips), out to
    ``reach_px``. Empty for a face turned sideways less than :data:`SILHOUETTE_MIN_TURN` (the sine
    of its yaw; nodding does not count) or short of landmarks.

    A mask spans from the nose tip to the chin; in front of the lips it hides the background, which
    must not be taken for a hand in front of the mask (it cut notches into masks at a profile)."""
    turn = -float(np.asarray(rotation, np.float64)[0, 2])  # sideways part of the way the face looks
    if abs(turn) < SILHOUETTE_MIN_TURN:
        return ()
    reach = np.array([np.sign(turn) * reach_px, 0.0])
    def ahead(side: list[int]) -> float:  # how far the side's jaw lies the way the face looks
        xs = landmarks_px[side, 0]
        xs = xs[np.isfinite(xs)]
        return float(xs.mean()) * np.sign(turn) if len(xs) >= 3 else -np.inf  # a line needs 3 points

    jaw = max(JAW_SIDES, key=ahead)
    polygons = []
    for line in (PROFILE_CHAIN, jaw):
        pts = landmarks_px[line]
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts) < 3:
            return ()
        polygons.append(np.vstack([pts, pts[-1] + reach, pts[0] + reach]))
    return tuple(polygons)


def inside_all(polygons: tuple[np.ndarray, ...], shape: tuple[int, ...], origin: tuple[int, int] = (0, 0)) -> np.ndarray | None:
    """Bool map (``shape[:2]``, its top left at image pixel ``origin``) of the common part of the
    ``polygons`` (image pixels); None without polygons."""
    out = None
    for polygon in polygons:
        one = np.zeros(shape[:2], np.uint8)
        cv2.fillPoly(one, [np.round((polygon - origin) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        out = one if out is None else cv2.bitwise_and(out, one)
    return None if out is None else out.view(bool)


def ahead_of_profile(landmarks_px: np.ndarray, rotation: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """Full-image bool map of :func:`profile_cut`'s region; None when the face is not turned."""
    return inside_all(profile_cut(landmarks_px, rotation, float(shape[0] + shape[1])), shape)


def landmark_rotation(landmarks_px: np.ndarray) -> np.ndarray:
    """The head rotation the image's landmarks show: the scaled-orthographic rotation that best maps
    the generic head's inner-face landmarks (:data:`FIT_LANDMARKS`: nose, eyes, mouth, chin) onto
    them. What a mask is oriented by unless ``--landmarks pose`` asks for the label: a mask fitted
    this way reads nothing from the pose label, so a model cannot read the label off the mask."""
    finite = np.isfinite(landmarks_px).all(axis=1)
    good = [k for k in FIT_LANDMARKS if finite[k]]
    if len(good) < 6:
        raise ValueError(f"only {len(good)} finite inner-face landmarks; at least 6 are needed to orient a mask")
    return _fitted_rotation(_head_normal_equations(tuple(good)), landmarks_px[good])


def _fitted_rotation(equations: tuple[np.ndarray, np.ndarray | None], image_px: np.ndarray) -> np.ndarray:
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
    inverse, det = _symmetric_inverse((m.T @ m)[None])  # normal equations: 3 unknowns
    return m, (inverse[0] if abs(det[0]) > 1e-9 else None)


@lru_cache(maxsize=256)
def _head_normal_equations(landmark_ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
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


def _bend(points: np.ndarray, model_px: np.ndarray, resid: np.ndarray, sigma: float) -> np.ndarray:
    """Move ``points`` by the Gaussian-weighted residuals of the anchors at ``model_px``."""
    if not len(model_px):
        return points
    dx = points[:, 0, None] - model_px[:, 0]  # (N, M), x and y apart (a trailing axis of 2 is slow)
    dy = points[:, 1, None] - model_px[:, 1]
    wts = np.exp(-(dx * dx + dy * dy) / (2 * sigma**2))
    return points + (wts @ resid) / (wts.sum(axis=1, keepdims=True) + 1e-3)


def _clip_to_silhouette(ids: np.ndarray, hull: np.ndarray, normals: np.ndarray, rotation: np.ndarray,
                        margin_px: float) -> None:
    """Zero ``ids`` past the edges of the landmark hull (corners ``hull`` in box pixels, unit outward
    ``normals``) that face the way the face looks.

    A face turned away from the camera shows its profile on the side it looks towards: nose tip,
    lips and chin make the hull's edges there. Nothing of the mask may lie more than ``margin_px``
    beyond those edges (the fabric's physical stand-off); the other edges (towards the ear, under
    the chin) are left alone, as a mask does hang there.
    """
    forward = -rotation[:2, 2]  # image-plane part of the direction the face looks (head -z)
    turn = float(np.hypot(*forward))
    if turn < SILHOUETTE_MIN_TURN or len(hull) < 3:
        return
    front = normals @ (forward / turn) > 0.5
    if not front.any():
        return
    h, w = ids.shape
    ys = np.arange(h, dtype=np.float64)
    # n . (x, y) > n . a + margin, row by row: x above (n_x > 0) or below (n_x < 0) a bound
    lo, hi = np.full(h, -np.inf), np.full(h, np.inf)
    for n, a in zip(normals[front], hull[front]):
        room = n @ a + margin_px - n[1] * ys  # n_x * x must stay <= room
        if n[0] > 1e-12:
            np.minimum(hi, room / n[0], out=hi)
        elif n[0] < -1e-12:
            np.maximum(lo, room / n[0], out=lo)
        else:
            hi[room < 0] = -np.inf  # a horizontal edge: the whole row is out
    xs = np.arange(w, dtype=np.float64)[None, :]
    np.copyto(ids, 0, where=(xs > hi[:, None]) | (xs < lo[:, None]))  # boolean indexing: several times slower


def _visible_runs(lines_px: list[np.ndarray], normals_cam: list[np.ndarray], face_hull: np.ndarray,
                  reach_px: float) -> tuple[np.ndarray, ...]:
    """The parts of each polyline whose head surface faces the camera (normal z < -0.05: an ear loop
    stands off the cheek, so it shows until the surface under it turns edge-on) and that lie within
    ``reach_px`` of the landmarks' hull (corners ``face_hull``; the generic
    head is wider than many real ones: a strap must not float on the background beside the face)."""
    runs = []
    near = None
    if len(face_hull) >= 3 and lines_px:  # all lines at once
        near = _split_rows(distance_outside(np.concatenate(lines_px), face_hull) <= reach_px,
                           [len(line) for line in lines_px])
    for k, (line, n) in enumerate(zip(lines_px, normals_cam)):
        vis = n[:, 2] < -0.05
        if near is not None:
            vis &= near[k]
        if vis.all():  # the common cases without the run search
            runs += [line.copy()] if len(line) >= 2 else []
            continue
        if not vis.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], vis.view(np.int8), [0]])))  # run starts, ends
        runs += [line[a:b].copy() for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()) if b - a >= 2]
    return tuple(runs)


def _split_rows(a: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    """``a`` cut into consecutive runs of rows of the given ``lengths`` (views; ``np.split`` costs
    as much as the bending it follows)."""
    ends = list(itertools.accumulate(lengths))
    return [a[end - n : end] for n, end in zip(lengths, ends)]


def _symmetric_inverse(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _affine_plane(cx: np.ndarray, cy: np.ndarray, c1: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``cx * x + cy * y + c1`` per pixel from the gathered (h, w) float32 coefficients, in place."""
    cx *= xs
    cy *= ys
    cx += cy
    cx += c1
    return cx


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


@lru_cache(maxsize=1)
def _generic_jaw_normals() -> np.ndarray:
    """Outward surface normals of the generic head at the jaw landmarks and then at the jaw's top
    points (:data:`JAW_LANDMARKS` + :data:`EAR_LANDMARKS`, head frame)."""
    head = generic_head()
    return head.normals(head.landmarks_mm[JAW_LANDMARKS + EAR_LANDMARKS])


@lru_cache(maxsize=1)
def _front_winding_sign() -> float:
    """Sign of the projected triangle area for triangles seen from the front (frontal pose)."""
    surf = surface("surgical")
    mid = len(surf.triangles) // 4
    tri = surf.triangles[mid]
    p = surf.vertices_mm[tri][:, :2]
    signed = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])
    return float(np.sign(signed))
