"""Multi-task loss of the reference model: detection (RetinaFace) plus geodesic pose.

Per image, every anchor is matched to a ground-truth face (:func:`box_utils.match`). Positives
get: smooth-L1 box regression (weight ``box_weight``, RetinaFace uses 2), smooth-L1 on the five
landmarks where they are labelled, and the geodesic angle between the 6D head's rotation and the
true one (weight ``pose_weight``; the published sweep used 0.2-0.8). Face/background
classification uses cross-entropy with hard negatives at ``neg_pos_ratio`` : 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from maskbench.models import box_utils
from maskbench.models.rotation6d import geodesic_loss, sixd_to_matrix


@dataclass
class Target:
    """Ground truth of one image, normalised by the image size."""

    boxes: torch.Tensor  # (G, 4) corners in [0, 1]
    landmarks: torch.Tensor  # (G, 10); rows of NaN where not labelled
    rotations: torch.Tensor  # (G, 3, 3)


def multitask_loss(out: dict[str, torch.Tensor], targets: list[Target], pri: torch.Tensor, pose_weight: float = 0.5,
                   box_weight: float = 2.0, landmark_weight: float = 1.0, neg_pos_ratio: int = 3,
                   normalizer: Callable[[int], float] | None = None) -> dict[str, torch.Tensor]:
    """Loss terms and their weighted ``total`` for a batch.

    Sums over positives are divided by the batch's positive count, or by ``normalizer(count)``
    (data-parallel training passes the mean count over processes).
    """
    loc_l, conf_l, lm_l, pose_l = [], [], [], []
    n_pos_total = 0
    for b, tgt in enumerate(targets):
        best_gt, pos = box_utils.match(tgt.boxes, pri)
        n_pos = int(pos.sum())
        n_pos_total += n_pos
        labels = pos.long()
        ce = F.cross_entropy(out["conf"][b], labels, reduction="none")
        neg_ce = ce.detach().clone()
        neg_ce[pos] = -1.0
        n_neg = min(neg_pos_ratio * max(n_pos, 1), int((~pos).sum()))
        hard_neg = neg_ce.topk(n_neg).indices
        conf_l.append(ce[pos].sum() + ce[hard_neg].sum())
        if n_pos == 0:
            continue
        pp = pri[pos]
        gi = best_gt[pos]
        loc_l.append(F.smooth_l1_loss(out["loc"][b][pos], box_utils.encode_boxes(tgt.boxes[gi], pp), reduction="sum"))
        lm = tgt.landmarks[gi]
        has_lm = torch.isfinite(lm).all(dim=1)
        if has_lm.any():
            enc = box_utils.encode_landmarks(lm[has_lm], pp[has_lm])
            lm_l.append(F.smooth_l1_loss(out["landmarks"][b][pos][has_lm], enc, reduction="sum"))
        pred_r = sixd_to_matrix(out["pose6d"][b][pos])
        pose_l.append(geodesic_loss(pred_r, tgt.rotations[gi]) * n_pos)
    denom = normalizer(n_pos_total) if normalizer is not None else max(n_pos_total, 1)
    zero = out["loc"].sum() * 0.0

    def total_of(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(parts).sum() / denom if parts else zero

    terms = {"box": total_of(loc_l), "class": total_of(conf_l), "landmarks": total_of(lm_l), "pose": total_of(pose_l)}
    terms["total"] = (box_weight * terms["box"] + terms["class"] + landmark_weight * terms["landmarks"]
                      + pose_weight * terms["pose"])
    return terms
