"""What the reference network sees: an image scaled into the top-left of a square canvas, as a tensor.

Training (:mod:`maskbench.training.data`), inference (:mod:`maskbench.models.inference`) and the
evaluator's checkpoint adapter all make their inputs here, so the three cannot drift apart.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(size, size, 3) RGB canvas with the image scaled into its top-left corner, and the scale."""
    h, w = image_bgr.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(image_bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return canvas, scale


def to_tensor(canvas_rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(canvas_rgb).permute(2, 0, 1).float().div(255.0)
