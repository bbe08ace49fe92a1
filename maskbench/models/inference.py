"""Inference of the reference model, shared by the trainer (validation) and the evaluator
(``CheckpointModel``): checkpoint loading, letterboxed batched detection, the top face's pose.

A face's pose is voted: every anchor whose box overlaps the face's by IoU >= :data:`POSE_VOTE_IOU`
and whose face score is at least :data:`POSE_VOTE_SCORE` of the face's gives its rotation, and the
score-weighted mean is made a rotation again (Gram-Schmidt on its first two columns). For a crop
(:func:`top_face_rotations`) the mirrored canvas votes too (mirror: ``M R M``, M = diag(-1, 1, 1);
yaw and roll change sign). On the 93 faces of the photo grid's val part (real-model1 of the
192-px grid, crop) the single top anchor scored 4.58 degrees, the vote 4.44, vote + mirror 4.41. The export
(:class:`maskbench.training.export.PoseExport`) computes the same.

Images go in as BGR uint8; :func:`maskbench.models.canvas.letterbox` makes the square canvases.
Nothing here knows about datasets or the evaluator's crop protocol (that is the evaluator's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskbench import geometry
from maskbench.models import box_utils
from maskbench.models.canvas import letterbox, to_tensor
from maskbench.models.pretrained import load_weights_file
from maskbench.models.retinaface import RetinaFacePose
from maskbench.models.rotation6d import matrix_to_sixd, sixd_to_matrix

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
    model = RetinaFacePose.from_config(ckpt["config"]).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


#: Anchors overlapping the chosen face's box by at least this IoU vote on its pose ...
POSE_VOTE_IOU = 0.5
#: ... when their face score is at least this fraction of the face's.
POSE_VOTE_SCORE = 0.5
MIRROR = torch.from_numpy(geometry.MIRROR_X)


def voted_rotations(pose6d: torch.Tensor, scores: torch.Tensor, boxes: torch.Tensor,
                    chosen: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) float64: per image, the score-weighted mean rotation of the anchors that agree with
    anchor ``chosen[n]`` (IoU >= POSE_VOTE_IOU, score >= POSE_VOTE_SCORE of its), made a rotation
    again. ``pose6d`` (N, P, 6), ``scores`` (N, P), ``boxes`` (N, P, 4) decoded."""
    idx = chosen.long()[:, None]
    top_box = boxes.gather(1, idx[..., None].expand(-1, 1, 4))  # (N, 1, 4)
    iou = box_utils.iou_broadcast(boxes, top_box)  # (N, P)
    top_score = scores.gather(1, idx)
    agree = (iou >= POSE_VOTE_IOU) & (scores >= POSE_VOTE_SCORE * top_score)
    weights = (scores * agree.to(scores.dtype)).scatter(1, idx, top_score).double()  # the chosen one always votes
    rots = sixd_to_matrix(pose6d.double())  # (N, P, 3, 3)
    mean = (weights[..., None, None] * rots).sum(1) / weights.sum(1)[:, None, None]
    return sixd_to_matrix(matrix_to_sixd(mean))


def mirrored(rotations: torch.Tensor) -> torch.Tensor:
    """The rotation seen in a horizontally mirrored image: ``M R M``."""
    m = MIRROR.to(rotations.device, rotations.dtype)
    return m @ rotations @ m


def mean_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The mean of two batches of nearby rotations, made a rotation again."""
    return sixd_to_matrix(matrix_to_sixd((a + b) / 2))


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
        all_boxes = box_utils.decode_boxes(out["loc"], pri)  # (N, P, 4): every anchor may vote on a pose
        for i, (_, scale) in enumerate(chunk):
            scores = out["conf"][i].softmax(-1)[:, 1]
            keep = scores.argmax()[None] if top1 else (scores >= score_threshold).nonzero().flatten()
            if keep.numel() == 0:
                results.append([])
                continue
            boxes = all_boxes[i][keep]
            if not top1:
                sel = box_utils.nms(boxes.cpu(), scores[keep].cpu(), nms_threshold).to(device)
                keep, boxes = keep[sel], boxes[sel]
            lms = box_utils.decode_landmarks(out["landmarks"][i][keep], pri[keep])
            n = len(keep)
            rots = voted_rotations(out["pose6d"][i].expand(n, -1, -1), scores.expand(n, -1),
                                   all_boxes[i].expand(n, -1, -1), keep)
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


@torch.no_grad()
def top_face_rotations(model: RetinaFacePose, canvases: Sequence[tuple[np.ndarray, float]],
                       image_size: int, mirror: bool = True) -> list[np.ndarray | None]:
    """The voted rotation of the highest-scoring anchor of each letterboxed canvas (a face crop),
    averaged with the mirrored canvas's (mirrored back) when ``mirror``."""
    model.eval()
    device = next(model.parameters()).device
    pri = box_utils.priors(image_size, image_size).to(device)
    results: list[np.ndarray | None] = []
    for start in range(0, len(canvases), DETECT_BATCH):
        batch = torch.stack([to_tensor(canvas) for canvas, _ in canvases[start : start + DETECT_BATCH]]).to(device)
        rots = top_rotations(model(batch), pri)
        if mirror:
            rots = mean_rotation(rots, mirrored(top_rotations(model(batch.flip(-1)), pri)))
        results.extend(r for r in rots.cpu().numpy())
    return results


def top_rotations(out: dict[str, torch.Tensor], pri: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3): the voted pose of each image's highest-scoring anchor (network outputs ``out``)."""
    scores = out["conf"].softmax(-1)[..., 1]
    return voted_rotations(out["pose6d"], scores, box_utils.decode_boxes(out["loc"], pri), scores.argmax(dim=1))
