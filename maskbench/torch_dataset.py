"""``torch.utils.data`` wrapper of :func:`maskbench.open_dataset` (torch is imported only here).

``HeadPoseDataset(path, transform=..., crop=FaceCrop(224))[i]`` returns a dict of tensors:
``image`` (3, S, S) float RGB in [0, 1], ``pose_deg`` (3,) [yaw, pitch, roll] in the maskbench
convention (BIWI in the ``biwi_labels`` label convention, default ``literature``: see
:mod:`maskbench.datasets.biwi`; transforms work on the physical RGB-frame pose before that),
``rotation`` (3, 3), ``occlusion`` (S, S) bool (all False when unmasked), and ``id``.
The transform gets a generator drawn from ``(seed, epoch, index)``: call ``set_epoch`` each epoch
for new augmentations; results do not depend on the number of loader workers.

An image that cannot be read (truncated, not an image) does not stop an epoch: by default
(``on_error="skip"``) a warning names the file once and the item is served by the next readable
record, so batches keep their size; ``on_error="raise"`` raises
:class:`~maskbench.errors.DatasetError` naming the file instead. Label files that could not be
read never become records (``dataset.records.errors`` lists them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from maskbench.augment import functional as F
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, check_biwi_labels, label_matrix
from maskbench.errors import DatasetError
from maskbench.records import Records, open_dataset
from maskbench.seeding import EpochSeeded
from maskbench.types import HeadPose

__all__ = ["FaceCrop", "HeadPoseDataset"]


@dataclass(frozen=True)
class FaceCrop:
    """A square crop around the record's box: side = (1 + 2 * margin) x the box's longer side,
    centred on the box, resized to ``size`` px (pixels outside the image are black)."""

    size: int = 224
    margin: float = 0.25

    def affine(self, record: dict[str, Any]) -> np.ndarray:
        b = record["box"]
        side = max(b.width_px, b.height_px) * (1 + 2 * self.margin)
        cx, cy = b.center_px
        s = self.size / side
        return np.array([[s, 0.0, self.size / 2 - s * cx], [0.0, s, self.size / 2 - s * cy]])

    def __call__(self, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """(size, size, 3) RGB uint8 crop and the cropped occlusion map (or None)."""
        a = self.affine(record)
        crop = F.square_crop(record["image"], a, self.size, to_rgb=record.get("color", "BGR") == "BGR")
        occ = record.get("occlusion")
        if occ is not None:
            occ = cv2.warpAffine(np.asarray(occ, np.uint8), a, (self.size, self.size), flags=cv2.INTER_NEAREST) > 0
        return crop, occ


class HeadPoseDataset(EpochSeeded, torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Records of a dataset folder, transformed and cropped, as tensors (see the module docstring)."""

    def __init__(self, path: str | Path | Records, transform: Callable[..., dict[str, Any]] | None = None,
                 crop: FaceCrop = FaceCrop(), split: str | None = None, seed: int = 0, on_error: str = "skip",
                 biwi_labels: str = DEFAULT_BIWI_LABELS) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.records = path if isinstance(path, Records) else open_dataset(path, split=split)
        self.on_error = on_error
        self.biwi_labels = check_biwi_labels(biwi_labels)
        #: files found unreadable in this process ("path: problem"), each warned about once
        self.unreadable: list[str] = []
        self.transform = transform
        self.crop = crop
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def _record(self, i: int) -> dict[str, Any]:
        """Record ``i``, or (``on_error="skip"``) the next readable one after it, cyclically."""
        n = len(self.records)
        for k in range(n):
            try:
                return self.records[(i + k) % n]
            except DatasetError as exc:
                if self.on_error == "raise":
                    raise
                if str(exc) not in self.unreadable:
                    self.unreadable.append(str(exc))
                    warnings.warn(f"HeadPoseDataset: skipping unreadable sample {exc}", stacklevel=3)
        raise DatasetError(getattr(self.records, "root", "dataset"), f"none of its {n} images could be read")

    def __getitem__(self, i: int) -> dict[str, Any]:
        record = self._record(i)
        if self.transform is not None:
            record = self.transform(record, rng=self.item_rng(i))
        crop, occ = self.crop(record)
        pose = record["pose"]
        pose = HeadPose(label_matrix(record.get("_sample"), self.biwi_labels, pose.matrix))
        return {"image": torch.from_numpy(crop).permute(2, 0, 1).float().div(255.0),
                "pose_deg": torch.tensor([pose.yaw_deg, pose.pitch_deg, pose.roll_deg], dtype=torch.float32),
                "rotation": torch.tensor(pose.matrix, dtype=torch.float32),
                "occlusion": torch.from_numpy(occ) if occ is not None else torch.zeros(self.crop.size, self.crop.size,
                                                                                       dtype=torch.bool),
                "id": record["id"]}
