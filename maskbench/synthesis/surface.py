"""The mask's 3D surface on the generic head (step 1 of :mod:`maskbench.synthesis.fitting`) and its strap paths."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from maskbench.render.head import Head
from maskbench.synthesis.landmarks import generic_head
from maskbench.synthesis.templates import load

GRID_U, GRID_V = 25, 13


#: Where straps end on the generic head (head frame, mm; x sign chosen per side): an ear loop runs
#: to the root of the ear above and below (it then passes behind the ear, out of sight); a head
#: strap passes above and below the ear towards the back of the head.
STRAP_ENDS_MM = {"ear_loop": ((68.0, -30.0, 6.0), (66.0, 16.0, 6.0)),
                 "head_strap": ((70.0, -48.0, 45.0), (62.0, 34.0, 40.0))}

STRAP_POINTS = 24


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


def hull_edges(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    hull, normals = hull_edges(np.vstack([points_xz, [[0.0, 0.0]]]))
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
