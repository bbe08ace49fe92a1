"""A training config, typed: what ``maskbench train --config`` reads (built-in names or a JSON file).

The JSON keys are the field names of :class:`TrainConfig`; ``train``, ``image_size``, ``batch_size``,
``epochs``, ``lr`` and ``pose_weight`` are required, the rest have the defaults below. Keys the
dataclass does not name (``pose_layers``, ``pose_channels``, ``input_norm``: the network's shape, read
by :meth:`maskbench.models.retinaface.RetinaFacePose.from_config`; notes of your own) are kept in
``network_and_notes`` and recorded with the rest in every checkpoint (:meth:`TrainConfig.as_dict`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, check_biwi_labels
from maskbench.models.retinaface import POSE_HEAD_KEYS

#: Keys a training config must have (the others have defaults).
REQUIRED_CONFIG_KEYS = ("train", "image_size", "batch_size", "epochs", "lr", "pose_weight")


@dataclass(frozen=True)
class TrainConfig:
    """One training run's recipe (see the module docstring and the README's reference-model section)."""

    train: tuple[str, ...]
    image_size: int
    batch_size: int
    epochs: int
    lr: float
    pose_weight: float
    name: str = ""
    landmark_weight: float = 1.0
    val: tuple[str, ...] = ()
    val_fraction: float = 0.1
    val_limit: int = 400
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.15
    ema_decay: float = 0.0
    pretrained_lr_scale: float = 1.0
    freeze_bn: bool = False
    biwi_labels: str = DEFAULT_BIWI_LABELS
    #: online augmentation: None = the defaults, False = none, or a dict of TrainAugment fields
    augment: dict[str, Any] | bool | None = None
    #: the other keys of the JSON (the network's shape and anything else), recorded as given
    network_and_notes: dict[str, Any] = field(default_factory=dict)
    #: the keys the JSON gave, in its order (so the checkpoint records the config as written)
    given: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> TrainConfig:
        absent = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
        if absent:
            raise ValueError(f"training config {config.get('name', '')!r} lacks {', '.join(absent)} (see "
                             "maskbench/training/configs/plain.json for every key)")
        names = {f.name for f in dataclasses.fields(cls)} - {"network_and_notes", "given"}
        typed: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in config or f.name not in names:
                continue
            value = config[f.name]
            try:
                if f.name in ("train", "val"):
                    value = tuple(str(v) for v in ([value] if isinstance(value, str) else value))
                elif f.name == "augment":
                    value = False if value is False else (None if value is None else dict(value))
                elif f.name in ("name", "biwi_labels"):
                    value = str(value)
                elif f.name == "freeze_bn":
                    value = bool(value)
                elif f.name in ("image_size", "batch_size", "epochs", "val_limit"):
                    value = int(value)
                else:
                    value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"training config {config.get('name', '')!r}: {f.name} = {config[f.name]!r} is not "
                                 f"a valid {f.type}") from None
            typed[f.name] = value
        check_biwi_labels(typed.get("biwi_labels", DEFAULT_BIWI_LABELS))
        rest = {k: v for k, v in config.items() if k not in names}
        return cls(**typed, network_and_notes=rest, given=tuple(config))

    def with_network(self, network: dict[str, Any]) -> TrainConfig:
        """This config with the network keys of a model it starts from (``init_model``'s answer):
        the pose head's shape and input normalisation are the model's, whatever the JSON said."""
        rest = {k: v for k, v in self.network_and_notes.items() if k not in (*POSE_HEAD_KEYS, "input_norm")}
        return dataclasses.replace(self, network_and_notes={**rest, **network},
                                   given=tuple(k for k in self.given if k not in POSE_HEAD_KEYS))

    @property
    def network(self) -> dict[str, Any]:
        """The keys :meth:`RetinaFacePose.from_config` reads (the pose head's shape, ``input_norm``)."""
        return {k: v for k, v in self.network_and_notes.items() if k in (*POSE_HEAD_KEYS, "input_norm")}

    def as_dict(self) -> dict[str, Any]:
        """The config as recorded in a checkpoint: the JSON's keys in its order with their typed values,
        then the network keys a start model set, and ``biwi_labels``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("network_and_notes", "given")}
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        out: dict[str, Any] = {}
        for key in self.given:
            out[key] = values[key] if key in values else self.network_and_notes.get(key)
        for key, value in self.network_and_notes.items():
            out.setdefault(key, value)
        out["biwi_labels"] = self.biwi_labels
        return out


#: The built-in configs are named for what they train on; the masked-HPE study's names (its grid's
#: model1..model4, the photo grid's real-model1..3) stay as aliases (the grid's runs and reports use them).
CONFIG_ALIASES = {"model1": "plain", "model2": "masked", "model3": "rotated", "model4": "masked-rotated",
                  "real-model1": "photos", "real-model2": "photos-masked", "real-model3": "photos-rotated"}


def load_config(name_or_path: str) -> dict[str, Any]:
    """A built-in config by name (``plain``, ``masked``, ``rotated``, ``masked-rotated``, ``photos``,
    ``photos-masked``, ``photos-rotated``, or the study's alias: ``model1`` ...) or a JSON file, as a dict."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text())
    base = resources.files("maskbench.training.configs")
    names = sorted(p.name[:-5] for p in base.iterdir() if p.name.endswith(".json"))
    name = CONFIG_ALIASES.get(name_or_path, name_or_path)
    if name not in names:
        aliases = ", ".join(f"{a} = {n}" for a, n in CONFIG_ALIASES.items())
        raise ValueError(f"unknown config {name_or_path!r}: built-in ones are {', '.join(names)} ({aliases}), "
                         "or pass a .json path")
    return json.loads((base / f"{name}.json").read_text())
