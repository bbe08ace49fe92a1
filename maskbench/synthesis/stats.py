"""Robust statistics of 8-bit image values under a mask (medians and quantiles from histograms)."""

from __future__ import annotations

import cv2
import numpy as np


def quantile_u8(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (lower value) of uint8 values from a 256-bin histogram."""
    cum = np.cumsum(np.bincount(values, minlength=256))
    return float(np.searchsorted(cum, q * (len(values) - 1), side="right"))


def masked_median(values: np.ndarray, mask_u8: np.ndarray, hi: float, bins_per_unit: int = 8) -> float:
    """``np.median(values[mask_u8 > 0])`` of a float32 image with values in [0, hi), without sorting
    them all: a histogram of ``floor(value * bins_per_unit)`` finds the bins of the two middle ranks
    and only the values in those bins are sorted (the same number as ``np.median`` gives)."""
    n = cv2.countNonZero(mask_u8)
    if n == 0:
        return float("nan")
    q = np.floor(values * np.float32(bins_per_unit))  # bin b holds the values with q == b
    edges = int(np.ceil(hi * bins_per_unit))
    counts = cv2.calcHist([q], [0], mask_u8, [edges], [0, edges]).ravel()
    cum = np.cumsum(counts.astype(np.int64))
    if cum[-1] != n:  # values outside [0, hi): the plain way
        return float(np.median(values[mask_u8.view(bool)]))
    middle = []
    sorted_bins: dict[int, np.ndarray] = {}
    for rank in ((n - 1) // 2, n // 2):
        b = int(np.searchsorted(cum, rank, side="right"))
        if b not in sorted_bins:
            pick = cv2.compare(q, float(b), cv2.CMP_EQ)
            cv2.bitwise_and(pick, mask_u8, dst=pick)
            sorted_bins[b] = np.sort(values[pick.view(bool)])
        middle.append(sorted_bins[b][rank - (int(cum[b - 1]) if b else 0)])
    return float((middle[0] + middle[1]) / values.dtype.type(2))  # np.mean of the two, in their dtype


def masked_median_u8(image: np.ndarray, channel: int, mask_u8: np.ndarray) -> float:
    """The median of a uint8 image's ``channel`` where ``mask_u8`` is non-zero (at least one pixel),
    from its 256-bin histogram."""
    return median_of_histogram(cv2.calcHist([image], [channel], mask_u8, [256], [0, 256]).ravel())


def median_of_histogram(counts: np.ndarray) -> float:
    """``np.median`` of the values (at least one) that a 256-bin histogram counts."""
    cum = np.cumsum(counts.astype(np.int64))
    n = int(cum[-1])
    lo, hi = np.searchsorted(cum, ((n - 1) // 2, n // 2), side="right").tolist()  # values at sorted indices (n-1)//2, n//2
    return (lo + hi) / 2.0
