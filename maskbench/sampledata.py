"""Embedded sample data: procedural heads rendered at known poses, in each native layout.

``make_sample_dataset("AFLW2000", out, n=24, seed=0)`` writes a tree that the AFLW2000 reader
reads like the real thing, plus ``labels.csv`` and ``manifest.json``. Labels are exact: the pose is
the rotation the head was rendered with, and the 68 landmarks are the projections of 3D points on
the rendered surface (see :mod:`maskbench.render.head`).

Per dataset:

* ``BIWI``: 640x480 pinhole camera (f = 517.7 px, the BIWI RGB intrinsics), head centre 750-1100 mm
  away, one identity per sequence folder, ``rgb.cal`` with a small depth-to-RGB extrinsic so the
  depth-frame conversion is exercised. Poses: yaw ~ N(0, 35) clipped to +-75, pitch ~ N(0, 20)
  clipped to +-60, roll ~ N(0, 12) clipped to +-50 (degrees).
* ``300W_LP``: 450x450 scaled-orthographic camera (the 3DDFA projection model), subsets AFW, HELEN,
  IBUG, LFPW and their ``_Flip`` mirrors (a mirror is the original image flipped, with landmarks
  re-indexed and yaw/roll negated). Yaw ~ U(-90, 90), pitch ~ N(0, 15) clipped +-45, roll ~ N(0, 10)
  clipped +-40. ``landmarks/<subset>/<name>_pts.mat`` files are written too.
* ``AFLW2000``: 450x450 orthographic, yaw ~ U(-90, 90), pitch ~ N(0, 18), roll ~ N(0, 12); one
  sample in twenty (``image00007``, ``image00027``, ...) has |pitch| in [100, 110] so that the
  99-degree protocol filter has something to drop, as in the real set (31 of 2000), in any tree of
  8 or more samples.

Identities are drawn per (dataset, person key), so two formats rendered with one seed share no
person: the sample AFLW2000 test faces are not the sample 300W_LP training faces.

``Pose_Para[3:]`` of the 3DDFA formats holds ``tx = cx``, ``ty = H - 1 - cy``, ``tz = 0`` and the
scale in px/mm (the real files use px per 3DMM unit); readers do not use these values.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskbench import geometry
from maskbench.datasets import biwi, threeddfa
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, label_matrix
from maskbench.datasets.registry import get_format
from maskbench.identity import SOURCE_SHA_COLUMN, source_sha256
from maskbench.io.writer import VariantWriter
from maskbench.progress import progress_bar
from maskbench.render.head import BIWI_HEAD_CENTER_MM, MIRROR_68, Head, Identity
from maskbench.render.scene import Camera, Render, render
from maskbench.seeding import sample_rng
from maskbench.splits import DEFAULT_RULE, SplitRule
from maskbench.types import BBox, HeadPose, Sample

DATASETS = ("BIWI", "300W_LP", "AFLW2000")
W300LP_SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
BIWI_K = np.array([[517.679, 0.0, 320.0], [0.0, 517.679, 240.5], [0.0, 0.0, 1.0]])
BIWI_DEPTH_K = np.array([[575.816, 0.0, 320.0], [0.0, 575.816, 240.0], [0.0, 0.0, 1.0]])

#: AFLW 21-point scheme from the iBUG 68 (index lists are averaged; None = not derivable: ears).
AFLW21_FROM_68: list[list[int] | None] = [
    [17], [19], [21], [22], [24], [26], [36], [37, 38, 40, 41], [39], [42], [43, 44, 46, 47], [45],
    None, [31], [30], [35], None, [48], [62, 66], [54], [8],
]


def aflw21_from_68(landmarks_px: np.ndarray) -> np.ndarray:
    """(21, 2) AFLW points derived from (68, 2) iBUG points; ears are NaN (unlabelled)."""
    out = np.full((21, 2), np.nan)
    for k, idx in enumerate(AFLW21_FROM_68):
        if idx is not None:
            out[k] = landmarks_px[idx].mean(axis=0)
    return out


@dataclass(frozen=True)
class PlannedSample:
    """What to render for one sample id."""

    sample_id: str
    identity_key: str
    mirror_of: str | None = None
    beyond_protocol: bool = False  # AFLW2000: a pitch over 99 degrees, for the protocol filter


def _clipped_normal(rng: np.random.Generator, sigma: float, limit: float) -> float:
    return float(np.clip(rng.normal(0.0, sigma), -limit, limit))


def sample_pose(dataset: str, rng: np.random.Generator, beyond_protocol: bool = False) -> HeadPose:
    """Draw a pose from the dataset's typical range (see the module docstring); ``beyond_protocol``
    (AFLW2000): |pitch| in [100, 110] degrees."""
    if dataset == "BIWI":
        return HeadPose.from_euler_deg(
            yaw_deg=_clipped_normal(rng, 35, 75), pitch_deg=_clipped_normal(rng, 20, 60),
            roll_deg=_clipped_normal(rng, 12, 50),
        )
    if dataset == "300W_LP":
        return HeadPose.from_euler_deg(
            yaw_deg=float(rng.uniform(-90, 90)), pitch_deg=_clipped_normal(rng, 15, 45),
            roll_deg=_clipped_normal(rng, 10, 40),
        )
    pitch = _clipped_normal(rng, 18, 60)
    if beyond_protocol:
        pitch = float(math.copysign(rng.uniform(100, 110), rng.normal()))
    return HeadPose.from_euler_deg(
        yaw_deg=float(rng.uniform(-89, 89)), pitch_deg=pitch, roll_deg=_clipped_normal(rng, 12, 45)
    )


def biwi_sequences(n_seq: int, split: SplitRule = DEFAULT_RULE) -> list[str]:
    """The BIWI sequence names of ``n_seq`` sample people: training and test sequences of ``split``
    taken in the ratio 2:1 (train, test, train, train, test, ...), so that a sample tree split by
    subject has people on both sides, as the real one does."""
    if split.by != "subject":
        return [f"{k + 1:02d}" for k in range(n_seq)]
    pools = {"train": split.sequences("train"), "test": split.sequences("test")}
    names = []
    for k in range(n_seq):
        side = "test" if k % 3 == 1 and pools["test"] else "train"
        names.append(pools[side].pop(0))
    return names


def plan(dataset: str, n: int, split: SplitRule = DEFAULT_RULE) -> list[PlannedSample]:
    """Sample ids (in the native naming) and which identity each one shows (a BIWI sequence name is
    its person: :func:`biwi_sequences` under ``split``)."""
    if dataset == "BIWI":
        seqs = biwi_sequences(max(1, min(6, n // 4)), split)
        return [PlannedSample(f"{seqs[k % len(seqs)]}/frame_{k // len(seqs) + 3:05d}", seqs[k % len(seqs)])
                for k in range(n)]
    if dataset == "300W_LP":
        n_orig = (n + 1) // 2
        originals = [
            PlannedSample(f"{W300LP_SUBSETS[k % 4]}/{W300LP_SUBSETS[k % 4]}_sample{k:05d}_1_0", f"p{k}")
            for k in range(n_orig)
        ]
        flips = [
            PlannedSample(p.sample_id.replace("/", "_Flip/", 1), p.identity_key, mirror_of=p.sample_id)
            for p in originals[: n - n_orig]
        ]
        # each mirror right after its original, so the original's render is reused (see _render_scene)
        out: list[PlannedSample] = []
        for k, p in enumerate(originals):
            out += [p, flips[k]] if k < len(flips) else [p]
        return out
    if dataset == "AFLW2000":
        return [PlannedSample(f"image{k:05d}", f"p{k}", beyond_protocol=k % 20 == 7) for k in range(n)]
    raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one (non-mirrored) sample: person, camera, pose, position."""

    head: Head
    camera: Camera
    pose: HeadPose
    translation_mm: np.ndarray


def identity_for(dataset: str, identity_key: str, seed: int) -> Identity:
    """The person of an identity key in one dataset: drawn from (seed, dataset, key), so no person
    appears in two formats rendered with the same seed."""
    return Identity.random(sample_rng(seed, f"{dataset}/{identity_key}", "identity"))


def scene_for(dataset: str, planned: PlannedSample, seed: int, scale: float = 1.0) -> Scene:
    """The scene of a planned sample (for a ``_Flip`` sample: the scene of its original).

    ``scale`` shrinks (or enlarges) the image: sizes, focal length, principal point and the
    orthographic px/mm all multiply by it, so the same person is seen at the same pose, smaller.
    """
    key = planned.mirror_of or planned.sample_id
    rng = sample_rng(seed, key, "camera")
    head = Head(identity_for(dataset, planned.identity_key, seed))
    drawn = sample_pose(dataset, sample_rng(seed, key, "pose"), planned.beyond_protocol)
    if dataset == "BIWI":
        t = np.array([rng.uniform(-120, 120), rng.uniform(-60, 80), rng.uniform(750, 1100)])
        return Scene(head, Camera(round(640 * scale), round(480 * scale), scaled_k(BIWI_K, scale)), drawn, t)
    # quantise to the float32 Pose_Para the file will hold, so the render matches its label
    para_rad = np.asarray(geometry.matrix_to_3ddfa_rad(drawn.matrix)).astype(np.float32)
    pose = HeadPose(geometry.matrix_from_3ddfa(*(float(v) for v in para_rad)))
    px_per_mm = float(rng.uniform(1.15, 1.45)) * scale
    cx, cy = (224.5 + float(rng.uniform(-15, 15))) * scale, (234.5 + float(rng.uniform(-15, 15))) * scale
    size = round(450 * scale)
    camera = Camera(size, size, np.array([[1.0, 0, cx], [0, 1.0, cy], [0, 0, 1]]), px_per_mm)
    return Scene(head, camera, pose, np.array([0.0, 0.0, 1000.0]))


def scaled_k(camera_matrix: np.ndarray, scale: float) -> np.ndarray:
    """Intrinsics of the same camera with its image resized by ``scale``."""
    k = np.array(camera_matrix, dtype=np.float64)
    k[:2] *= scale
    return k


@lru_cache(maxsize=2)
def _render_scene(dataset: str, planned: PlannedSample, seed: int, scale: float) -> tuple[Scene, Render]:
    """Scene and render of an original sample; cached so that a ``_Flip`` mirror reuses its original's."""
    scene = scene_for(dataset, planned, seed, scale)
    out = render(scene.head, scene.pose.matrix, scene.translation_mm, scene.camera,
                 sample_rng(seed, planned.sample_id, "render"))
    out.image_bgr.setflags(write=False)  # shared by the original and its mirror
    return scene, out


def _render_3ddfa(dataset: str, planned: PlannedSample, seed: int, image_scale: float) -> tuple[Sample, np.ndarray]:
    """Render a 300W_LP / AFLW2000 sample (orthographic) and build its native ``.mat``."""
    original = planned if planned.mirror_of is None else PlannedSample(planned.mirror_of, planned.identity_key)
    scene, out = _render_scene(dataset, original, seed, image_scale)
    pose, t, scale = scene.pose, scene.translation_mm, scene.camera.ortho_scale_px_per_mm
    size = scene.camera.width_px
    last = size - 1.0
    cx, cy = float(scene.camera.camera_matrix[0, 2]), float(scene.camera.camera_matrix[1, 2])
    image, lm = out.image_bgr, out.landmarks_px
    depth = -(out.landmarks_camera_mm[:, 2] - t[2]) * scale  # towards the viewer, like pt3d_68 z
    if planned.mirror_of is not None:
        image = cv2.flip(image, 1)
        lm = np.column_stack([last - lm[:, 0], lm[:, 1]])[MIRROR_68]
        depth = depth[MIRROR_68]
        pose = HeadPose(geometry.mirrored_rotation(pose.matrix))
        cx = last - cx
    pitch, yaw, roll = geometry.matrix_to_3ddfa_rad(pose.matrix)
    para = np.array([[pitch, yaw, roll, cx, last - cy, 0.0, scale]], dtype=np.float32)
    lm32 = lm.astype(np.float32)
    bbox = BBox.from_points(lm32.astype(np.float64))
    mat: dict[str, Any] = {
        "Pose_Para": para,
        "Shape_Para": np.zeros((199, 1)),
        "Exp_Para": np.zeros((29, 1)),
        "roi": np.array([[bbox.x_min, bbox.y_min, bbox.x_max, bbox.y_max]], dtype=np.int16),
    }
    if dataset == "AFLW2000":
        mat["pt3d_68"] = np.vstack([lm32.T, depth.astype(np.float32)[None]])
        mat["pt2d"] = threeddfa.points_to_rows(aflw21_from_68(lm32.astype(np.float64)), size)
    else:
        mat["pt2d"] = lm32.T.astype(np.float64)
    native: dict[str, Any] = {"mat": mat, "pose_para": para.reshape(-1), "image_height_px": size}
    if dataset == "300W_LP":
        native["landmarks_mat"] = {"pts_2d": lm32.astype(np.float64), "pts_3d": lm32.astype(np.float64)}
    sample = Sample(planned.sample_id, Path(), pose, bbox, lm32.astype(np.float64), native)
    return sample, image


def biwi_calibration(scale: float = 1.0) -> biwi.Calibration:
    """The sample data's ``rgb.cal``: BIWI-like intrinsics, a small depth-to-RGB extrinsic."""
    rot = geometry.orthonormalize(geometry.euler_deg_to_matrix(0.53, -0.86, 0.26))
    return biwi.Calibration(scaled_k(BIWI_K, scale), rot, np.array([-24.0, 5.9, -13.2]),
                            (round(640 * scale), round(480 * scale)))


def _render_biwi(planned: PlannedSample, seed: int, scale: float) -> tuple[Sample, np.ndarray]:
    scene = scene_for("BIWI", planned, seed, scale)
    calib = biwi_calibration(scale)
    out = render(scene.head, scene.pose.matrix, scene.translation_mm, scene.camera,
                 sample_rng(seed, planned.sample_id, "render"))
    center = scene.translation_mm + scene.pose.matrix @ BIWI_HEAD_CENTER_MM  # BIWI's head-centre convention
    sample = Sample(planned.sample_id, Path(), scene.pose, biwi.face_box(center, calib.camera_matrix), None,
                    {"calibration": calib}, camera_matrix=calib.camera_matrix, head_center_mm=center)
    return sample, out.image_bgr


def render_sample(dataset: str, planned: PlannedSample, seed: int, scale: float = 1.0) -> tuple[Sample, np.ndarray]:
    """Render one planned sample: the Sample (labels) and its BGR image (``scale``: see :func:`scene_for`)."""
    if dataset == "BIWI":
        return _render_biwi(planned, seed, scale)
    return _render_3ddfa(dataset, planned, seed, scale)


def _render_job(job: tuple[str, PlannedSample, int, float]) -> tuple[Sample, np.ndarray]:
    return render_sample(*job)


def make_sample_dataset(
    dataset: str, out_dir: str | Path, n: int = 24, seed: int = 0, overwrite: bool = False, progress: bool = True,
    scale: float = 1.0, workers: int = 1, split: SplitRule = DEFAULT_RULE, data_root: str | Path | None = None,
    biwi_labels: str = DEFAULT_BIWI_LABELS,
) -> dict[str, Any]:
    """Render ``n`` samples of ``dataset`` into ``out_dir`` (native layout + labels + manifest).

    ``scale`` < 1 renders smaller images of the same scenes (0.25: BIWI 160x120, 300W_LP and
    AFLW2000 112x112), about 5x faster; used for training runs that must fit in minutes.
    ``workers`` > 1 renders in a process pool; the output bytes do not depend on it. ``split``: the
    train/test rule of the ``split`` column (recorded in the manifest; BIWI is the only drawn one).
    ``out_dir`` may not be or contain ``data_root``, nor be a folder maskbench did not write
    (:class:`~maskbench.io.manifest.VariantWriter`).
    """
    name = {d.upper(): d for d in DATASETS}.get(dataset.upper())
    if name is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if n < 1:
        raise ValueError("n must be at least 1")
    if not 0.05 <= scale <= 4:
        raise ValueError(f"scale must be in [0.05, 4], got {scale}")
    fmt = get_format(name)
    out_dir = Path(out_dir)
    jobs = [(name, planned, seed, scale) for planned in plan(name, n, split)]
    with VariantWriter(out_dir, overwrite=overwrite, data_root=data_root) as writer, contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(workers))
            # chunks of 2 keep a 300W_LP original and its _Flip mirror in one worker (one render)
            rendered: Iterable[tuple[Sample, np.ndarray]] = pool.imap(_render_job, jobs, chunksize=2)
        else:
            rendered = map(_render_job, jobs)
        for sample, image in progress_bar(rendered, total=len(jobs), desc=f"render {name}", unit="img", disable=not progress):
            writer.claim(fmt.output_files(sample))
            fmt.write(writer.write_dir, sample, image)
            written = fmt.read(writer.write_dir, sample.id)  # label what the native files say, to the last digit
            written = written.replace(extra={SOURCE_SHA_COLUMN: source_sha256(written)})  # its identity
            writer.add(written, fmt.image_rel(sample.id), split.split_of(name, sample.id),
                       HeadPose(label_matrix(written, biwi_labels)))
        return writer.finish(
            name=out_dir.name, fmt=name, seed=seed,
            parameters={"command": "sample", "dataset": name, "n": n, "scale": scale,
                        "renderer": "maskbench.render.head"},
            split=split.as_dict(), biwi_labels=biwi_labels if name == "BIWI" else None,
        )
