"""Inference of the reference model, shared by the trainer (validation) and the evaluator
(``CheckpointModel``): checkpoint loading, letterboxed batched detection, the top face's pose.

Images go in as BGR uint8; :func:`maskbench.models.data.letterbox` makes the square canvases.
Nothing here knows about datasets or the evaluator's crop protocol (that is the evaluator's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskbench.models import box_utils
from maskbench.models.data import letterbox, to_tensor
from maskbench.models.pretrained import load_weights_file
from maskbench.models.retinaface import RetinaFacePose
from maskbench.models.rotation6d import sixd_to_matrix

CHECKPOINT_FORMAT = "maskbench-checkpoint-1"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a ``.pth`` with ``torch.load(weights_only=True)``: tensors and plain containers only.

    A file that needs arbitrary unpickling (it could run code) is refused with a clear message.
    """
    data = load_weights_file(path)
    if not isinstance(data, dict) or "state_dict" not in data:
        raise ValueError(f"{path}: not a maskbench checkpoint (expected a dict with 'state_dict')")
    return data


def load_model_from_checkpoint(path: Path, device: str = "cpu") -> tuple[RetinaFacePose, dict[str, Any]]:
    """Build the network of a checkpoint (loaded with weights_only=True) and load its weights."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} file (format={ckpt.get('format')!r})")
    model = RetinaFacePose(input_norm=str(ckpt["config"].get("input_norm", "rgb01"))).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


@dataclass
class Face:
    """One detection: box and five landmarks in pixels, face score, rotation (maskbench convention)."""

    box_px: np.ndarray
    score: float
    landmarks_px: np.ndarray
    rotation: np.ndarray


#: Images per forward pass when the evaluator or validation runs the detector.
DETECT_BATCH = 32


@torch.no_grad()
def detect_letterboxed(model: RetinaFacePose, canvases: Sequence[tuple[np.ndarray, float]], image_size: int,
                       score_threshold: float = 0.5, nms_threshold: float = 0.4, top1: bool = False) -> list[list[Face]]:
    """Faces in each letterboxed image (``(canvas, scale)`` from :func:`letterbox`), best first, with
    one forward pass per :data:`DETECT_BATCH` images. ``top1``: only the highest-scoring anchor,
    whatever its score."""
    model.eval()
    device = next(model.parameters()).device
    pri = box_utils.priors(image_size, image_size).to(device)
    results: list[list[Face]] = []
    for start in range(0, len(canvases), DETECT_BATCH):
        chunk = canvases[start : start + DETECT_BATCH]
        out = model(torch.stack([to_tensor(canvas) for canvas, _ in chunk]).to(device))
        for i, (_, scale) in enumerate(chunk):
            scores = out["conf"][i].softmax(-1)[:, 1]
            keep = scores.argmax()[None] if top1 else (scores >= score_threshold).nonzero().flatten()
            if keep.numel() == 0:
                results.append([])
                continue
            boxes = box_utils.decode_boxes(out["loc"][i][keep], pri[keep])
            if not top1:
                sel = box_utils.nms(boxes.cpu(), scores[keep].cpu(), nms_threshold).to(device)
                keep, boxes = keep[sel], boxes[sel]
            lms = box_utils.decode_landmarks(out["landmarks"][i][keep], pri[keep])
            rots = sixd_to_matrix(out["pose6d"][i][keep].double())
            factor = image_size / scale
            results.append([Face((boxes[k] * factor).cpu().numpy(), float(scores[keep[k]]),
                                 (lms[k] * factor).cpu().numpy().reshape(5, 2), rots[k].cpu().numpy())
                            for k in range(len(keep))])
    return results


def detect(model: RetinaFacePose, image_bgr: np.ndarray, image_size: int, score_threshold: float = 0.5,
           nms_threshold: float = 0.4, top1: bool = False) -> list[Face]:
    """Faces in one image, best first (see :func:`detect_letterboxed`)."""
    return detect_letterboxed(model, [letterbox(image_bgr, image_size)], image_size, score_threshold,
                              nms_threshold, top1)[0]


def top_face_rotations(model: RetinaFacePose, canvases: Sequence[tuple[np.ndarray, float]],
                       image_size: int) -> list[np.ndarray | None]:
    """The rotation of the highest-scoring anchor of each letterboxed canvas (a face crop)."""
    return [faces[0].rotation if faces else None for faces in detect_letterboxed(model, canvases, image_size, top1=True)]
