"""6D rotation representation (Zhou et al., CVPR 2019) and the geodesic loss, in torch.

The 6 numbers are the first two columns of the rotation matrix, unnormalised; Gram-Schmidt turns
them into a rotation. Matrices are in the maskbench convention (:mod:`maskbench.geometry`).
"""

from __future__ import annotations

import torch


def sixd_to_matrix(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) rotation matrices with columns b1, b2, b1 x b2."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    a2 = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_sixd(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    return torch.cat([r[..., :, 0], r[..., :, 1]], dim=-1)


def geodesic_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean rotation angle (radians) between (N, 3, 3) predictions and targets.

    ``acos`` is clamped away from +-1 so that the gradient stays finite at zero error.
    """
    rel = pred.transpose(-1, -2) @ target
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.acos(cos.clamp(-1.0 + eps, 1.0 - eps)).mean()
