"""Training data for the reference model: maskbench splits -> letterboxed images + normalised targets.

Each sample is one labelled face. The image is scaled so its longer side is ``image_size`` and
pasted at the top-left of a square canvas (zeros elsewhere); box and landmarks are divided by
``image_size``. The five landmarks are the eye centres (mean of 36-41 and 42-47), the nose tip (30)
and the mouth corners (48, 54); BIWI has none (NaN, not used by the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskbench import geometry
from maskbench.augment import functional as F
from maskbench.datasets.base import DatasetFormat
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, check_biwi_labels, label_matrix
from maskbench.folder import VariantFolder
from maskbench.io.atomic import read_image
from maskbench.models.canvas import letterbox, to_tensor
from maskbench.models.losses import Target
from maskbench.seeding import EpochSeeded, unit_fraction
from maskbench.types import BBox, Sample


def five_points(landmarks_px: np.ndarray | None) -> np.ndarray:
    if landmarks_px is None:
        return np.full((5, 2), np.nan)
    lm = landmarks_px
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def split_samples(split_dir: Path, split: str | None) -> list[tuple[Sample, DatasetFormat]]:
    """Samples (with their format) of a folder whose split (:func:`maskbench.splits.splits_by_id`:
    the ``labels.csv`` column, or the recorded/default rule on a raw tree) is ``split`` (None: all)."""
    return [(r.sample, r.fmt) for r in _samples_with_sources(split_dir) if split is None or r.split == split]


@dataclass(frozen=True)
class _Row:
    sample: Sample
    fmt: DatasetFormat
    key: str  # the original sample (``<format>:<source_id>``), shared by its masked and rotated copies
    split: str
    face: str  # the face's identity (:func:`maskbench.identity.face_key`), whatever folder it comes through


def _samples_with_sources(split_dir: Path) -> list[_Row]:
    """Every row of a folder with its source key, split and face identity."""
    folder = VariantFolder(split_dir)
    return [_Row(s, folder.format, folder.source_key(s), folder.split_of(s.id), folder.face(s))
            for s in folder.samples()]


@dataclass(frozen=True)
class HoldOut:
    """The validation hold-out of the training rows: every copy of a held-out original (its masked
    and rotated versions too) is left out of training. Drawn per source key with ``seed``."""

    fraction: float = 0.1
    seed: int = 0
    limit: int = 400

    def is_validation(self, source_key: str) -> bool:
        return unit_fraction(self.seed, f"validation\0{source_key}") < self.fraction


def training_items(folders: list[Path], hold_out: HoldOut, val_folders: Sequence[Path] = ()) -> tuple[
        list[tuple[Sample, DatasetFormat]], list[Sample], dict[str, Any]]:
    """Training items and validation samples (at most ``hold_out.limit``, in folder order), and a
    record of how they were drawn for the checkpoint. Test rows are never read as either.

    Validation is the ``val`` rows (see :class:`~maskbench.splits.SplitRule`) of the training folders
    and of ``val_folders`` (which may hold nothing but ``val`` rows); when there are none, a
    :class:`HoldOut` of the ``train`` rows, drawn per original face so that no masked or rotated copy
    of a validation face is trained on. Validation holds each face once (by identity,
    :mod:`maskbench.identity`), and a face that is both a training and a validation face is refused,
    whatever the folders' split rules. The record's ``faces`` lists the identities of both sets.
    """
    rows = [r for folder in folders for r in _samples_with_sources(folder)]
    val_rows = [r for r in rows if r.split == "val"]
    for folder in val_folders:
        for r in _samples_with_sources(folder):
            if r.split != "val":
                raise ValueError(f"validation folder {folder.name} has {r.split} rows; it may hold only 'val' rows "
                                 "(write it with `maskbench import --val-fraction F --only-split val`)")
            val_rows.append(r)
    train: list[tuple[Sample, DatasetFormat]] = []
    train_faces: set[str] = set()
    held: set[str] = set()
    draw = not val_rows and hold_out.fraction > 0
    for r in rows:
        if r.split != "train":
            continue
        if draw and hold_out.is_validation(r.key):
            held.add(r.key)
            val_rows.append(r)
        else:
            train.append((r.sample, r.fmt))
            train_faces.add(r.face)
    val, val_faces = [], set()
    for r in val_rows:  # each face once (a folder and its masked copy hold the same val faces)
        if r.face not in val_faces:
            val_faces.add(r.face)
            val.append(r)
    both = [r for r in val if r.face in train_faces]
    if both:
        raise ValueError(f"{len(both)} validation faces are also training faces (e.g. {both[0].sample.id}, face "
                         f"{both[0].face}): the folders were split by different rules, or one copies the other under "
                         "new ids. Derive training and validation folders from one split (see maskbench import --help)")
    val = val[: hold_out.limit]
    record = {"source": "hold-out of train rows" if draw else "val rows", "fraction": hold_out.fraction if draw else None,
              "seed": hold_out.seed if draw else None, "held_out_sources": len(held),
              "validation_samples": len(val), "training_samples": len(train),
              "faces": {"train": sorted(train_faces), "validation": sorted(r.face for r in val)}}
    return train, [r.sample for r in val], record


#: Order of the five points after a horizontal flip (the eyes swap, the mouth corners swap).
FLIP_FIVE = [1, 0, 2, 4, 3]


@dataclass(frozen=True)
class TrainAugment:
    """Online training augmentation, drawn per (seed, epoch, sample index): same batches for any
    number of loader workers or processes.

    * ``face_fraction`` (lo, hi): a random square crop in which the face box's longer side is a
      uniform fraction of the crop side, resized to the input size (RetinaFace-style crops; the
      evaluator's crop protocol shows a face at 0.67). None: the whole image, letterboxed.
    * ``protocol_crop_prob``: instead of that random crop, the evaluator's crop protocol exactly (the
      labelled box + 25 % on every side, clipped to the image, letterboxed), so the pose head also
      learns the framing it is scored on.
    * ``flip_prob``: horizontal mirror; landmarks re-indexed, pose mirrored (yaw and roll negate).
    * ``photometric``: contrast gain in 1 +- p and brightness offset in +- 64p.
    * ``mask_prob``: a synthetic mask fitted online (:func:`maskbench.synthesis.mask.mask_sample`).
    * ``rotate_prob`` and ``rotate_range_deg``: an in-plane rotation about the face with exactly
      recomputed labels (:func:`maskbench.augment.rotation.rotate_sample`), before the crop.
    """

    face_fraction: tuple[float, float] | None = (0.25, 0.8)
    protocol_crop_prob: float = 0.0
    flip_prob: float = 0.5
    photometric: float = 0.2
    mask_prob: float = 0.0
    rotate_prob: float = 0.0
    rotate_range_deg: tuple[float, float] = (-45.0, 45.0)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> TrainAugment | None:
        """The config's ``augment`` entry: missing = defaults, ``false`` = none, or a dict of fields."""
        if cfg is None:
            return cls()
        if cfg is False:
            return None
        unknown = set(cfg) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown augment option(s) {', '.join(sorted(unknown))}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        return cls(**kw)


def random_crop_affine(box: BBox, size: int, fraction: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """2x3 affine from the image to a ``size`` square crop that holds the whole face box."""
    side = max(box.width_px, box.height_px, 1.0)
    crop = side / rng.uniform(*fraction)
    x0 = rng.uniform(box.x_max - crop, box.x_min) if crop > box.width_px else box.x_min
    y0 = rng.uniform(box.y_max - crop, box.y_min) if crop > box.height_px else box.y_min
    s = size / crop
    return np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0]])


class FaceDataset(EpochSeeded, torch.utils.data.Dataset):
    """Faces of several split folders, one training example each (see :class:`TrainAugment`)."""

    def __init__(self, items: list[tuple[Sample, DatasetFormat]], image_size: int, augment: TrainAugment | None = None,
                 seed: int = 0, biwi_labels: str = DEFAULT_BIWI_LABELS) -> None:
        self.items = items
        #: BIWI targets in this label convention (:data:`maskbench.datasets.biwi.BIWI_LABELS`)
        self.biwi_labels = check_biwi_labels(biwi_labels)
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._online_transforms: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def _online(self, sample: Sample, fmt: DatasetFormat, image: np.ndarray,
                rng: np.random.Generator) -> tuple[Sample, np.ndarray]:
        """Online masks and rotations through the public transforms (:mod:`maskbench.transforms`)."""
        from maskbench.records import record_of
        from maskbench.transforms import RandomInPlaneRotation, RandomMask

        aug = self.augment
        assert aug is not None
        if self._online_transforms is None:  # built once per dataset (templates load on first use)
            self._online_transforms = [
                *([RandomMask(p=aug.mask_prob)] if aug.mask_prob else []),  # an unmaskable face trains unmasked
                *([RandomInPlaneRotation(range_deg=aug.rotate_range_deg, p=aug.rotate_prob, center="face")]
                  if aug.rotate_prob else []),
            ]
        if not self._online_transforms:
            return sample, image
        record = record_of(sample, fmt, image)
        for transform in self._online_transforms:
            record = transform(record, rng=rng)
        return record["_sample"], record["image"]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        sample, fmt = self.items[i]
        image = read_image(sample.image_path)
        size, aug = self.image_size, self.augment
        rng = None if aug is None else self.item_rng(i)
        if rng is not None:
            sample, image = self._online(sample, fmt, image, rng)
        if rng is not None and aug.protocol_crop_prob and rng.random() < aug.protocol_crop_prob:
            x0, y0, x1, y1 = geometry.protocol_crop_box(sample.bbox, image.shape[:2])
            canvas, scale = letterbox(image[y0:y1, x0:x1], size)
            affine = np.array([[scale, 0.0, -scale * x0], [0.0, scale, -scale * y0]])
        elif rng is None or aug.face_fraction is None:
            canvas, scale = letterbox(image, size)
            affine = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
        else:
            affine = random_crop_affine(sample.bbox, size, aug.face_fraction, rng)
            canvas = F.square_crop(image, affine, size)
        b = sample.bbox
        corners = geometry.apply_affine(np.array([[b.x_min, b.y_min], [b.x_max, b.y_max]]), affine)
        pts = geometry.apply_affine(five_points(sample.landmarks_px), affine)
        rotation = sample.pose.matrix
        if rng is not None:
            if rng.random() < aug.flip_prob:
                canvas = canvas[:, ::-1]
                corners = np.array([[size - 1 - corners[1, 0], corners[0, 1]], [size - 1 - corners[0, 0], corners[1, 1]]])
                pts = np.column_stack([size - 1 - pts[:, 0], pts[:, 1]])[FLIP_FIVE]
                rotation = geometry.mirrored_rotation(rotation)
            if aug.photometric:
                gain = rng.uniform(1 - aug.photometric, 1 + aug.photometric)
                offset = rng.uniform(-64, 64) * aug.photometric
                canvas = np.clip(canvas.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
        # the label convention, after every augmentation
        rotation = label_matrix(sample, self.biwi_labels, rotation)
        target = Target(torch.tensor(corners.reshape(1, 4) / size, dtype=torch.float32).clamp(0, 1),
                        torch.tensor(pts.reshape(1, 10) / size, dtype=torch.float32),
                        torch.tensor(rotation, dtype=torch.float32)[None])
        return to_tensor(np.ascontiguousarray(canvas)), target


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]
