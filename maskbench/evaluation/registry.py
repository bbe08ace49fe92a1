"""The MODEL argument of ``maskbench evaluate``: which adapter or model card serves a name or file.

The one module that imports both :mod:`maskbench.evaluation.adapters` (the built-in adapters) and
:mod:`maskbench.evaluation.cards` (published models with their own preprocessing); both build on
:mod:`~maskbench.evaluation.protocol` (what a model receives), :mod:`~maskbench.evaluation.outputs`
(what it returns) and :mod:`~maskbench.evaluation.runners` (TorchScript/ONNX files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskbench.evaluation.adapters import (
    CallableModel,
    CheckpointModel,
    MeanBaseline,
    OnnxModel,
    PnPBaseline,
    PredictionsFile,
    TorchScriptModel,
)
from maskbench.evaluation.cards import CardModel, builtin_cards, load_card
from maskbench.evaluation.protocol import PoseModel

#: Suffixes that name a model file (a missing one is "not found", not "cannot interpret").
MODEL_FILE_SUFFIXES = (".pt", ".pth", ".onnx", ".json")


def load_model(spec: str | None, *, predictions: Path | None = None, train_matrices: Sequence[np.ndarray] = (),
               device: str = "cpu", weights_dir: Path | None = None) -> PoseModel:
    """Resolve the MODEL argument (see the module docstring)."""
    if predictions is not None:
        return PredictionsFile(predictions)
    if spec is None:
        raise ValueError("give a MODEL, or --predictions FILE.csv")
    if spec == "baseline:mean":
        return MeanBaseline(train_matrices)
    if spec == "baseline:pnp":
        return PnPBaseline()
    path = Path(spec)
    if path.suffix in MODEL_FILE_SUFFIXES and not path.is_file():
        raise ValueError(f"{path}: model file not found" if not path.exists() else f"{path}: not a file")
    if path.suffix == ".pt" and path.is_file():
        return TorchScriptModel(path, device)
    if path.suffix == ".pth":
        return CheckpointModel(path, device)
    if path.suffix == ".onnx" and path.is_file():
        return OnnxModel(path, device)
    if path.suffix == ".json" or spec in builtin_cards():
        return CardModel(load_card(spec), weights_dir, device)
    if ":" in spec and not path.exists():
        return CallableModel(spec)
    raise ValueError(f"cannot interpret model {spec!r}: use baseline:mean, baseline:pnp, a checkpoint .pth, a "
                     "TorchScript .pt, an ONNX .onnx, a model card (.json, or built-in: "
                     f"{', '.join(sorted(builtin_cards()))}), package.module:callable, or --predictions FILE.csv")
