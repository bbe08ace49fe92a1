"""Exported networks as plain functions: one loader for TorchScript (``.pt``) and ONNX (``.onnx``) files,
used by the file adapters and by model cards alike.

A file written by ``maskbench export`` carries :data:`METADATA_KEY` (a TorchScript extra file, an ONNX
metadata entry): JSON saying how it wants its input framed (:func:`open_runner` returns it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Name of the JSON metadata ``maskbench export`` writes into the file.
METADATA_KEY = "maskbench.json"

Runner = Callable[[np.ndarray], np.ndarray]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def _metadata(text: str | bytes | None, path: Path) -> dict:  # type: ignore[type-arg]
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        raise ValueError(f"{path}: its {METADATA_KEY} metadata is not JSON") from None
    return meta if isinstance(meta, dict) else {}


def open_runner(path: Path, device: str = "cpu") -> tuple[Runner, str, dict]:  # type: ignore[type-arg]
    """``(run, device_used, metadata)``: ``run(x)`` feeds the float32 array ``x`` to the network's first input and
    returns its first output as an array; ``metadata`` is the file's :data:`METADATA_KEY` JSON ({} when
it has none). ONNX runs on onnxruntime (CUDA when ``device`` is cuda and
    the provider exists); anything else is loaded as TorchScript. A one-line ValueError for a file
    that is not a model of its kind or a missing onnxruntime."""
    if path.suffix == ".onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ValueError(f"{path}: ONNX models need onnxruntime: pip install 'maskbench[onnx]'") from None
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise ValueError(f"{path}: not a readable ONNX model ({exc})") from None
        name = session.get_inputs()[0].name
        used = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        meta = _metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
        return (lambda x: np.asarray(session.run(None, {name: x})[0])), used, meta
    import torch

    try:
        extra = {METADATA_KEY: ""}
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
    except Exception as exc:  # torch raises RuntimeError and others for files that are not TorchScript
        raise ValueError(f"{path}: not a TorchScript model ({_first_line(exc)}); export one with "
                         "`maskbench export` or torch.jit.save") from None

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x).to(device)).detach().cpu().numpy()  # type: ignore[no-any-return]

    return run, device, _metadata(extra[METADATA_KEY], path)
