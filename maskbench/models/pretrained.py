"""Starting weights for ``maskbench train --init PATH``: a maskbench checkpoint, or the RetinaFace
MobileNet-0.25 release (``mobilenet0.25_Final.pth``, trained on WIDER FACE) mapped into the
reference model.

The release's layout and the mapping (the pose head has no counterpart and starts fresh)::

    body.stage{1,2,3}.*                 -> backbone.stage{1,2,3}.*
    fpn.output{k}.*  (k = 1..3)         -> fpn.lateral.{k-1}.*
    fpn.merge{k}.*   (k = 1..2)         -> fpn.merge.{k-1}.*
    ssh{k}.conv3X3 / conv5X5_1 / conv5X5_2 / conv7X7_2 / conv7x7_3
                                        -> ssh.{k-1}.b3 / b5_1 / b5_2 / b7_2 / b7_3
    ClassHead.{k}.conv1x1 / BboxHead.{k}.conv1x1 / LandmarkHead.{k}.conv1x1
                                        -> heads.conf.{k} / heads.loc.{k} / heads.landmarks.{k}

The release was trained on BGR pixels minus the mean (104, 117, 123), not scaled; a model started
from it keeps that input normalisation (``RetinaFacePose(input_norm="bgr-mean")``: the network
still takes RGB in [0, 1] and converts exactly inside), and the checkpoint's config records it, so
evaluation and export apply the same.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from maskbench.models.retinaface import POSE_HEAD_KEYS, RetinaFacePose

RELEASE_NORM = "bgr-mean"

_RULES = [
    (re.compile(r"^body\.(stage[123]\..*)$"), r"backbone.\1"),
    (re.compile(r"^fpn\.output([123])\.(.*)$"), lambda m: f"fpn.lateral.{int(m[1]) - 1}.{m[2]}"),
    (re.compile(r"^fpn\.merge([12])\.(.*)$"), lambda m: f"fpn.merge.{int(m[1]) - 1}.{m[2]}"),
    (re.compile(r"^ssh([123])\.(conv3X3|conv5X5_1|conv5X5_2|conv7X7_2|conv7x7_3)\.(.*)$"),
     lambda m: f"ssh.{int(m[1]) - 1}.{_SSH[m[2]]}.{m[3]}"),
    (re.compile(r"^(ClassHead|BboxHead|LandmarkHead)\.([012])\.conv1x1\.(.*)$"),
     lambda m: f"heads.{_HEADS[m[1]]}.{m[2]}.{m[3]}"),
]
_SSH = {"conv3X3": "b3", "conv5X5_1": "b5_1", "conv5X5_2": "b5_2", "conv7X7_2": "b7_2", "conv7x7_3": "b7_3"}
_HEADS = {"ClassHead": "conf", "BboxHead": "loc", "LandmarkHead": "landmarks"}


def load_weights_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors for a truncated file, a pickle that
    needs code to load, or anything that is not a torch file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError, TypeError,
            OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            why = "refused: it is a pickle that needs code to load (only tensors and plain values are read)"
        elif isinstance(exc, EOFError | OSError) or "truncated" in str(exc).lower() or "central directory" in str(exc):
            why = "the file is truncated or corrupt"
        else:
            why = f"not a readable torch weights file ({first[:160]})"
        raise ValueError(f"{path}: {why}") from None


def is_release_layout(state: dict[str, Any]) -> bool:
    return any(k.startswith("body.stage") for k in state) and any(k.startswith("ClassHead.") for k in state)


def map_release(state: dict[str, torch.Tensor], model: RetinaFacePose) -> dict[str, torch.Tensor]:
    """The release's tensors under the reference model's names. Raises ValueError listing release keys
    that have no place, and model keys (other than the pose head) that the release does not fill."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unplaced = []
    for key, tensor in state.items():
        target = None
        for pattern, repl in _RULES:
            m = pattern.match(key)
            if m:
                target = m.expand(repl) if isinstance(repl, str) else repl(m)
                break
        if target is None or target not in own or own[target].shape != tensor.shape:
            unplaced.append(key if target is None or target not in own else
                            f"{key} {tuple(tensor.shape)} vs {target} {tuple(own[target].shape)}")
            continue
        mapped[target] = tensor
    unfilled = [k for k in own if k not in mapped and not k.startswith("heads.pose6d")]
    if unplaced or unfilled:
        raise ValueError("not the RetinaFace-MobileNet0.25 release layout: "
                         + (f"{len(unplaced)} key(s) could not be placed: {', '.join(unplaced[:12])}" if unplaced else "")
                         + ("; " if unplaced and unfilled else "")
                         + (f"{len(unfilled)} model key(s) left empty: {', '.join(unfilled[:12])}" if unfilled else ""))
    return mapped


def init_model(path: Path, config: dict[str, Any]) -> tuple[RetinaFacePose, dict[str, Any]]:
    """The reference model started from ``path`` and the network keys that describe it
    (``pose_channels``/``pose_layers`` when set, ``input_norm``), for the caller to record; ``config`` is
    only read. ``path`` is a maskbench checkpoint (its network, weights and input normalisation) or the
    RetinaFace release (mapped into the network ``config`` describes, with the release's
    normalisation). Raises ValueError (one line) for anything else."""
    data = load_weights_file(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict or a maskbench checkpoint), "
                         f"got {type(data).__name__}")
    if "state_dict" in data and isinstance(data["state_dict"], dict):  # a maskbench checkpoint
        saved = data.get("config", {})
        network = {key: saved[key] for key in POSE_HEAD_KEYS if key in saved}  # the network is the checkpoint's
        network["input_norm"] = saved.get("input_norm", "rgb01")
        model = RetinaFacePose.from_config(network)
        try:
            model.load_state_dict(data["state_dict"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: checkpoint weights do not fit the reference model "
                             f"({str(exc).splitlines()[0]})") from None
        return model, network
    if is_release_layout(data):
        network = {key: config[key] for key in POSE_HEAD_KEYS if key in config}
        network["input_norm"] = RELEASE_NORM
        model = RetinaFacePose.from_config(network)
        model.load_state_dict(map_release(data, model), strict=False)
        return model, network
    keys = list(data)[:12]
    raise ValueError(f"{path}: unknown weights layout (neither a maskbench checkpoint nor the RetinaFace-MobileNet0.25 "
                     f"release); first keys: {', '.join(map(str, keys))}")
