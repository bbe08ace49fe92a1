"""RetinaFace-style single-stage detector with a 6D pose head (plain torch).

MobileNet-0.25 backbone -> FPN (3 levels) -> SSH context modules -> per-anchor heads: face score
(2), box (4), five landmarks (10) (1x1 convolutions, as in RetinaFace) and a 6D rotation (6): two
3x3 conv-BN-LeakyReLU layers then a 1x1 convolution (a linear read-out of one location fitted pose
poorly on the sample data: 16 deg pitch error on the training images). Anchors: :func:`box_utils.priors`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from maskbench.models.backbones import MobileNetV1, conv_bn

ANCHORS_PER_LOCATION = 2
#: Input normalisations: ``rgb01`` (the network sees RGB in [0, 1]: maskbench's own training) and
#: ``bgr-mean`` (BGR 0..255 minus (104, 117, 123): what the RetinaFace release was trained on).
#: Either way the model's input is RGB in [0, 1]; the conversion happens inside, exactly.
INPUT_NORMS = ("rgb01", "bgr-mean")
BGR_MEAN = (104.0, 117.0, 123.0)
#: Config keys that shape the pose head (:meth:`RetinaFacePose.from_config`).
POSE_HEAD_KEYS = ("pose_channels", "pose_layers")


def conv_bn_no_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.1))
            for c in in_channels
        )
        self.merge = nn.ModuleList(conv_bn(out_channels, out_channels, 1) for _ in in_channels[:-1])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [m(f) for m, f in zip(self.lateral, feats)]
        outs = [lat[-1]]
        for k in range(len(lat) - 2, -1, -1):
            up = F.interpolate(outs[0], size=lat[k].shape[-2:], mode="nearest")
            outs.insert(0, self.merge[k](lat[k] + up))
        return outs


class SSH(nn.Module):
    """Context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches concatenated."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.b3 = conv_bn_no_relu(cin, cout // 2)
        self.b5_1 = conv_bn(cin, cout // 4, 1)
        self.b5_2 = conv_bn_no_relu(cout // 4, cout // 4)
        self.b7_2 = conv_bn(cout // 4, cout // 4, 1)
        self.b7_3 = conv_bn_no_relu(cout // 4, cout // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.b5_1(x)
        return F.relu(torch.cat([self.b3(x), self.b5_2(t), self.b7_3(self.b7_2(t))], dim=1))


class RetinaFacePose(nn.Module):
    """Outputs per anchor: ``loc`` (N, P, 4), ``conf`` (N, P, 2), ``landmarks`` (N, P, 10), ``pose6d`` (N, P, 6)."""

    def __init__(self, fpn_channels: int = 64, input_norm: str = "rgb01", pose_channels: int | None = None,
                 pose_layers: int = 2) -> None:
        super().__init__()
        pose_channels = pose_channels or fpn_channels
        if pose_layers < 1 or pose_channels < 1:
            raise ValueError(f"pose_layers and pose_channels must be >= 1, got {pose_layers} and {pose_channels}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
        self.input_norm = input_norm
        self.register_buffer("input_mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.backbone = MobileNetV1()
        self.fpn = FPN(MobileNetV1.out_channels, fpn_channels)
        self.ssh = nn.ModuleList(SSH(fpn_channels, fpn_channels) for _ in MobileNetV1.out_channels)
        a = ANCHORS_PER_LOCATION
        self.heads = nn.ModuleDict({
            name: nn.ModuleList(nn.Conv2d(fpn_channels, a * k, 1) for _ in MobileNetV1.out_channels)
            for name, k in (("loc", 4), ("conf", 2), ("landmarks", 10))
        })
        # pose needs more than a linear read-out of one location: ``pose_layers`` 3x3 conv layers of
        # ``pose_channels`` before it
        self.heads["pose6d"] = nn.ModuleList(
            nn.Sequential(*(conv_bn(fpn_channels if k == 0 else pose_channels, pose_channels, 1)
                            for k in range(pose_layers)),
                          nn.Conv2d(pose_channels, a * 6, 1))
            for _ in MobileNetV1.out_channels
        )
        with torch.no_grad():  # start the pose head at the identity rotation
            for tower in self.heads["pose6d"]:
                tower[-1].weight.mul_(0.01)
                tower[-1].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0] * a))

    @classmethod
    def from_config(cls, config: dict[str, Any], input_norm: str | None = None) -> RetinaFacePose:
        """The network a training config describes (``pose_channels``, ``pose_layers``; the input
        normalisation from ``input_norm`` or the config's, default ``rgb01``)."""
        channels = config.get("pose_channels")
        return cls(input_norm=input_norm or str(config.get("input_norm", "rgb01")),
                   pose_channels=None if channels is None else int(channels),
                   pose_layers=int(config.get("pose_layers", 2)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: (N, 3, H, W) RGB in [0, 1], whatever the input normalisation."""
        if self.input_norm == "bgr-mean":
            x = x.flip(1) * 255.0 - self.input_mean
        feats = [m(f) for m, f in zip(self.ssh, self.fpn(self.backbone(x)))]
        out = {}
        for name, convs in self.heads.items():
            last = convs[0] if isinstance(convs[0], nn.Conv2d) else convs[0][-1]
            k = last.out_channels // ANCHORS_PER_LOCATION
            parts = [c(f).permute(0, 2, 3, 1).reshape(x.shape[0], -1, k) for c, f in zip(convs, feats)]
            out[name] = torch.cat(parts, dim=1)
        return out
