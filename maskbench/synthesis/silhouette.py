"""Where a face turned away from the camera ends (step 4 of :mod:`maskbench.synthesis.fitting`).

Its profile as the landmarks draw it, the mask clipped to it, and the visible runs of a strap."""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from maskbench.geometry import distance_outside

#: The silhouette clip starts once the face turns this far from the camera (sine of the angle, about
#: 17 degrees). Chosen by eye on dev-half profiles (commit 5b5501c); not fitted.
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


def clip_to_silhouette(ids: np.ndarray, hull: np.ndarray, normals: np.ndarray, rotation: np.ndarray,
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


def visible_runs(lines_px: list[np.ndarray], normals_cam: list[np.ndarray], face_hull: np.ndarray,
                  reach_px: float) -> tuple[np.ndarray, ...]:
    """The parts of each polyline whose head surface faces the camera (normal z < -0.05: an ear loop
    stands off the cheek, so it shows until the surface under it turns edge-on) and that lie within
    ``reach_px`` of the landmarks' hull (corners ``face_hull``; the generic
    head is wider than many real ones: a strap must not float on the background beside the face)."""
    runs = []
    near = None
    if len(face_hull) >= 3 and lines_px:  # all lines at once
        near = split_rows(distance_outside(np.concatenate(lines_px), face_hull) <= reach_px,
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


def split_rows(a: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    """``a`` cut into consecutive runs of rows of the given ``lengths`` (views; ``np.split`` costs
    as much as the bending it follows)."""
    ends = list(itertools.accumulate(lengths))
    return [a[end - n : end] for n, end in zip(lengths, ends)]
