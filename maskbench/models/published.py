"""Networks of published head-pose models, in plain torch, loaded from their authors' weight files as released.

* :class:`WHENetNet`: WHENet (Zhou & Gregson, BMVC 2020): EfficientNet-B0 (TF "same" padding, swish, batch
  norm eps 1e-3, squeeze-excite with max(1, int(0.25 x block input)) channels), global average pooling and
  three dense bin heads (yaw 120, pitch 66, roll 66). :func:`load_whenet_h5` reads the authors' Keras 2.1.6
  HDF5 file with ``h5py`` (weights only: they are matched to the network by the order of the file's weighted
  layers, which is the order Keras created them in).
* :class:`MobileNetV1TDDFA`: 3DDFA_V2's MobileNet V1 (widen factor 0.5, 120 px input, 62 outputs = 12 camera
  + 40 shape + 10 expression parameters, batch norm eps 1e-5, ReLU). :func:`load_3ddfa_v2` reads the authors'
  ``torch.save`` checkpoint (``module.`` prefix stripped, ``fc_param`` is the head; the ``fc_lm``
  landmark head is kept only when asked: the ``detected`` mask placement reads it) and the parameter
  mean/std pickle.

timm's TF-padded EfficientNet would serve WHENet, but ``pip install timm`` pulls a torchvision whose CUDA torch
does not load beside the CPU torch maskbench pins; the network is 60 lines.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: EfficientNet-B0 stages: (expand ratio, kernel, stride, output channels, repeats).
EFFICIENTNET_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                   (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
KERAS_BN_EPS = 1e-3
#: WHENet's bins (authors' whenet.py): yaw 120 bins of 3 degrees from -180, pitch and roll 66 from -99.
WHENET_BINS = {"yaw": (120, -180.0), "pitch": (66, -99.0), "roll": (66, -99.0)}
WHENET_BIN_DEG = 3.0


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (asymmetric, more at the end, for stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for axis in (1, 0):  # width first: F.pad takes the last dimension first
            size, k, s = x.shape[2 + axis], self.kernel_size[axis], self.stride[axis]
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=KERAS_BN_EPS)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = nn.Sequential(SameConv(cin, mid, 1, bias=False), _bn(mid), nn.SiLU()) if expand != 1 else nn.Identity()
        self.depthwise = nn.Sequential(SameConv(mid, mid, k, stride, groups=mid, bias=False), _bn(mid), nn.SiLU())
        squeeze = max(1, int(cin * 0.25))
        self.se_reduce, self.se_expand = nn.Conv2d(mid, squeeze, 1), nn.Conv2d(squeeze, mid, 1)
        self.project = nn.Sequential(SameConv(mid, cout, 1, bias=False), _bn(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        y = y * torch.sigmoid(self.se_expand(F.silu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        y = self.project(y)
        return x + y if self.residual else y


class WHENetNet(nn.Module):
    """EfficientNet-B0 + three bin heads; ``forward`` returns (N, 3) yaw, pitch, roll in degrees, WHENet's
    decoding (softmax expectation of the bin index x 3 + the bins' start), HopeNet/300W_LP convention."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(SameConv(3, 32, 3, 2, bias=False), _bn(32), nn.SiLU())
        blocks, cin = [], 32
        for expand, k, stride, cout, repeats in EFFICIENTNET_B0:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, k, stride if r == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(SameConv(cin, 1280, 1, bias=False), _bn(1280), nn.SiLU())
        self.fcs = nn.ModuleDict({name: nn.Linear(1280, bins) for name, (bins, _) in WHENET_BINS.items()})
        for name, (bins, start) in WHENET_BINS.items():
            self.register_buffer(f"deg_{name}", torch.arange(bins, dtype=torch.float32) * WHENET_BIN_DEG + start)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(self.blocks(self.stem(x))).mean((2, 3))
        return torch.stack([(F.softmax(self.fcs[name](feat), dim=1) * getattr(self, f"deg_{name}")).sum(1)
                            for name in WHENET_BINS], dim=1)


def _keras_layers(path: Path) -> list[tuple[str, list[np.ndarray]]]:
    """(layer name, weight arrays) of each weighted layer of a Keras HDF5 weights file, in file order."""
    import h5py

    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        out = []
        for name in names:
            group = f[name]
            weights = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs["weight_names"]]
            if weights:
                out.append((name, [np.asarray(group[w]) for w in weights]))
    return out


def _torch_targets(net: WHENetNet) -> list[tuple[str, nn.Module]]:
    """The network's weighted modules in the order Keras created the release's layers."""
    out: list[tuple[str, nn.Module]] = [("conv", net.stem[0]), ("bn", net.stem[1])]
    for block in net.blocks:
        if not isinstance(block.expand, nn.Identity):
            out += [("conv", block.expand[0]), ("bn", block.expand[1])]
        out += [("dwconv", block.depthwise[0]), ("bn", block.depthwise[1]), ("conv", block.se_reduce),
                ("conv", block.se_expand), ("conv", block.project[0]), ("bn", block.project[1])]
    out += [("conv", net.head[0]), ("bn", net.head[1])]
    return out + [("dense", net.fcs[name]) for name in WHENET_BINS]


def load_whenet_h5(path: Path) -> WHENetNet:
    """WHENet from the authors' ``WHENet.h5``; a one-line ValueError when the file is not that release."""
    net = WHENetNet()
    try:
        layers = _keras_layers(path)
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a Keras HDF5 weights file ({exc})") from None
    targets = _torch_targets(net)
    if len(layers) != len(targets):
        raise ValueError(f"{path}: {len(layers)} weighted layers, WHENet has {len(targets)}; not WHENet's release")
    with torch.no_grad():
        for (name, arrays), (kind, module) in zip(layers, targets):
            t = [torch.from_numpy(a.astype(np.float32)) for a in arrays]
            try:
                if kind == "bn":
                    for dst, src in zip((module.weight, module.bias, module.running_mean, module.running_var), t):
                        dst.copy_(src)
                elif kind == "dense":
                    module.weight.copy_(t[0].T)
                    module.bias.copy_(t[1])
                else:  # conv (kh, kw, in, out) -> (out, in, kh, kw); depthwise (kh, kw, C, 1) -> (C, 1, kh, kw)
                    module.weight.copy_(t[0].permute(2, 3, 0, 1) if kind == "dwconv" else t[0].permute(3, 2, 0, 1))
                    if len(t) > 1:
                        module.bias.copy_(t[1])
            except RuntimeError:
                raise ValueError(f"{path}: layer {name} has shapes {[a.shape for a in arrays]}, not WHENet's") from None
    return net.eval()


def _dw_sep(cin: int, cout: int, stride: int) -> nn.Module:
    block = nn.Module()
    block.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
    block.bn_dw = nn.BatchNorm2d(cin)
    block.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
    block.bn_sep = nn.BatchNorm2d(cout)
    return block


#: 3DDFA_V2's MobileNet V1 depthwise-separable blocks at width 1: (name, in, out, stride).
TDDFA_BLOCKS = (("dw2_1", 32, 64, 1), ("dw2_2", 64, 128, 2), ("dw3_1", 128, 128, 1), ("dw3_2", 128, 256, 2),
                ("dw4_1", 256, 256, 1), ("dw4_2", 256, 512, 2), ("dw5_1", 512, 512, 1), ("dw5_2", 512, 512, 1),
                ("dw5_3", 512, 512, 1), ("dw5_4", 512, 512, 1), ("dw5_5", 512, 512, 1), ("dw5_6", 512, 1024, 2),
                ("dw6", 1024, 1024, 1))


class MobileNetV1TDDFA(nn.Module):
    """3DDFA_V2's MobileNet V1 at a widen factor; ``forward`` returns the 62 parameters, de-normalised
    (output x std + mean) when :func:`load_3ddfa_v2` gave it the release's mean and std."""

    def __init__(self, widen: float = 0.5, outputs: int = 62, landmark_head: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, int(32 * widen), 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(int(32 * widen))
        self.names = [name for name, *_ in TDDFA_BLOCKS]
        for name, cin, cout, stride in TDDFA_BLOCKS:
            setattr(self, name, _dw_sep(int(cin * widen), int(cout * widen), stride))
        self.fc = nn.Linear(int(1024 * widen), outputs)
        #: the release's second head (``fc_lm``): 68 landmarks of the crop, all x then all y, in [-1, 1]
        #: across the crop (pixel = (value + 1) x side / 2; measured on dev photos, 0.997 correlation)
        self.fc_lm = nn.Linear(int(1024 * widen), 136) if landmark_head else None
        self.register_buffer("param_mean", torch.zeros(outputs))
        self.register_buffer("param_std", torch.ones(outputs))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for name in self.names:
            b = getattr(self, name)
            x = F.relu(b.bn_sep(b.conv_sep(F.relu(b.bn_dw(b.conv_dw(x))))))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)) * self.param_std + self.param_mean

    def landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) landmarks in [-1, 1] crop units (x right, y down) from the landmark head."""
        if self.fc_lm is None:
            raise ValueError("this network was loaded without the landmark head (landmark_head=True)")
        return self.fc_lm(self.features(x)).reshape(-1, 2, 68).transpose(1, 2)


def load_3ddfa_v2(checkpoint: Path, mean_std: Path, landmark_head: bool = False) -> MobileNetV1TDDFA:
    """3DDFA_V2 MobileNet x0.5 from the authors' ``mb05_120x120.pth`` and ``param_mean_std_62d_120x120.pkl``
    (a pickle of two numpy arrays, the authors' own file); one-line ValueError for anything else.
    ``landmark_head``: keep the release's 68-landmark head (``fc_lm``) too."""
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files that are not checkpoints
        raise ValueError(f"{checkpoint}: not a readable torch checkpoint ({type(exc).__name__})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: not a 3DDFA_V2 checkpoint (no state_dict)")
    state = {k.removeprefix("module.").replace("fc_param.", "fc."): v for k, v in state.items()
             if landmark_head or not k.removeprefix("module.").startswith("fc_lm.")}
    net = MobileNetV1TDDFA(landmark_head=landmark_head)
    try:
        with open(mean_std, "rb") as f:
            stats = _NumpyOnlyUnpickler(f).load()
        state["param_mean"] = torch.as_tensor(np.asarray(stats["mean"], np.float32))
        state["param_std"] = torch.as_tensor(np.asarray(stats["std"], np.float32))
        net.load_state_dict(state, strict=True)
    except (OSError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{checkpoint}: not 3DDFA_V2's MobileNet x0.5 release ({str(exc).splitlines()[0][:120]})") from None
    return net.eval()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Reads the authors' mean/std pickle, refusing any class but numpy's array machinery."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}; only numpy arrays are read")
        return super().find_class(module, name)  # type: ignore[no-any-return]
