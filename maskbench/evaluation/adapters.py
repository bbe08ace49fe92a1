"""Model adapters: anything that turns face crops into head poses.

Every adapter gets a list of :class:`EvalItem` and returns, per item, a rotation matrix in the
maskbench convention (:mod:`maskbench.geometry`), or the (3,) ``[yaw, pitch, roll]`` degrees a model
output directly (compared with the labels as given, as the literature does), or None for a miss.
A matrix is split into angles by the evaluator's ``--euler`` mode
(:func:`maskbench.evaluation.protocol.predicted_euler_deg`). Which adapter serves a MODEL argument
is :func:`maskbench.evaluation.registry.load_model`'s call.

What each kind of MODEL receives (``--protocol crop``): the ground-truth box enlarged by
``CROP_MARGIN`` (25 %) on every side, clipped to the image. With ``--protocol full`` (models that
detect faces: maskbench checkpoints) the whole image; the detection overlapping the labelled box
by IoU >= 0.4 is scored and a face with none is a miss.

* ``baseline:mean`` predicts the mean rotation of the training labels (the floor to beat).
* ``baseline:pnp`` runs dlib's 68-point predictor inside the ground-truth box and solves PnP
  against maskbench's generic 3D landmarks (intrinsics from ``rgb.cal`` for BIWI, else focal length
  = image width, principal point = image centre): a real training-free estimator whose errors grow
  when masks hide the mouth and nose.
* ``--predictions FILE.csv`` with columns ``id, yaw_deg, pitch_deg, roll_deg`` (ids as in
  ``labels.csv``); a missing id is a miss.
* ``package.module:callable``: called with a list of RGB uint8 crops (H, W, 3); returns one
  output per crop: ``(yaw_deg, pitch_deg, roll_deg)``, a 3x3 rotation matrix, a 6D rotation
  (the first two matrix columns, Gram-Schmidt), or None.
* a maskbench checkpoint ``.pth`` (loaded with ``weights_only=True``): the crop is letterboxed to the
  config's image size and the pose of the highest-scoring face is taken.
* a TorchScript ``.pt`` file: called with a float32 tensor (N, 3, 224, 224), RGB, values in [0, 1],
  the crop resized to 224x224 (aspect not kept; area averaging when the crop is at least twice
  that size, else bilinear); returns (N, 3) Euler degrees, (N, 6) or (N, 3, 3). A file written by
  ``maskbench export`` asks in its metadata for the crop letterboxed at its trained size (the
  checkpoint's framing) and gets it.
* an ONNX ``.onnx`` file (needs ``onnxruntime``: ``pip install maskbench[onnx]``): the same input as
  TorchScript fed to the graph's first input; the first output is read, same shapes accepted.
  ``maskbench export CKPT --format torchscript|onnx`` writes the reference model in both forms.
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskbench import geometry
from maskbench.evaluation.outputs import model_output, to_matrices
from maskbench.evaluation.protocol import FULL_MATCH_IOU, EvalItem, crop_rgb224
from maskbench.evaluation.runners import open_runner


class MeanBaseline:
    """Predicts one rotation: the chordal mean of the training poses."""

    name = "baseline:mean"

    def __init__(self, train_matrices: Sequence[np.ndarray]) -> None:
        if not len(train_matrices):
            raise ValueError("baseline:mean needs training poses (a train split under the data root)")
        self.matrix = geometry.orthonormalize(np.sum(np.asarray(train_matrices), axis=0))

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        return [self.matrix.copy() for _ in items]


class PnPBaseline:
    """dlib 68 landmarks inside the ground-truth box + solvePnP with the generic 3D face."""

    name = "baseline:pnp"

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        import dlib

        from maskbench.synthesis.landmarks import dlib_models, generic_head

        _, predictor = dlib_models()
        model_pts = generic_head().landmarks_mm
        out: list[np.ndarray | None] = []
        for item in items:
            rgb = cv2.cvtColor(item.image_bgr, cv2.COLOR_BGR2RGB)
            b = item.bbox
            shape = predictor(rgb, dlib.rectangle(int(b.x_min), int(b.y_min), int(b.x_max), int(b.y_max)))
            pts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], dtype=np.float64)
            k = item.camera_matrix
            if k is None:
                h, w = item.image_bgr.shape[:2]
                k = np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1.0]])
            ok, rvec, _ = cv2.solvePnP(model_pts, pts, k, None, flags=cv2.SOLVEPNP_ITERATIVE)
            out.append(cv2.Rodrigues(rvec)[0] if ok else None)
        return out


class PredictionsFile:
    """Predictions made elsewhere: a CSV with ``id, yaw_deg, pitch_deg, roll_deg``."""

    def __init__(self, path: Path) -> None:
        self.name = f"predictions:{path.name}"
        self.path = path
        self.protocol_text = ("predictions file: poses computed outside maskbench with the model's own "
                              "preprocessing; maskbench read no image")
        #: ids of the file that some scored sample asked for (the CLI warns when few or none match)
        self.matched: set[str] = set()
        self.table = read_predictions_csv(path)

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        self.matched.update(item.sample_id for item in items if item.sample_id in self.table)
        return [model_output(self.table.get(item.sample_id)) for item in items]

    def coverage(self, rows: Sequence[Sequence[Mapping[str, Any]]], scored: Sequence[int],
                 suites: Sequence[str]) -> tuple[str | None, str | None]:
        """(error, warning) once the suites were scored (``rows``: each suite's scored rows, ``scored``:
        their counts): an error when none of the file's ids is a scored sample, a warning when some
        scored samples have no row (they count as misses)."""
        asked, matched = sum(scored), len(self.matched)
        if matched == 0:
            example = next(iter(self.table), "(empty file)")
            wanted = next((row["id"] for suite in rows for row in suite), "")
            return (f"none of the {len(self.table)} ids in {self.path} is a scored sample of {', '.join(suites)} (the "
                    f"file has ids like {example!r}; the suites want ids like {wanted!r}, as in their labels.csv)"), None
        if matched < asked:
            return None, f"{asked - matched} of {asked} scored samples have no row in {self.path}; they count as misses"
        return None, None


def read_predictions_csv(path: Path) -> dict[str, list[float]]:
    """``id -> [yaw, pitch, roll]`` degrees of a predictions CSV; a one-line ValueError naming the file
    (and the line) for text that is not UTF-8, missing columns, a value that is not a number, or an
    id given twice (the first two repeated ids listed with their lines)."""
    need = {"id", "yaw_deg", "pitch_deg", "roll_deg"}
    table: dict[str, list[float]] = {}
    first_line: dict[str, int] = {}
    repeats: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not need <= set(reader.fieldnames or []):
                raise ValueError(f"{path}: needs columns {', '.join(sorted(need))}, has {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                sid = row["id"]
                try:
                    values = [float(row[k]) for k in ("yaw_deg", "pitch_deg", "roll_deg")]
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: line {line}: yaw_deg, pitch_deg, roll_deg must be numbers, got "
                                     f"{row['yaw_deg']!r}, {row['pitch_deg']!r}, {row['roll_deg']!r}") from None
                if sid in table:
                    repeats.append(f"{sid!r} (lines {first_line[sid]} and {line})")
                    continue
                table[sid], first_line[sid] = values, line
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text CSV file (undecodable bytes)") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    if repeats:
        raise ValueError(f"{path}: {len(repeats)} ids appear more than once, e.g. {'; '.join(repeats[:2])}; "
                         "give one prediction per id")
    return table


class CallableModel:
    """``package.module:callable`` called with RGB uint8 crops."""

    def __init__(self, spec: str) -> None:
        import os
        import sys

        module_name, _, attr = spec.partition(":")
        if os.getcwd() not in sys.path and "" not in sys.path:  # `mymodule:fn` finds ./mymodule.py, as python -m does
            sys.path.insert(0, os.getcwd())
        try:
            self.fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load model {spec!r}: {exc}") from None
        self.name = spec

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        outputs = list(self.fn([item.crop_rgb() for item in items]))
        if len(outputs) != len(items):
            raise ValueError(f"{self.name} returned {len(outputs)} outputs for {len(items)} crops")
        return [model_output(o) for o in outputs]


class TorchScriptModel:
    """A TorchScript file; inputs (N, 3, 224, 224) float RGB in [0, 1], the crop stretched to 224 px.

    A file written by ``maskbench export`` says in its metadata (``{"input": "letterbox", "size": S}``)
    that it takes the crop as the checkpoint path frames it: scaled so its longer side is S, in the
    top-left of an S x S black canvas (:func:`maskbench.models.canvas.letterbox`); it gets exactly that,
    so it computes the checkpoint's poses.
    """

    def __init__(self, path: Path, device: str = "cpu") -> None:
        self.run, self.device, meta = open_runner(path, device)
        self.name = f"torchscript:{path.name}"
        self.letterbox_px: int | None = None
        if meta.get("input") == "letterbox":
            self.letterbox_px = int(meta["size"])
            self.prepare = self._letterboxed
        else:
            self.prepare = crop_rgb224

    def _letterboxed(self, item: EvalItem) -> np.ndarray:
        from maskbench.models.canvas import letterbox

        return letterbox(item.crop_bgr(), self.letterbox_px)[0]  # type: ignore[arg-type]

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        crops = np.stack([it.prepared if it.prepared is not None else self.prepare(it) for it in items])
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        return to_matrices(self.run(x))


class OnnxModel(TorchScriptModel):
    """An ONNX file run by onnxruntime (``pip install maskbench[onnx]``); same input as TorchScript.

    The first graph input receives the batch; the first output is read. CUDA is used when
    ``device`` is cuda and onnxruntime has the CUDA provider.
    """

    def __init__(self, path: Path, device: str = "cpu") -> None:
        super().__init__(path, device)
        self.name = f"onnx:{path.name}"


class ReferenceModel:
    """The reference model (an in-memory ``RetinaFacePose``): the crop goes through the detector; the
    top face's pose. What the trainer's validation scores (through
    :func:`maskbench.evaluation.protocol.mean_axis_mae_deg`); :class:`CheckpointModel` loads one."""

    def __init__(self, model: Any, image_size: int, name: str = "reference model", device: str = "cpu") -> None:
        self.model, self.image_size, self.name, self.device = model, image_size, name, device
        #: name, format and split rule of each training folder (checked against each suite's rule)
        self.training_data: list[dict[str, Any]] = []

    def prepare(self, item: EvalItem) -> Any:
        """The crop (labelled box + margin) letterboxed to the model's input size."""
        from maskbench.models.canvas import letterbox

        return letterbox(item.crop_bgr(), self.image_size)

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        """``--protocol crop``: each crop through the detector; the top face's pose."""
        from maskbench.models.inference import top_face_rotations

        return top_face_rotations(self.model, [it.prepared if it.prepared is not None else self.prepare(it)
                                               for it in items], self.image_size)

    def predict_full(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        """``--protocol full``: detect on the whole image; the face whose box overlaps the labelled box
        best (IoU >= ``FULL_MATCH_IOU``) gives the pose, else the face counts as missed."""
        from maskbench.models.canvas import letterbox
        from maskbench.models.inference import detect_letterboxed

        canvases = [letterbox(item.image_bgr, self.image_size) for item in items]
        out: list[np.ndarray | None] = []
        for item, faces in zip(items, detect_letterboxed(self.model, canvases, self.image_size)):
            b = item.bbox
            k = geometry.best_match((b.x_min, b.y_min, b.x_max, b.y_max), [f.box_px for f in faces], FULL_MATCH_IOU)
            out.append(None if k is None else faces[k].rotation)
        return out


class CheckpointModel(ReferenceModel):
    """A maskbench reference-model checkpoint (loaded with ``weights_only=True``)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        from maskbench.models.inference import load_model_from_checkpoint

        model, ckpt = load_model_from_checkpoint(path, device)
        super().__init__(model, int(ckpt["config"]["image_size"]),
                         f"{ckpt['config'].get('name', 'checkpoint')}:{path.name}", device)
        self.training_data = list(ckpt.get("training_data", []))
        #: the BIWI label convention it was trained on (None: a checkpoint from before the choice existed)
        self.biwi_labels = ckpt["config"].get("biwi_labels")
        faces = ckpt.get("faces") or {}
        #: identities of the faces it was trained or validated on (:mod:`maskbench.identity`); None: not recorded
        self.seen_faces: set[str] | None = (set(faces.get("train", [])) | set(faces.get("validation", []))
                                            if faces else None)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """:func:`maskbench.models.inference.load_checkpoint` (``weights_only=True``), imported on use so
    that adapters without torch models do not import torch."""
    from maskbench.models.inference import load_checkpoint as load

    return load(path)
