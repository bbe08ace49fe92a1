"""The runtimes a model card can name: how its authors' weight files are read and run, each behind the optional
extra ``pip install 'maskbench[cards]'`` where it needs a library maskbench does not otherwise install.

=============  =================================================  ============================================
runtime        weights (as the authors release them)              needs
=============  =================================================  ============================================
onnx           ``*.onnx`` (several are averaged)                  onnxruntime
torchscript    ``*.pt``                                           torch
whenet-h5      ``WHENet.h5`` (Keras 2.1.6 weights)                h5py (read), onnxruntime (run; exported in
                                                                  memory from :mod:`maskbench.models.published`)
3ddfa-v2       ``mb05_120x120.pth`` + the mean/std ``.pkl``       torch
openvino       ``*.xml`` with its ``.bin`` beside it              openvino
mediapipe      ``face_landmarker.task``                           mediapipe (the whole image; it finds faces)
=============  =================================================  ============================================

:func:`open_card_runner` returns ``run(x) -> (N, K)`` for the crop runtimes; :class:`MediaPipeFaces` serves the
whole-image one. A missing library is a :class:`~maskbench.evaluation.cards.CardError` of one line naming the extra;
an unreadable or foreign weights file one line naming the file.
"""

from __future__ import annotations

import atexit
import io
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from maskbench.evaluation.runners import open_runner

EXTRA = "pip install 'maskbench[cards]'"
#: The weight file suffixes of each runtime (in the order the card lists them).
RUNTIME_SUFFIXES: dict[str, tuple[str, ...]] = {
    "onnx": (".onnx",), "torchscript": (".pt",), "whenet-h5": (".h5",), "3ddfa-v2": (".pth", ".pkl"),
    "openvino": (".xml",), "mediapipe": (".task",),
}
#: The library each runtime imports, for the one-line "install the extra" message.
RUNTIME_LIBRARIES = {"onnx": "onnxruntime", "whenet-h5": "h5py", "openvino": "openvino", "mediapipe": "mediapipe"}

Run = Callable[[np.ndarray], np.ndarray]


class RuntimeMissing(ValueError):
    """The library a card's runtime needs is not installed."""


def require(runtime: str, card_name: str) -> None:
    """Import the runtime's library or raise :class:`RuntimeMissing` naming the extra."""
    import importlib

    for library in [RUNTIME_LIBRARIES.get(runtime)] + (["onnxruntime"] if runtime == "whenet-h5" else []):
        if library is None:
            continue
        try:
            importlib.import_module(library)
        except ImportError:
            raise RuntimeMissing(f"card {card_name} needs the {library} package: {EXTRA}") from None


def runtime_of(weights: Sequence[str]) -> str:
    """The runtime a card without a ``runtime`` field uses: ONNX or TorchScript by the files' suffix."""
    return "onnx" if all(w.endswith(".onnx") for w in weights) else "torchscript"


def open_card_runner(runtime: str, paths: Sequence[Path], device: str, outputs: Sequence[str] = ()) -> list[Run]:
    """One ``run`` per model of the card (several for an averaged ONNX/TorchScript family, else one)."""
    if runtime in ("onnx", "torchscript"):
        return [open_runner(p, device)[0] for p in paths]
    if runtime == "whenet-h5":
        from maskbench.models.published import load_whenet_h5

        return [_onnx_in_memory(load_whenet_h5(paths[0]), (1, 3, 224, 224))]
    if runtime == "3ddfa-v2":
        from maskbench.models.published import load_3ddfa_v2

        return [_torch_run(load_3ddfa_v2(paths[0], paths[1]), device)]
    if runtime == "openvino":
        return [_openvino_run(paths[0], outputs)]
    raise ValueError(f"runtime {runtime} has no crop runner")


def _torch_run(net: object, device: str) -> Run:
    import torch

    net = net.to(device)  # type: ignore[attr-defined]

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x).to(device)).cpu().numpy()  # type: ignore[operator, no-any-return]

    return run


def _onnx_in_memory(net: object, example_shape: tuple[int, ...]) -> Run:
    """A torch network exported to ONNX in memory and run by onnxruntime: on 2 CPU cores WHENet's
    EfficientNet runs about 3x faster there than in eager torch (measured: 35 vs 102 ms a face)."""
    import warnings

    import onnxruntime
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(example_shape), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    return lambda x: np.asarray(session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0])


def _openvino_run(xml: Path, outputs: Sequence[str]) -> Run:
    """An OpenVINO IR compiled for the CPU with a free batch size; the outputs read by name, in ``outputs``
    order (a compiled model's output order is not the README's)."""
    import openvino

    core = openvino.Core()
    try:
        model = core.read_model(str(xml))
        name = model.inputs[0].get_any_name()
        shape = list(model.inputs[0].get_partial_shape().to_shape())
        model.reshape({name: [-1, *shape[1:]]})
        compiled = core.compile_model(model, "CPU")
        ports = [compiled.output(o) for o in outputs]
    except Exception as exc:  # openvino raises RuntimeError subclasses of its own for bad files
        first = str(exc).strip().splitlines()
        raise ValueError(f"{xml}: not a readable OpenVINO model with outputs {', '.join(outputs)} "
                         f"({first[0][:120] if first else type(exc).__name__})") from None
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        result = request.infer({name: np.ascontiguousarray(x, np.float32)})
        return np.stack([np.asarray(result[p]).reshape(len(x)) for p in ports], axis=1)

    return run


#: Open landmarkers, kept for the life of the process: mediapipe's ``FaceLandmarker.__del__`` closes its graph
#: and, run by the garbage collector at an arbitrary point, was seen to deadlock waiting on its own dispatcher.
#: They are closed at exit (:func:`_close_landmarkers`), while mediapipe is still whole.
_LANDMARKERS: dict[tuple[str, int], object] = {}


@cache
def _close_at_exit() -> None:
    """Have :func:`_close_landmarkers` run at exit BEFORE mediapipe's thread pool shuts down: a landmarker
    closes through mediapipe's own dispatcher, a ``concurrent.futures`` pool that is shut down by
    ``threading``'s exit hooks, which run before ``atexit``'s and last-registered first. So the hook is
    registered (once: cached) after the first detection, when that pool exists: it then runs before the
    pool's shutdown. ``threading._register_atexit`` is what ``concurrent.futures`` itself uses; ``atexit``
    where it is missing."""
    import threading

    register = getattr(threading, "_register_atexit", None)
    try:
        (register or atexit.register)(_close_landmarkers)
    except RuntimeError:  # the interpreter is already shutting down
        pass


def _close_landmarkers() -> None:
    """Close every open landmarker (at exit, :func:`_close_at_exit`): left to ``__del__`` during interpreter
    teardown, a close found mediapipe's dispatcher already gone and printed "Exception ignored ...
    'NoneType' object is not callable" after every command or test run that used the MediaPipe card."""
    while _LANDMARKERS:
        _, landmarker = _LANDMARKERS.popitem()
        try:
            landmarker.close()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - at exit nothing can be done about a failed close
            pass


def _open_landmarker(task: Path, max_faces: int) -> object:
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(task)), running_mode=vision.RunningMode.IMAGE,
        num_faces=max_faces, output_facial_transformation_matrixes=True)
    try:
        return vision.FaceLandmarker.create_from_options(options)
    except Exception as exc:  # mediapipe raises RuntimeError/ValueError for files that are not tasks
        first = str(exc).strip().splitlines()
        raise ValueError(f"{task}: not a MediaPipe face landmarker task "
                         f"({first[0][:120] if first else type(exc).__name__})") from None


class MediaPipeFaces:
    """MediaPipe Face Landmarker on whole images: per image, each face's landmark box (x0, y0, x1, y1
    pixels, from its 478 landmarks) and its 4x4 facial transformation matrix's rotation (OpenGL frame)."""

    def __init__(self, task: Path, max_faces: int = 4) -> None:
        key = (str(Path(task).resolve()), max_faces)
        if key not in _LANDMARKERS:
            _LANDMARKERS[key] = _open_landmarker(task, max_faces)
        self.landmarker = _LANDMARKERS[key]

    def faces(self, image_rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
        import mediapipe

        h, w = image_rgb.shape[:2]
        image = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=np.ascontiguousarray(image_rgb))
        result = self.landmarker.detect(image)  # type: ignore[attr-defined]
        _close_at_exit()
        out = []
        for points, transform in zip(result.face_landmarks, result.facial_transformation_matrixes):
            xs, ys = np.array([p.x for p in points]) * w, np.array([p.y for p in points]) * h
            out.append(((float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
                        np.asarray(transform, np.float64)[:3, :3]))
        return out
