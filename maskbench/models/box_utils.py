"""Anchors, box/landmark encoding, matching and NMS for the RetinaFace-style detector (plain torch).

Boxes are (x_min, y_min, x_max, y_max) normalised to [0, 1] by the image size; anchors ("priors")
are (cx, cy, w, h), also normalised. Encoding follows SSD/RetinaFace with variances (0.1, 0.2).
"""

from __future__ import annotations

import itertools
import math

import torch

from maskbench.geometry import greedy_nms

VARIANCES = (0.1, 0.2)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)


def priors(image_h: int, image_w: int, min_sizes=MIN_SIZES, steps=STEPS) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(P, 4) anchors (cx, cy, w, h) for an image size; two square anchors per location and level."""
    out = []
    for sizes, step in zip(min_sizes, steps):
        fh, fw = math.ceil(image_h / step), math.ceil(image_w / step)
        for i, j in itertools.product(range(fh), range(fw)):
            for s in sizes:
                out.append([(j + 0.5) * step / image_w, (i + 0.5) * step / image_h, s / image_w, s / image_h])
    return torch.tensor(out, dtype=torch.float32)


def center_to_corners(p: torch.Tensor) -> torch.Tensor:
    return torch.cat([p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2], dim=1)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) IoU of corner boxes."""
    return iou_broadcast(a[:, None, :], b[None, :, :])


def iou_broadcast(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of corner boxes ``(..., 4)`` broadcast against each other (the one torch IoU; numpy:
    :func:`maskbench.geometry.box_iou`)."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(dim=-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(dim=-1)
    return inter / (area_a + area_b - inter).clamp_min(1e-12)


def encode_boxes(boxes: torch.Tensor, pri: torch.Tensor) -> torch.Tensor:
    """Corner boxes (N, 4) matched to priors (N, 4) -> regression targets (N, 4)."""
    centre = ((boxes[:, :2] + boxes[:, 2:]) / 2 - pri[:, :2]) / (VARIANCES[0] * pri[:, 2:])
    size = torch.log(((boxes[:, 2:] - boxes[:, :2]) / pri[:, 2:]).clamp_min(1e-8)) / VARIANCES[1]
    return torch.cat([centre, size], dim=1)


def decode_boxes(loc: torch.Tensor, pri: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`; ``loc`` (..., P, 4) against priors (P, 4), e.g. a batch."""
    centre = pri[..., :2] + loc[..., :2] * VARIANCES[0] * pri[..., 2:]
    size = pri[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def encode_landmarks(points: torch.Tensor, pri: torch.Tensor) -> torch.Tensor:
    """(N, 10) points (x1, y1, ... x5, y5) -> offsets from the prior centre in prior units."""
    p = points.view(-1, 5, 2)
    return ((p - pri[:, None, :2]) / (VARIANCES[0] * pri[:, None, 2:])).reshape(-1, 10)


def decode_landmarks(enc: torch.Tensor, pri: torch.Tensor) -> torch.Tensor:
    p = enc.view(-1, 5, 2)
    return (pri[:, None, :2] + p * VARIANCES[0] * pri[:, None, 2:]).reshape(-1, 10)


def match(gt_boxes: torch.Tensor, pri: torch.Tensor, threshold: float = 0.35) -> tuple[torch.Tensor, torch.Tensor]:
    """For every prior: index of its ground-truth box and whether it is positive.

    A prior is positive when its IoU with a box is >= ``threshold``; every box also claims its best
    prior, so no face goes unmatched.
    """
    overlaps = iou(gt_boxes, center_to_corners(pri))  # (G, P)
    best_gt_iou, best_gt = overlaps.max(dim=0)
    best_prior = overlaps.argmax(dim=1)
    best_gt_iou[best_prior] = 2.0
    best_gt[best_prior] = torch.arange(len(gt_boxes))
    return best_gt, best_gt_iou >= threshold


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float = 0.4) -> torch.Tensor:
    """Indices kept by greedy non-maximum suppression, highest score first
    (:func:`maskbench.geometry.greedy_nms`, the one NMS; equal scores in torch's sort order, as the
    reference model has always been scored)."""
    order = scores.argsort(descending=True).tolist()
    kept = greedy_nms(boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(), threshold, order=order)
    return torch.tensor(kept, dtype=torch.long)
