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
