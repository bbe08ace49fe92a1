"""Seeded per-sample randomness and split assignment.

Every random choice about a sample comes from ``sample_rng(seed, sample_id)``, so any sample can be
regenerated alone and results do not depend on worker count, sharding or order.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Default fraction of BIWI frames in the training split (the 70/30 protocol).
BIWI_TRAIN_FRACTION = 0.7


def _id_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def sample_rng(seed: int, sample_id: str, purpose: str = "") -> np.random.Generator:
    """Generator derived from (global seed, sample id, purpose); independent of call order."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _id_hash(f"{purpose}\0{sample_id}")])


def unit_fraction(seed: int, key: str) -> float:
    """A deterministic number in [0, 1) from (seed, key)."""
    return _id_hash(f"{seed}\0{key}") / 2.0**64


def default_split(format_name: str, sample_id: str, seed: int, by: str = "frame") -> str:
    """Split of an original sample: AFLW2000 -> test, 300W_LP -> train, BIWI 70/30 random.

    For BIWI ``by="frame"`` draws per frame (the published masked-HPE protocol); ``by="subject"``
    draws per sequence folder so no identity appears in both splits.
    """
    name = format_name.upper()
    if name == "AFLW2000":
        return "test"
    if name == "300W_LP":
        return "train"
    if name == "BIWI":
        key = sample_id.split("/")[0] if by == "subject" else sample_id
        return "train" if unit_fraction(seed, key) < BIWI_TRAIN_FRACTION else "test"
    raise ValueError(f"unknown format {format_name!r}")
