"""Model cards: how a third-party model was trained to see faces, so it is scored as it was published.

A model scored with a crop and a normalisation it was not trained with is scored wrong, and worse,
its masked penalty is wrong (FSA-Net Fusion on the masked AFLW2000 dev half: 10.40 with maskbench's
generic 25 % crop, 9.02 with its own). A card states the model's preprocessing in a JSON file; the
evaluator applies exactly that. Fields, shown with FSA-Net's values (defaults when a field is left out:
layout NCHW, color RGB, scale 1, mean 0, std 1, interpolation bilinear, box ["dataset"], margin 0,
square false, clip true, integer_pixels false, output euler yaw/pitch/roll in degrees, signs 1)::

    {
      "name": "fsanet-fusion",
      "weights": ["a.onnx", "b.onnx"],        ONNX (.onnx) or TorchScript (.pt) files; several are
                                               averaged output by output (FSA-Net's "Fusion").
                                               Relative names resolve against --weights DIR, else
                                               the card's folder.
      "input": {
        "size": [64, 64],                      width, height in pixels
        "layout": "NHWC",                      or "NCHW"
        "color": "BGR",                        or "RGB"
        "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1],
                                               x = (pixel_0_255 * scale - mean) / std, per channel in
                                               the stated colour order
        "interpolation": "bilinear"            or "area", "nearest", "bicubic"
      },
      "crop": {
        "box": ["aflw21", "landmarks68", "dataset"],
                                               first available, in this order: "aflw21" = the box of
                                               AFLW's 21 pt2d points that are labelled (x > 0; the
                                               unlabelled are stored as x = -1); "landmarks68" = the
                                               box of the 68 landmarks; "dataset" = the dataset's box
        "margin": [0.6, 0.6],                  added on each side, as a fraction of the box's width
                                               and height
        "square": false,                       enlarge the shorter side to the longer first
        "clip": true,                          clip to the image (false: pad with black)
        "integer_pixels": false                true: the habit of many releases (FSA-Net's): box
                                               corners truncated to integers, the enlarged corners
                                               truncated again, the far edges clipped to width - 1 and
                                               height - 1 (exclusive, so one column and row short)
      },
      "output": {
        "kind": "euler",                       or "matrix" (N, 3, 3) or "6d" (N, 6: first two columns)
        "order": ["yaw", "pitch", "roll"],     angle order of an "euler" output
        "units": "deg",                        or "rad"
        "signs": [1, 1, 1]                     multipliers that bring each angle (in "order") into the
                                               maskbench convention (AFLW2000/300W_LP labels)
      },
      "source": "paper, release, licence"      free text, shown in reports
    }

Fields beyond the FSA-Net example: ``"runtime"`` (onnx, torchscript, whenet-h5, 3ddfa-v2, openvino, mediapipe:
:mod:`~maskbench.evaluation.card_runtimes`), ``"margin"`` as [left, top, right, bottom], ``output.kind``
"camera-3x4" (a 3x4 affine camera's rotation), ``output.frame`` ("camera" or "y-up"), ``output.convention``
("maskbench" or "intel-zyx"), ``output.names`` (outputs read by name), ``"published"`` (numbers with their
protocol) and ``"models_folder"`` (the release's folder under ``leaderboard --models-dir``).

Built-in cards (``maskbench evaluate fsanet-fusion --weights DIR``): ``fsanet-fusion``,
``fsanet-1x1``, ``fsanet-var``, ``fsanet-nos``: FSA-Net's three 300W_LP models (Yang et al., CVPR
2019) as ONNX, with the crop of their published AFLW2000 numbers; ``whenet``, ``3ddfa-v2-mb05``,
``mediapipe-face-landmarker``, ``openvino-head-pose-adas-0001`` (``pip install 'maskbench[cards]'``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskbench import geometry
from maskbench.evaluation.card_runtimes import RUNTIME_SUFFIXES, MediaPipeFaces, open_card_runner, require, runtime_of
from maskbench.evaluation.outputs import FRAMES, intel_zyx_to_matrix, model_output, to_frame, to_matrices
from maskbench.evaluation.protocol import EvalItem
from maskbench.geometry import camera_3x4_to_matrix

BOX_SOURCES = ("aflw21", "landmarks68", "dataset")
INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST,
                 "bicubic": cv2.INTER_CUBIC}
ANGLES = ("yaw", "pitch", "roll")
#: A whole-image card's face is the one whose landmark box overlaps the labelled box by at least this IoU
#: (landmark boxes are tighter than dataset boxes, so lower than ``--protocol full``'s 0.4).
WHOLE_IMAGE_MATCH_IOU = 0.3


class CardError(ValueError):
    """A card that cannot be used; the message names the card and the field."""


def _field(d: dict[str, Any], key: str, default: Any, where: str, allowed: Sequence[Any] | None = None) -> Any:
    value = d.get(key, default)
    if allowed is not None and value not in allowed:
        raise CardError(f"{where}.{key} is {value!r}; expected one of {', '.join(map(str, allowed))}")
    return value


def _margins(value: Any, where: str) -> tuple[float, float, float, float]:
    """A crop margin: one number, [x, y] or [left, top, right, bottom], as (left, top, right, bottom)."""
    n = len(value) if isinstance(value, list | tuple) else 1
    if n == 4:
        return _floats(value, 4, where)  # type: ignore[return-value]
    x, y = _floats(value, 2, where)
    return x, y, x, y


def _floats(value: Any, n: int, where: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in (value if isinstance(value, list | tuple) else [value] * n))
    except (TypeError, ValueError):
        raise CardError(f"{where} must be a number or a list of {n} numbers, got {value!r}") from None
    if len(out) != n:
        raise CardError(f"{where} must have {n} values, got {len(out)}")
    return out


@dataclass(frozen=True)
class ModelCard:
    """A parsed card (see the module docstring for the fields and their meaning)."""

    name: str
    weights: tuple[str, ...]
    size_px: tuple[int, int]
    layout: str
    color: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    box: tuple[str, ...]
    margin: tuple[float, float, float, float]
    square: bool
    clip: bool
    integer_pixels: bool
    output_kind: str
    order: tuple[str, str, str]
    units: str
    signs: tuple[float, float, float]
    source: str
    folder: Path | None = None
    runtime: str = "onnx"
    #: output names to read, in order (OpenVINO models, whose compiled output order is not the README's)
    outputs: tuple[str, ...] = ()
    #: "euler" outputs: "maskbench" (signs and order as stated) or "intel-zyx" (:func:`outputs.intel_zyx_to_matrix`)
    convention: str = "maskbench"
    #: "matrix" and "camera-3x4" outputs: the head frame they are in (:data:`outputs.FRAMES`)
    frame: str = "camera"
    #: the published numbers, {suite: {"yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg", "mae_deg", "protocol"}}
    published: dict[str, Any] = field(default_factory=dict)
    #: the folder name of the release under a models directory (``maskbench leaderboard --models-dir``)
    models_folder: str = ""

    @property
    def whole_image(self) -> bool:
        """The model finds faces itself in the whole image (MediaPipe); a face it does not find is a miss."""
        return self.runtime == "mediapipe"

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: Path | None = None) -> ModelCard:
        name = str(d.get("name") or "card")
        where = f"card {name}"
        weights = d.get("weights")
        if isinstance(weights, str):
            weights = [weights]
        if not weights or not all(isinstance(w, str) for w in weights):
            raise CardError(f"{where}: 'weights' must name one or more .onnx/.pt files")
        runtime = d.get("runtime") or runtime_of(weights)
        if runtime not in RUNTIME_SUFFIXES:
            raise CardError(f"{where}.runtime is {runtime!r}; expected one of {', '.join(RUNTIME_SUFFIXES)}")
        suffixes = RUNTIME_SUFFIXES[runtime]
        expected = suffixes if len(suffixes) > 1 else suffixes * len(weights)
        if tuple(Path(w).suffix for w in weights) != expected:
            raise CardError(f"{where}: runtime {runtime} takes weights {' + '.join(suffixes)}"
                            f"{' (one or more)' if len(suffixes) == 1 else ''}, got {', '.join(weights)}")
        inp, crop, out = d.get("input", {}), d.get("crop", {}), d.get("output", {})
        size = _floats(inp.get("size", [64, 64]), 2, f"{where}.input.size")
        box = crop.get("box", ["dataset"])
        box = [box] if isinstance(box, str) else list(box)
        unknown = [b for b in box if b not in BOX_SOURCES]
        if unknown or not box:
            raise CardError(f"{where}.crop.box has {unknown or 'nothing'}; expected some of {', '.join(BOX_SOURCES)}")
        order = tuple(_field(out, "order", list(ANGLES), f"{where}.output"))
        if sorted(order) != sorted(ANGLES):
            raise CardError(f"{where}.output.order must be yaw, pitch and roll in some order, got {order}")
        std = _floats(inp.get("std", 1.0), 3, f"{where}.input.std")
        if min(abs(s) for s in std) == 0:
            raise CardError(f"{where}.input.std has a zero")
        return cls(
            name=name, weights=tuple(weights), size_px=(int(size[0]), int(size[1])),
            layout=_field(inp, "layout", "NCHW", f"{where}.input", ("NCHW", "NHWC")),
            color=_field(inp, "color", "RGB", f"{where}.input", ("RGB", "BGR")),
            scale=_floats(inp.get("scale", 1.0), 1, f"{where}.input.scale")[0],
            mean=_floats(inp.get("mean", 0.0), 3, f"{where}.input.mean"), std=std,  # type: ignore[arg-type]
            interpolation=_field(inp, "interpolation", "bilinear", f"{where}.input", tuple(INTERPOLATION)),
            box=tuple(box), margin=_margins(crop.get("margin", 0.0), f"{where}.crop.margin"),
            square=bool(crop.get("square", False)), clip=bool(crop.get("clip", True)),
            integer_pixels=bool(crop.get("integer_pixels", False)),
            output_kind=_field(out, "kind", "euler", f"{where}.output", ("euler", "matrix", "6d", "camera-3x4")),
            order=order,  # type: ignore[arg-type]
            units=_field(out, "units", "deg", f"{where}.output", ("deg", "rad")),
            signs=_floats(out.get("signs", 1.0), 3, f"{where}.output.signs"),  # type: ignore[arg-type]
            source=str(d.get("source", "")), folder=folder, runtime=runtime,
            outputs=tuple(str(o) for o in out.get("names", [])),
            convention=_field(out, "convention", "maskbench", f"{where}.output", ("maskbench", "intel-zyx")),
            frame=_field(out, "frame", "camera", f"{where}.output", tuple(FRAMES)),
            published=dict(d.get("published", {})), models_folder=str(d.get("models_folder", "")),
        )

    def describe(self) -> str:
        """The protocol line of a report: what the model was given."""
        if self.whole_image:
            return (f"model card {self.name}: the whole image; the model finds the faces itself, the one whose landmark "
                    f"box overlaps the labelled box best (IoU >= {WHOLE_IMAGE_MATCH_IOU:g}) is scored, else a miss")
        left, top, right, bottom = self.margin
        margin = (f"{left:g} x width, {top:g} x height per side" if (left, top) == (right, bottom) else
                  f"{left:g} / {top:g} / {right:g} / {bottom:g} x width or height (left / top / right / bottom)")
        return (f"model card {self.name}: crop = box of {' / '.join(self.box)} (first available) + {margin}"
                f"{' (integer pixels, as the release)' if self.integer_pixels else ''}"
                f"{', squared' if self.square else ''}, {'clipped to' if self.clip else 'padded beyond'} the image, "
                f"resized to {self.size_px[0]}x{self.size_px[1]} ({self.interpolation}), {self.color}, "
                f"{self.layout}, x = (pixel * {self.scale:g} - mean) / std")


def builtin_cards() -> dict[str, Path]:
    base = resources.files("maskbench.evaluation.model_cards")
    return {p.name[:-5]: Path(str(p)) for p in base.iterdir() if p.name.endswith(".json")}


def load_card(spec: str) -> ModelCard:
    """A built-in card by name or a card JSON file."""
    path = Path(spec)
    if path.suffix != ".json":
        cards = builtin_cards()
        if spec not in cards:
            raise CardError(f"unknown model card {spec!r}; built-in: {', '.join(sorted(cards))}, or a .json file")
        path = cards[spec]
    elif not path.is_file():
        raise CardError(f"model card {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CardError(f"{path}: a card is a JSON object")
    return ModelCard.from_dict(data, folder=path.parent)


def card_box(card: ModelCard, item: EvalItem) -> tuple[np.ndarray, str]:
    """(x_min, y_min, x_max, y_max) float pixels of the first available box source, and its name."""
    for source in card.box:
        if source == "aflw21" and item.aflw21_px is not None and len(item.aflw21_px):
            pts = item.aflw21_px
        elif source == "landmarks68" and item.landmarks_px is not None:
            pts = item.landmarks_px
        elif source == "dataset":
            b = item.bbox
            return np.array([b.x_min, b.y_min, b.x_max, b.y_max]), source
        else:
            continue
        return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]), source
    raise CardError(f"card {card.name}: none of the box sources {', '.join(card.box)} exists for {item.sample_id}; "
                    "add 'dataset' to crop.box as a fallback")


def card_crop(card: ModelCard, item: EvalItem) -> np.ndarray:
    """The card's crop of an item, resized, uint8, in the card's colour order (H, W, 3)."""
    x0, y0, x1, y1 = card_box(card, item)[0]
    if card.integer_pixels:
        x0, y0, x1, y1 = (float(int(v)) for v in (x0, y0, x1, y1))
    w, h = x1 - x0, y1 - y0
    if card.square:
        side = max(w, h)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1, y0, y1, w, h = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2, side, side
    left, top, right, bottom = card.margin
    x0, x1 = x0 - left * w, x1 + right * w
    y0, y1 = y0 - top * h, y1 + bottom * h
    img = item.image_bgr
    ih, iw = img.shape[:2]
    if card.clip:
        last = 1 if card.integer_pixels else 0
        xa, ya = max(int(x0), 0), max(int(y0), 0)
        xb, yb = min(int(x1), iw - last), min(int(y1), ih - last)
        crop = img[ya:max(yb, ya + 1), xa:max(xb, xa + 1)]
    else:
        xa, ya, xb, yb = int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))
        crop = cv2.copyMakeBorder(img[max(ya, 0):min(yb, ih), max(xa, 0):min(xb, iw)],
                                  max(-ya, 0), max(yb - ih, 0), max(-xa, 0), max(xb - iw, 0), cv2.BORDER_CONSTANT)
    out = cv2.resize(crop, card.size_px, interpolation=INTERPOLATION[card.interpolation])
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if card.color == "RGB" else out


class CardModel:
    """A model described by a :class:`ModelCard`: its crop and normalisation, its weights run by the card's
    runtime (:mod:`~maskbench.evaluation.card_runtimes`), outputs averaged over the files, read in the card's
    convention. A whole-image card (MediaPipe) finds the faces itself: :meth:`predict` and
    :meth:`predict_full` both score the face matching the labelled box, and a face it does not find is a miss."""

    def __init__(self, card: ModelCard, weights_dir: Path | None = None, device: str = "cpu") -> None:
        self.card = card
        self.name = card.name
        self.device = device
        self.protocol_text = card.describe()
        base = weights_dir or card.folder or Path.cwd()
        self.paths = [Path(w) if Path(w).is_absolute() else base / w for w in card.weights]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            hint = "" if weights_dir else " (pass --weights DIR, the folder that holds the release's files)"
            raise CardError(f"card {card.name}: weight file(s) not found: {', '.join(missing)}{hint}")
        try:
            require(card.runtime, card.name)
            if card.whole_image:
                self.faces = MediaPipeFaces(self.paths[0])
                self.runners = []
            else:
                self.runners = open_card_runner(card.runtime, self.paths, device, card.outputs)
        except ValueError as exc:
            raise CardError(str(exc)) from None
        self._mean = np.array(card.mean, np.float32)
        self._inv_std = np.float32(1.0) / np.array(card.std, np.float32)
        if card.whole_image:
            self.prepare = self._rgb
            self.predict_full = self.predict

    def _rgb(self, item: EvalItem) -> np.ndarray:
        return cv2.cvtColor(item.image_bgr, cv2.COLOR_BGR2RGB)

    def prepare(self, item: EvalItem) -> np.ndarray:
        """The card's crop, resized (uint8); run in the evaluator's decode threads."""
        return card_crop(self.card, item)

    def batch(self, items: Sequence[EvalItem]) -> np.ndarray:
        """The network input: float32, normalised, in the card's layout."""
        crops = np.stack([it.prepared if it.prepared is not None else card_crop(self.card, it) for it in items])
        x = (crops.astype(np.float32) * np.float32(self.card.scale) - self._mean) * self._inv_std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.card.layout == "NCHW" else x)

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        if self.card.whole_image:
            return [self._whole_image(it) for it in items]
        x = self.batch(items)
        return self.read(np.mean([np.asarray(run(x), dtype=np.float64) for run in self.runners], axis=0))

    def read(self, y: np.ndarray) -> list[np.ndarray | None]:
        """The network's (N, ...) output as poses, in the card's output convention."""
        card, n = self.card, len(y)
        if card.output_kind == "euler":
            y = y.reshape(n, 3)
            if card.units == "rad":
                y = np.degrees(y)
            y = y * np.array(card.signs)
            ypr = y[:, [card.order.index(a) for a in ANGLES]]
            if card.convention == "intel-zyx":
                return [intel_zyx_to_matrix(*row) for row in ypr]
            return [model_output(row) for row in ypr]
        if card.output_kind == "6d":
            return to_matrices(y.reshape(n, 6))
        if card.output_kind == "camera-3x4":
            return [to_frame(camera_3x4_to_matrix(row), card.frame) for row in y.reshape(n, -1)]
        return [to_frame(m, card.frame) for m in y.reshape(n, 3, 3)]

    def _whole_image(self, item: EvalItem) -> np.ndarray | None:
        rgb = item.prepared if item.prepared is not None else self._rgb(item)
        faces = self.faces.faces(rgb)
        b = item.bbox
        k = geometry.best_match((b.x_min, b.y_min, b.x_max, b.y_max), [box for box, _ in faces], WHOLE_IMAGE_MATCH_IOU)
        return None if k is None else to_frame(faces[k][1], self.card.frame)
