"""A trained checkpoint as a crop -> pose function: TorchScript (``.pt``) or ONNX (``.onnx``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from maskbench.io.atomic import atomic_write
from maskbench.models import box_utils
from maskbench.models.inference import load_model_from_checkpoint, mean_rotation, mirrored, top_rotations
from maskbench.models.retinaface import RetinaFacePose


class PoseExport(nn.Module):
    """The reference model as a crop -> pose function for TorchScript/ONNX export.

    Input: (N, 3, H, W) float RGB in [0, 1] face crops, framed as the checkpoint path frames them: the
    crop (labelled box + 25 %) scaled so its longer side is the trained ``image_size``, in the top-left
    of a black ``image_size`` square (:func:`maskbench.models.canvas.letterbox`); another H, W is
    resized to ``image_size`` first. Output: (N, 3, 3) rotation matrices (maskbench convention) of each
    crop's highest-scoring face, voted by the agreeing anchors and averaged with the mirrored canvas's,
    exactly :func:`maskbench.models.inference.top_face_rotations`. The file records that framing
    (``{"input": "letterbox", "size": image_size}``), and the evaluator's ``.pt``/``.onnx`` adapters
    feed it so: the export computes the checkpoint's poses (``tests/test_training.py`` pins it).
    """

    def __init__(self, model: RetinaFacePose, image_size: int) -> None:
        super().__init__()
        self.model = model.eval()
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        pri = box_utils.priors(self.image_size, self.image_size).to(x.device)
        rots = top_rotations(self.model(x), pri)
        mirror = mirrored(top_rotations(self.model(x.flip(-1)), pri))
        return mean_rotation(rots, mirror).float()


def export(checkpoint: Path, out_path: Path, fmt: str) -> Path:
    """Write a checkpoint as TorchScript (``.pt``) or ONNX (``.onnx``, opset 17, dynamic batch), with
    the input framing in the file's metadata (:data:`maskbench.evaluation.runners.METADATA_KEY`)."""
    from maskbench.evaluation.runners import METADATA_KEY

    model, ckpt = load_model_from_checkpoint(checkpoint)
    size = int(ckpt["config"]["image_size"])
    wrapper = PoseExport(model, size).eval()
    meta = json.dumps({"input": "letterbox", "size": size, "output": "rotation matrix (N, 3, 3)"})
    example = torch.rand(2, 3, size, size)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example)
        atomic_write(out_path, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files={METADATA_KEY: meta}))
    elif fmt == "onnx":
        try:
            import onnx
        except ImportError:
            raise ValueError("ONNX export needs the onnx package: pip install 'maskbench[onnx]'") from None

        def write(tmp: Path) -> None:
            torch.onnx.export(wrapper, (example,), str(tmp), input_names=["crops"], output_names=["rotation"],
                              opset_version=17, dynamic_axes={"crops": {0: "n"}, "rotation": {0: "n"}}, dynamo=False)
            graph = onnx.load(str(tmp))
            entry = graph.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, meta
            onnx.save(graph, str(tmp))

        atomic_write(out_path, write)
    else:
        raise ValueError(f"unknown export format {fmt!r}: torchscript or onnx")
    return out_path
