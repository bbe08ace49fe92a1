"""What a grid runs: its stages (each a ``maskbench`` command), which are finished, and the configs it trains."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from maskbench.io.atomic import atomic_write_text
from maskbench.io.manifest import MANIFEST
from maskbench.reproduce.presets import MODELS, PHOTO_MODELS, PHOTO_PARTS, PHOTO_SPLIT, PHOTO_SUITES, SUITES, Preset
from maskbench.splits import verify_split as verify
from maskbench.training.config import load_config


@dataclass
class Stage:
    name: str
    argv: list[str]
    done: bool
    wall_s: float | None = None
    status: str = "pending"
    #: the checkout's commit when the stage ran (:func:`maskbench.provenance.source_commit`)
    commit: str | None = None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "maskbench", *args]


def _split_done(path: Path) -> bool:
    return (path / MANIFEST).is_file() and not verify(path)


def _train_done(run: Path, epochs: int) -> bool:
    history = run / "history.json"
    return (run / "last.pth").is_file() and history.is_file() and \
        len(json.loads(history.read_text())) >= epochs


def plan(out: Path, preset: Preset, data: Path | None, device: str, seed: int) -> list[Stage]:
    """Every stage of the grid with its command and whether it is already finished."""
    data_root = out / "data" if data is None else data
    stages: list[Stage] = []
    if preset.sample_n is not None:
        for name, n in preset.sample_n.items():
            stages.append(Stage(f"data {name}", _cli("sample", "--dataset", name, "--n", str(n), "--scale",
                                                      str(preset.sample_scale), "--workers", "2", "--seed", str(seed),
                                                      "--out", str(data_root / name), "--overwrite"),
                                _split_done(data_root / name)))
    for src in ("BIWI", "300W_LP", "AFLW2000"):
        dst = data_root / f"{src}_masked"
        stages.append(Stage(f"mask {src}", _cli("synthesize", "--src", str(data_root / src), "--out", str(dst),
                                                "--workers", "2", "--seed", str(seed), "--overwrite"),
                            _split_done(dst)))
    for src in ("BIWI", "AFLW2000"):
        dst = data_root / f"{src}_rotated"
        stages.append(Stage(f"rotate {src}", _cli("rotate", "--src", str(data_root / src), "--out", str(dst),
                                                  "--range", "-45", "45", "--workers", "2", "--seed", str(seed),
                                                  "--overwrite"), _split_done(dst)))
    for model in MODELS:
        cfg_path = out / "configs" / f"{model}.json"
        epochs = preset.epochs.get(model) or int(load_config(model)["epochs"])
        stages.append(Stage(f"train {model}", _cli("train", "--config", str(cfg_path), "--data-root", str(data_root),
                                                   "--out", str(out / "runs" / model), "--device", device,
                                                   "--seed", str(seed), "--resume"),
                            _train_done(out / "runs" / model, epochs)))
    for model in MODELS:
        ev = out / "eval" / model
        suites = [a for s in SUITES for a in ("--suite", s)]
        stages.append(Stage(f"evaluate {model}", _cli("evaluate", str(out / "runs" / model / "last.pth"), *suites,
                                                      "--data-root", str(data_root), "--out", str(ev),
                                                      "--device", device),
                            (ev / "results.json").is_file()))
    return stages


def is_photo_folder(data: Path) -> bool:
    """An AFLW2000-format folder of photos (the photo grid) rather than a folder holding the datasets."""
    from maskbench.datasets import detect_format
    from maskbench.datasets.base import DatasetError

    if all((data / n).is_dir() for n in ("BIWI", "300W_LP", "AFLW2000")):
        return False
    try:
        return detect_format(data).name == "AFLW2000"
    except DatasetError:
        return False


def plan_photos(out: Path, preset: Preset, data: Path, device: str, seed: int, init: Path | None) -> list[Stage]:
    """The photo grid's stages (see the module docstring)."""
    root = out / "data"
    stages = [Stage(f"split {part}", _cli("import", "--src", str(data), "--out", str(root / f"AFLW2000_{part}"),
                                          *PHOTO_SPLIT, "--split-seed", str(seed), "--only-split", part, "--overwrite"),
                    _split_done(root / f"AFLW2000_{part}")) for part in PHOTO_PARTS]
    for part in ("train", "test"):
        src = root / f"AFLW2000_{part}"
        stages.append(Stage(f"mask {part}", _cli("synthesize", "--src", str(src), "--out", str(root / f"{src.name}_masked"),
                                                 "--workers", "2", "--seed", str(seed), "--overwrite"),
                            _split_done(root / f"{src.name}_masked")))
        stages.append(Stage(f"rotate {part}", _cli("rotate", "--src", str(src), "--out", str(root / f"{src.name}_rotated"),
                                                   "--range", "-45", "45", "--workers", "2", "--seed", str(seed),
                                                   "--overwrite"), _split_done(root / f"{src.name}_rotated")))
    init_args = ["--init", str(init)] if init is not None else []
    for model in PHOTO_MODELS:
        epochs = int(json.loads((out / "configs" / f"{model}.json").read_text())["epochs"])
        stages.append(Stage(f"train {model}", _cli("train", "--config", str(out / "configs" / f"{model}.json"),
                                                   "--data-root", str(root), "--out", str(out / "runs" / model),
                                                   "--device", device, "--seed", str(seed), *init_args, "--resume"),
                            _train_done(out / "runs" / model, epochs)))
    suites = [a for s in PHOTO_SUITES for a in ("--suite", s)]
    for model in PHOTO_MODELS:
        for protocol in ("crop", "full"):
            ev = out / "eval" / model / protocol
            stages.append(Stage(f"evaluate {model} {protocol}",
                                _cli("evaluate", str(out / "runs" / model / "best.pth"), *suites, "--protocol", protocol,
                                     "--data-root", str(root), "--out", str(ev), "--device", device),
                                (ev / "results.json").is_file()))
    return stages


def write_configs(out: Path, preset: Preset, models: tuple[str, ...] = MODELS) -> None:
    """The built-in configs with the preset's size, epochs, batch and learning rate."""
    for model in models:
        cfg = load_config(model)
        if preset.image_size is not None:
            cfg["image_size"] = preset.image_size
        if model in preset.epochs:
            cfg["epochs"] = preset.epochs[model]
        if preset.batch_size is not None:
            cfg["batch_size"] = preset.batch_size
        if preset.lr is not None:
            cfg["lr"] = preset.lr
        cfg["preset"] = preset.name
        path = out / "configs" / f"{model}.json"
        if not path.is_file() or json.loads(path.read_text()) != cfg:
            atomic_write_text(path, json.dumps(cfg, indent=1) + "\n")


def shown_command(stage: Stage, out: Path) -> str:
    """The stage's command as a user types it from OUT's parent folder, with no machine's folders: OUT
    and any other absolute path (the photos, the --init weights) shown by their names."""
    words = ["maskbench", *stage.argv[3:]]
    return " ".join(w.replace(str(out), out.name) if w.startswith(str(out)) else
                    Path(w).name if Path(w).is_absolute() else w for w in words)
