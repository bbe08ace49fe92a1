"""Pose error metrics (all in degrees). Angle differences are wrapped to [-180, 180).

* per-axis MAE of yaw, pitch, roll and their mean (``mae_deg``), the numbers of the published tables;
* MAEV: mean over samples of the mean angle between the predicted and true rotation-matrix
  columns (the head's x, y, z axes), which does not depend on an Euler convention;
* geodesic: mean rotation angle between prediction and truth;
* miss rate: samples without a prediction (a face not found) over all samples. Missed samples are
  never part of the MAEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskbench import geometry


@dataclass(frozen=True)
class Scores:
    """Aggregated errors of one group of samples."""

    n: int
    n_missed: int
    yaw_mae_deg: float
    pitch_mae_deg: float
    roll_mae_deg: float
    mae_deg: float
    maev_deg: float
    geodesic_deg: float

    @property
    def miss_rate(self) -> float:
        return self.n_missed / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "n_missed": self.n_missed, "miss_rate": self.miss_rate, "yaw_mae_deg": self.yaw_mae_deg,
                "pitch_mae_deg": self.pitch_mae_deg, "roll_mae_deg": self.roll_mae_deg, "mae_deg": self.mae_deg,
                "maev_deg": self.maev_deg, "geodesic_deg": self.geodesic_deg}


def angle_errors_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """|wrap(pred - true)| elementwise, degrees; 179 vs -179 gives 2."""
    return np.abs((np.asarray(pred, float) - np.asarray(true, float) + 180.0) % 360.0 - 180.0)


def column_angle_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean angle (degrees) between corresponding columns of two rotation matrices; of each pair
    when given two (N, 3, 3) stacks ((N,) result)."""
    cos = np.clip(np.einsum("...ij,...ij->...j", pred, true), -1.0, 1.0)
    return np.degrees(np.arccos(cos)).mean(axis=-1)  # type: ignore[no-any-return]


def score(true_euler_deg: np.ndarray, pred_euler_deg: np.ndarray, true_matrices: Sequence[np.ndarray],
          pred_matrices: Sequence[np.ndarray | None]) -> Scores:
    """Scores of aligned arrays: (N, 3) [yaw, pitch, roll] in degrees and N matrices (None = miss)."""
    hit = np.array([m is not None for m in pred_matrices], dtype=bool)
    n = len(hit)
    if not hit.any():
        nan = float("nan")
        return Scores(n, n, nan, nan, nan, nan, nan, nan)
    err = angle_errors_deg(np.asarray(pred_euler_deg)[hit], np.asarray(true_euler_deg)[hit])
    per_axis = err.mean(axis=0)
    pred = np.array([p for p, h in zip(pred_matrices, hit) if h], dtype=np.float64)  # (H, 3, 3)
    true = np.array([t for t, h in zip(true_matrices, hit) if h], dtype=np.float64)
    maev = float(column_angle_deg(pred, true).mean())
    geo = float(geometry.geodesic_deg_many(pred, true).mean())
    return Scores(n, int(n - hit.sum()), float(per_axis[0]), float(per_axis[1]), float(per_axis[2]),
                  float(per_axis.mean()), maev, geo)


PENALTY_KEYS = ("yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg", "mae_deg")


def paired_delta(plain_err: np.ndarray, masked_err: np.ndarray, n_boot: int = 2000,
                 seed: int = 0) -> dict[str, list[float]]:
    """Mean of ``masked - plain`` per column of two aligned (N, 3) per-face error arrays (yaw, pitch,
    roll) and of their mean (MAE), each as ``[delta, lo, hi]``: the point estimate and a bootstrap
    95 % interval (faces resampled with replacement ``n_boot`` times, seeded). Same faces on both
    sides, so the face-to-face spread cancels."""
    delta = np.column_stack([masked_err - plain_err, (masked_err - plain_err).mean(axis=1)])
    n = len(delta)
    if n == 0:
        nan = float("nan")
        return {k: [nan, nan, nan] for k in PENALTY_KEYS}
    rng = np.random.default_rng(seed)
    boots = np.stack([delta[rng.integers(0, n, n)].mean(axis=0) for _ in range(n_boot)])  # (n_boot, 4)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    point = delta.mean(axis=0)
    return {k: [float(point[i]), float(lo[i]), float(hi[i])] for i, k in enumerate(PENALTY_KEYS)}
