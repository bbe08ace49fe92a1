"""A procedural 3D head, ray-cast in numpy, with exact 68-point landmarks.

The head is a signed-distance function (SDF) in the maskbench head frame (mm; x towards the
subject's left ear, y towards the chin, z towards the back of the head; origin at the head centre,
see :mod:`maskbench.geometry`): cranium, face, jaw, nose, brow ridge, cheeks, lips, ears and a
neck, joined with smooth unions. Eyes, brows, lips, nostrils and hair are painted from the same
parameters that place the landmarks, so landmark 36 really is the outer corner of a painted eye.

Landmarks follow the iBUG 68-point scheme (0-16 jaw from the subject's right ear to the left,
17-26 brows, 27-35 nose, 36-47 eyes, 48-67 lips; "right" is the subject's right, image left when
frontal). Each is a point on the surface: front-facing points are where a ray travelling along
+z (head frame) at their design (x, y) first meets the surface; jaw points are design points
pulled onto the surface along the SDF gradient.

Nothing here is learned or copied from a face model: all shapes are hand-set ellipsoids and
capsules with anthropometric sizes (head breadth ~150 mm, face height ~120 mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maskbench.geometry import inside_polygon, polyline_distance

#: The point of the generic head (head frame, mm) that BIWI's labels call the head centre. BIWI's
#: centre is the centroid of the subject's face template (a frontal scan), so it sits in front of
#: the skull centre the SDF is built around: z -77 mm is where the centroid of the generic face's
#: front surface lies (cheek to cheek, brow to chin: -77.0 mm); y +23 mm (towards the chin) was
#: measured on the real fixture frame 01/00003 (least squares of the posed generic landmarks against
#: dlib's 68 points, which also gave z -77.4). With it the posed landmarks sit a median 4.1 px from
#: dlib's on that frame (10.8 px with the skull centre). Sample BIWI data stores this point as its head
#: centre too, so renders and real frames follow one convention.
BIWI_HEAD_CENTER_MM = np.array([0.0, 23.0, -77.0])

# ---------------------------------------------------------------------------------------------
# SDF primitives (vectorised over (N, 3) points)
# ---------------------------------------------------------------------------------------------


def _ellipsoid(p: np.ndarray, center: tuple[float, float, float], radii: tuple[float, float, float]) -> np.ndarray:
    # p is (3, N): columns are split once by the caller, which avoids np.linalg.norm reductions
    qx, qy, qz = (p[0] - center[0]) / radii[0], (p[1] - center[1]) / radii[1], (p[2] - center[2]) / radii[2]
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
    k1 = np.sqrt((qx / radii[0]) ** 2 + (qy / radii[1]) ** 2 + (qz / radii[2]) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _capsule(p: np.ndarray, a: tuple[float, float, float], b: tuple[float, float, float], radius: float) -> np.ndarray:
    bx, by, bz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    px, py, pz = p[0] - a[0], p[1] - a[1], p[2] - a[2]
    h = np.clip((px * bx + py * by + pz * bz) / (bx * bx + by * by + bz * bz), 0.0, 1.0)
    dx, dy, dz = px - h * bx, py - h * by, pz - h * bz
    return np.sqrt(dx * dx + dy * dy + dz * dz) - radius


def _smooth_union(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 * (1 - h) + d1 * h - k * h * (1 - h)


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------

SKIN_TONES_BGR = np.array(
    [[180, 200, 235], [150, 180, 225], [120, 160, 210], [95, 130, 185], [70, 100, 150], [50, 70, 110]], dtype=np.float64
)
HAIR_BGR = np.array([[20, 20, 25], [30, 45, 70], [40, 70, 120], [90, 140, 190], [150, 150, 150], [15, 30, 45]], float)
IRIS_BGR = np.array([[60, 40, 20], [40, 70, 90], [120, 90, 40], [50, 90, 60]], dtype=np.float64)


@dataclass(frozen=True)
class Identity:
    """Shape and colour parameters of one procedural person (all lengths in mm)."""

    width_scale: float
    height_scale: float
    nose_length_mm: float
    eye_spacing_mm: float
    mouth_width_mm: float
    skin_bgr: tuple[float, float, float]
    hair_bgr: tuple[float, float, float]
    iris_bgr: tuple[float, float, float]
    lip_bgr: tuple[float, float, float]
    hairline_mm: float
    hair_back_mm: float
    brow_thickness_mm: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> Identity:
        skin = SKIN_TONES_BGR[rng.integers(len(SKIN_TONES_BGR))] * rng.uniform(0.92, 1.08, 3)
        lip = skin * np.array([0.75, 0.7, 1.0]) * rng.uniform(0.8, 0.95)
        return cls(
            width_scale=float(rng.uniform(0.92, 1.08)),
            height_scale=float(rng.uniform(0.94, 1.06)),
            nose_length_mm=float(rng.uniform(20.0, 30.0)),
            eye_spacing_mm=float(rng.uniform(29.0, 35.0)),
            mouth_width_mm=float(rng.uniform(22.0, 28.0)),
            skin_bgr=tuple(np.clip(skin, 0, 255)),
            hair_bgr=tuple(HAIR_BGR[rng.integers(len(HAIR_BGR))] * rng.uniform(0.85, 1.15)),
            iris_bgr=tuple(IRIS_BGR[rng.integers(len(IRIS_BGR))]),
            lip_bgr=tuple(np.clip(lip, 0, 255)),
            hairline_mm=float(rng.uniform(-62.0, -48.0)),
            hair_back_mm=float(rng.uniform(10.0, 70.0)),
            brow_thickness_mm=float(rng.uniform(3.5, 6.0)),
        )

    @classmethod
    def average(cls) -> Identity:
        """A fixed, middle-of-the-range person (used for templates and tests)."""
        return cls(1.0, 1.0, 25.0, 32.0, 25.0, (120, 160, 210), (30, 45, 70), (60, 40, 20), (90, 110, 190), -55.0, 40.0, 4.5)


# ---------------------------------------------------------------------------------------------
# The head
# ---------------------------------------------------------------------------------------------

#: Design (x, y) of the 68 landmarks for the average identity, subject's right = negative x.
_BROWS = [(-52, -30), (-43, -37), (-32, -40), (-21, -39), (-11, -35)]
_EYE_R = [(-47, -15), (-39, -20), (-26, -20), (-17, -14), (-26, -10.5), (-39, -10.5)]
_NOSE_BRIDGE = [(0, -22), (0, -8), (0, 6), (0, 20)]
_NOSE_LOW = [(-14, 29), (-7, 32), (0, 34), (7, 32), (14, 29)]
_LIPS_OUT = [(-25, 61), (-16, 54), (-7, 51), (0, 52), (7, 51), (16, 54), (25, 61), (16, 68), (7, 71), (0, 72),
             (-7, 71), (-16, 68)]
_LIPS_IN = [(-21, 61), (-8, 59), (0, 59), (8, 59), (21, 61), (8, 63), (0, 64), (-8, 63)]

#: Index permutation of the 68 landmarks under a left-right mirror of the face.
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


_DETAIL_MM = 12.0


class Head:
    """SDF + painter + landmarks of one identity. Coordinates: head frame, mm."""

    #: Bounding sphere (centre, radius) that contains the head and the visible part of the neck.
    BOUND_CENTER = np.array([0.0, 40.0, 10.0])
    BOUND_RADIUS = 210.0

    def __init__(self, identity: Identity, ears: bool = True) -> None:
        self.identity = identity
        self.ears = ears
        self.sx, self.sy = identity.width_scale, identity.height_scale
        self.landmarks_mm = self._place_landmarks()

    # -- shape --------------------------------------------------------------------------------
    def sdf(self, p_mm: np.ndarray) -> np.ndarray:
        """Signed distance bound (mm) of (N, 3) head-frame points; negative inside.

        Far from the head a cheap bounding sphere / neck capsule gives the (smaller, hence safe)
        distance; the detailed shape is evaluated only within ``_DETAIL_MM`` of it.
        """
        scale = max(self.sx, self.sy)
        pt = np.ascontiguousarray(p_mm.T)
        bound = np.minimum(
            np.sqrt(pt[0] ** 2 + (pt[1] + 5.0) ** 2 + (pt[2] + 5.0) ** 2) - 150.0 * scale,
            _capsule(pt, (0, 70 * self.sy, 18), (0, 230 * self.sy, 32), 62 * scale),
        )
        near = bound < _DETAIL_MM
        if near.all():
            return self._sdf_detail(pt)
        out = bound.copy()
        if near.any():
            out[near] = self._sdf_detail(pt[:, near])
        return out

    def _sdf_detail(self, p_mm: np.ndarray) -> np.ndarray:
        """Detailed SDF of (3, N) points."""
        i = self.identity
        p = p_mm / np.array([[self.sx], [self.sy], [1.0]])
        d = _ellipsoid(p, (0, -25, 12), (76, 98, 100))  # cranium
        d = _smooth_union(d, _ellipsoid(p, (0, 22, -22), (64, 82, 72)), 22)  # face and jaw
        d = _smooth_union(d, _ellipsoid(p, (0, 82, -38), (34, 28, 40)), 16)  # chin
        d = _smooth_union(d, _ellipsoid(p, (0, -32, -80), (54, 11, 16)), 9)  # brow ridge
        for sx in (-1, 1):
            d = _smooth_union(d, _ellipsoid(p, (sx * 38, 15, -68), (24, 22, 22)), 14)  # cheeks
            if self.ears:
                d = _smooth_union(d, _ellipsoid(p, (sx * 76, -8, 14), (9, 30, 17)), 5)
        tip_y = -20 + i.nose_length_mm * 1.6
        nose = _capsule(p, (0, -22, -91), (0, tip_y, -115), 7.5)
        nose = np.minimum(nose, _ellipsoid(p, (0, tip_y + 4, -104), (15, 9, 12)))
        d = _smooth_union(d, nose, 7)
        d = _smooth_union(d, _ellipsoid(p, (0, 62, -88), (26, 12, 10)), 6)  # lips
        neck = _capsule(p, (0, 70, 18), (0, 230, 32), 54)
        d = _smooth_union(d, neck, 18)
        return d * min(self.sx, self.sy)

    def normals(self, p_mm: np.ndarray, eps: float = 0.25) -> np.ndarray:
        """Unit outward normals by central differences of the SDF."""
        grads = []
        for axis in range(3):
            off = np.zeros(3)
            off[axis] = eps
            grads.append(self.sdf(p_mm + off) - self.sdf(p_mm - off))
        n = np.stack(grads, axis=1)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def cast(self, origins: np.ndarray, directions: np.ndarray, max_steps: int = 96) -> tuple[np.ndarray, np.ndarray]:
        """Sphere-trace rays (head frame). Returns (hit mask (N,), hit points (N, 3))."""
        n = len(origins)
        oc = origins - self.BOUND_CENTER
        b = np.einsum("ij,ij->i", oc, directions)
        c = np.einsum("ij,ij->i", oc, oc) - self.BOUND_RADIUS**2
        disc = b * b - c
        t = np.maximum(-b - np.sqrt(np.maximum(disc, 0)), 0.0)
        t_far = -b + np.sqrt(np.maximum(disc, 0))
        active = np.flatnonzero(disc > 0)
        hit = np.zeros(n, dtype=bool)
        for _ in range(max_steps):
            if active.size == 0:
                break
            pts = origins[active] + t[active, None] * directions[active]
            d = self.sdf(pts)
            done = d < 0.05
            hit[active[done]] = True
            t[active] += np.where(done, 0.0, 0.9 * np.maximum(d, 0.02))
            keep = (~done) & (t[active] < t_far[active])
            active = active[keep]
        return hit, origins + t[:, None] * directions

    def surface_along_z(self, xy_mm: np.ndarray) -> np.ndarray:
        """First surface points met by rays travelling along +z at the given (x, y) (head frame)."""
        xy = np.asarray(xy_mm, dtype=np.float64)
        origins = np.column_stack([xy, np.full(len(xy), -260.0)])
        dirs = np.tile([0.0, 0.0, 1.0], (len(xy), 1))
        hit, pts = self.cast(origins, dirs, max_steps=400)
        if not hit.all():
            raise RuntimeError("a front landmark ray missed the head surface")
        return self._refine(pts)

    def _refine(self, pts: np.ndarray, iters: int = 8) -> np.ndarray:
        """Pull points onto the zero level set along the gradient (Newton steps)."""
        for _ in range(iters):
            pts = pts - self.sdf(pts)[:, None] * self.normals(pts)
        return pts

    # -- landmarks ----------------------------------------------------------------------------
    def design_xy(self) -> dict[str, np.ndarray]:
        """Design (x, y) of the face features for this identity (mm, head frame)."""
        i = self.identity
        scale = np.array([self.sx, self.sy])
        eye_shift = i.eye_spacing_mm - 32.0
        eye_r = np.array(_EYE_R, float) + [-eye_shift, 0]
        eye_l = eye_r[[3, 2, 1, 0, 5, 4]] * [-1, 1]
        brow_r = np.array(_BROWS, float) + [-eye_shift, 0]
        brow_l = brow_r[::-1] * [-1, 1]
        mouth_k = i.mouth_width_mm / 25.0
        lips_out = np.array(_LIPS_OUT, float) * [mouth_k, 1]
        lips_in = np.array(_LIPS_IN, float) * [mouth_k, 1]
        tip_y = -20 + i.nose_length_mm * 1.6
        bridge = np.array(_NOSE_BRIDGE, float)
        bridge[:, 1] = np.linspace(-22, tip_y - 4, 4)
        nose_low = np.array(_NOSE_LOW, float) + [0, tip_y - 24]
        return {
            "brow_r": brow_r * scale, "brow_l": brow_l * scale, "eye_r": eye_r * scale, "eye_l": eye_l * scale,
            "bridge": bridge * scale, "nose_low": nose_low * scale, "lips_out": lips_out * scale,
            "lips_in": lips_in * scale,
        }

    def _place_landmarks(self) -> np.ndarray:
        f = self.design_xy()
        jaw_guess = []
        for k in range(17):
            phi = math.pi * k / 16.0  # 0 at the subject's right ear, pi/2 at the chin
            x = -70.0 * math.cos(phi) * self.sx
            y = (-8.0 + 114.0 * math.sin(phi) ** 0.85) * self.sy
            z = -8.0 - 95.0 * math.sin(phi) ** 1.5
            jaw_guess.append((x, y, z))
        jaw = self._refine(np.array(jaw_guess), iters=20)
        front = np.concatenate([f["brow_r"], f["brow_l"], f["bridge"], f["nose_low"], f["eye_r"], f["eye_l"],
                                f["lips_out"], f["lips_in"]])
        return np.concatenate([jaw, self.surface_along_z(front)])

    # -- appearance ---------------------------------------------------------------------------
    def albedo(self, p: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """BGR albedo (N, 3) in [0, 255] of surface points (head frame)."""
        i = self.identity
        f = self.design_xy()
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        col = np.tile(np.asarray(i.skin_bgr, float), (len(p), 1))
        # subtle skin variation so surfaces are not flat colour
        col *= (1.0 + 0.03 * np.sin(x * 0.31) * np.cos(y * 0.27 + z * 0.13))[:, None]
        front = z < -40
        # lips: inside the outer-lip polygon, darker line between the inner lips
        lips = front & inside_polygon(p[:, :2], f["lips_out"])
        col[lips] = i.lip_bgr
        col[front & inside_polygon(p[:, :2], f["lips_in"])] = np.asarray(i.lip_bgr) * 0.35
        # nostrils
        low = f["nose_low"]
        for cx in (low[1, 0], low[3, 0]):
            m = front & (((x - cx) / 3.5) ** 2 + ((y - low[1, 1] + 1.5) / 2.2) ** 2 < 1.0)
            col[m] = np.asarray(i.skin_bgr) * 0.25
        # eyes: sclera polygon, iris and pupil discs
        for eye in (f["eye_r"], f["eye_l"]):
            inside = front & inside_polygon(p[:, :2], eye)
            col[inside] = (235, 240, 240)
            c = eye.mean(axis=0)
            r2 = (x - c[0]) ** 2 + (y - c[1]) ** 2
            col[inside & (r2 < 5.2**2)] = i.iris_bgr
            col[inside & (r2 < 2.4**2)] = (15, 15, 15)
            # upper lid line
            lid = front & ~inside & inside_polygon(p[:, :2], eye + [0, -1.6]) & (y < c[1])
            col[lid] = (30, 30, 35)
        # brows: thick polyline
        for brow in (f["brow_r"], f["brow_l"]):
            col[front & (polyline_distance(p[:, :2], brow) < i.brow_thickness_mm / 2)] = np.asarray(i.hair_bgr) * 0.9
        # hair: above the hairline in front, down to hair_back_mm at the back, not on the face
        hair_limit = np.interp(z, [-120, -60, 0, 120], [i.hairline_mm, i.hairline_mm, -20, i.hair_back_mm])
        ears = np.abs(x) > 68 * self.sx
        hair = (y < hair_limit) & ~(ears & (y > -40)) & (y < 80)
        shade = 1.0 + 0.12 * np.sin(x * 0.9 + y * 0.4)
        col[hair] = np.asarray(i.hair_bgr) * shade[hair, None]
        return np.clip(col, 0, 255)
