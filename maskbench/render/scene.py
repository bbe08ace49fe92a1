"""Cameras and the image renderer for the procedural head.

Two cameras: a pinhole camera (BIWI: intrinsics K, perspective) and a scaled orthographic camera
(300W_LP / AFLW2000: ``u = s * X + cx``, ``v = s * Y + cy`` in camera mm, which is the projection
model of the 3DDFA labels). Both use the OpenCV camera frame of :mod:`maskbench.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskbench import geometry
from maskbench.render.head import Head


@dataclass(frozen=True)
class Camera:
    """Image size and projection. ``ortho_scale_px_per_mm`` set = orthographic, else pinhole K."""

    width_px: int
    height_px: int
    camera_matrix: np.ndarray
    ortho_scale_px_per_mm: float | None = None

    def project(self, points_camera_mm: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) pixels."""
        if self.ortho_scale_px_per_mm is None:
            return geometry.project_points(points_camera_mm, self.camera_matrix)
        k = self.camera_matrix
        return points_camera_mm[:, :2] * self.ortho_scale_px_per_mm + [k[0, 2], k[1, 2]]

    def rays(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame ray origins and unit directions through pixel centres (u, v)."""
        k = self.camera_matrix
        if self.ortho_scale_px_per_mm is None:
            d = np.column_stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)])
            return np.zeros_like(d), d / np.linalg.norm(d, axis=1, keepdims=True)
        s = self.ortho_scale_px_per_mm
        o = np.column_stack([(u - k[0, 2]) / s, (v - k[1, 2]) / s, np.full_like(u, -2000.0)])
        return o, np.tile([0.0, 0.0, 1.0], (len(u), 1))


#: Stride (px) of the coarse silhouette pass of :func:`render`.
COARSE = 4


@dataclass(frozen=True)
class Render:
    """A rendered image with its exact labels."""

    image_bgr: np.ndarray
    landmarks_px: np.ndarray  # (68, 2)
    landmarks_camera_mm: np.ndarray  # (68, 3)
    head_mask: np.ndarray  # (H, W) bool, pixels covered by the head surface
    landmarks_visible: np.ndarray  # (68,) bool, the landmark is the first surface point on its ray


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A varied seeded background: gradient, soft blobs and a few rectangles (BGR uint8)."""
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    g = (np.cos(ang) * xx / width + np.sin(ang) * yy / height + 1) / 2
    img = c0 * (1 - g[..., None]) + c1 * g[..., None]
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.5) * height
        color = rng.uniform(20, 235, 3)
        if rng.random() < 0.5:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), color.tolist(), -1)
        else:
            cv2.ellipse(img, (int(x0), int(y0)), (int(w / 2), int(h / 2)), rng.uniform(0, 180), 0, 360, color.tolist(), -1)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    img += rng.normal(0, 3.0, img.shape)
    return np.clip(img, 0, 255)


def _candidate_pixels(head: Head, r: np.ndarray, t: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) worth a ray: inside the projected bounding sphere, within two coarse
    cells of a hit of the coarse pass."""
    # Only cast rays inside the projected bounding sphere.
    h_px, w_px = camera.height_px, camera.width_px
    center_cam = r @ Head.BOUND_CENTER + t
    corners = center_cam + Head.BOUND_RADIUS * np.array([[-1, -1, 0], [1, 1, 0], [-1, 1, 0], [1, -1, 0]], float)
    if camera.ortho_scale_px_per_mm is None:
        corners[:, 2] = max(center_cam[2] - Head.BOUND_RADIUS, 1.0)
    uv = camera.project(corners)
    u0, v0 = np.clip(np.floor(uv.min(axis=0)), 0, [w_px - 1, h_px - 1]).astype(int)
    u1, v1 = np.clip(np.ceil(uv.max(axis=0)), 0, [w_px - 1, h_px - 1]).astype(int)
    # Coarse pass every COARSE px finds the silhouette; the full-resolution pass casts only the
    # pixels within two coarse cells of a coarse hit.
    vv, uu = np.mgrid[v0 : v1 + 1 : COARSE, u0 : u1 + 1 : COARSE]
    o_cam, d_cam = camera.rays(uu.ravel().astype(np.float64), vv.ravel().astype(np.float64))
    coarse_hit, _ = head.cast((o_cam - t) @ r, d_cam @ r)
    grid = np.zeros((h_px, w_px), dtype=np.uint8)
    grid[vv.ravel()[coarse_hit], uu.ravel()[coarse_hit]] = 1
    grid = cv2.dilate(grid, np.ones((4 * COARSE + 1, 4 * COARSE + 1), np.uint8))
    v_idx, u_idx = np.nonzero(grid)
    u, v = u_idx.astype(np.float64), v_idx.astype(np.float64)
    return u, v


def render(
    head: Head,
    rotation: np.ndarray,
    translation_mm: np.ndarray,
    camera: Camera,
    rng: np.random.Generator,
) -> Render:
    """Render ``head`` at pose ``(rotation, translation_mm)`` (head -> camera) with ``camera``.

    ``rng`` draws the background, the light direction and the sensor noise, so the same generator
    state gives the same bytes.
    """
    h_px, w_px = camera.height_px, camera.width_px
    img = background(rng, w_px, h_px)
    light_cam = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.1), -1.0])
    light_cam /= np.linalg.norm(light_cam)
    ambient = rng.uniform(0.35, 0.5)

    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation_mm, dtype=np.float64)
    u, v = _candidate_pixels(head, r, t, camera)
    o_cam, d_cam = camera.rays(u, v)
    o_head, d_head = (o_cam - t) @ r, d_cam @ r  # R^T applied to row vectors
    hit, pts = head.cast(o_head, d_head)
    mask = np.zeros((h_px, w_px), dtype=bool)
    if hit.any():
        p = pts[hit]
        n_head = head.normals(p)
        n_cam = n_head @ r.T
        lambert = np.clip(-(n_cam @ light_cam), 0.0, 1.0)
        view = -d_cam[hit]
        half = view - light_cam
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec = np.clip(np.einsum("ij,ij->i", n_cam, half), 0, 1) ** 24 * 40.0
        shade = ambient + (1 - ambient) * lambert
        color = head.albedo(p, n_head) * shade[:, None] + spec[:, None]
        img[v[hit].astype(int), u[hit].astype(int)] = color
        mask[v[hit].astype(int), u[hit].astype(int)] = True
    # soften the silhouette a little (anti-aliasing stand-in) and add sensor noise
    soft = cv2.GaussianBlur(img, (0, 0), 0.6)
    img = np.clip(soft + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    lm_cam = head.landmarks_mm @ r.T + t
    lm_px = camera.project(lm_cam)
    return Render(img, lm_px, lm_cam, mask, landmark_visibility(head, r, t, camera, lm_px))


def landmark_visibility(head: Head, rotation: np.ndarray, translation_mm: np.ndarray, camera: Camera,
                        landmarks_px: np.ndarray, tolerance_mm: float = 1.5) -> np.ndarray:
    """(68,) bool: a landmark is visible when the camera ray through it first meets the surface there."""
    o_cam, d_cam = camera.rays(landmarks_px[:, 0], landmarks_px[:, 1])
    hit, pts = head.cast((o_cam - translation_mm) @ rotation, d_cam @ rotation, max_steps=300)
    return hit & (np.linalg.norm(pts - head.landmarks_mm, axis=1) < tolerance_mm)
