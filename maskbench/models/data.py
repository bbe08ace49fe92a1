"""Training data for the reference model: maskbench splits -> letterboxed images + normalised targets.

Each sample is one labelled face. The image is scaled so its longer side is ``image_size`` and
pasted at the top-left of a square canvas (zeros elsewhere); box and landmarks are divided by
``image_size``. The five landmarks are the eye centres (mean of 36-41 and 42-47), the nose tip (30)
and the mouth corners (48, 54); BIWI has none (NaN, not used by the loss).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from maskbench.datasets import open_dataset
from maskbench.io.atomic import read_image
from maskbench.io.manifest import LABELS, read_labels
from maskbench.models.losses import Target
from maskbench.seeding import default_split
from maskbench.types import Sample


def five_points(landmarks_px: np.ndarray | None) -> np.ndarray:
    if landmarks_px is None:
        return np.full((5, 2), np.nan)
    lm = landmarks_px
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def split_samples(split_dir: Path, split: str | None) -> list[Sample]:
    """Samples of a split folder whose ``split`` column (or default split) is ``split`` (None: all)."""
    reader = open_dataset(split_dir)
    rows = {r["id"]: r for r in read_labels(split_dir)} if (split_dir / LABELS).is_file() else {}
    out = []
    for s in reader:
        which = rows[s.id]["split"] if s.id in rows else default_split(reader.fmt.name, s.id, 0)
        if split is None or which == split:
            out.append(s)
    return out


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


class FaceDataset(torch.utils.data.Dataset):
    """Faces of several split folders, one training example each."""

    def __init__(self, samples: list[Sample], image_size: int) -> None:
        self.samples = samples
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        s = self.samples[i]
        canvas, scale = letterbox(read_image(s.image_path), self.image_size)
        b = s.bbox
        box = np.array([b.x_min, b.y_min, b.x_max, b.y_max]) * scale / self.image_size
        pts = five_points(s.landmarks_px) * scale / self.image_size
        target = Target(torch.tensor(box, dtype=torch.float32)[None].clamp(0, 1),
                        torch.tensor(pts.reshape(1, 10), dtype=torch.float32),
                        torch.tensor(s.pose.matrix, dtype=torch.float32)[None])
        return to_tensor(canvas), target


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]
