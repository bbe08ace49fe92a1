"""Seeded per-sample randomness (the train/test split rule is :mod:`maskbench.splits`).

Every random choice about a sample comes from ``sample_rng(seed, sample_id)``, so any sample can be
regenerated alone and results do not depend on worker count, sharding or order.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _id_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def sample_rng(seed: int, sample_id: str, purpose: str = "") -> np.random.Generator:
    """Generator derived from (global seed, sample id, purpose); independent of call order."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _id_hash(f"{purpose}\0{sample_id}")])


def unit_fraction(seed: int, key: str) -> float:
    """A deterministic number in [0, 1) from (seed, key)."""
    return _id_hash(f"{seed}\0{key}") / 2.0**64


class EpochSeeded:
    """The seeding of a torch dataset's online augmentation (both :class:`maskbench.torch_dataset.HeadPoseDataset`
    and the trainer's :class:`maskbench.training.data.FaceDataset`): item ``index`` of epoch ``epoch``
    draws from ``default_rng([seed, epoch, index])``, so batches are the same for any number of
    DataLoader workers and any order; call :meth:`set_epoch` at the start of each epoch."""

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def item_rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])
