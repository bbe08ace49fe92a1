"""The leaderboard command: many models, one run, the same faces."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from maskbench.cli import options as opt
from maskbench.cli.app import main
from maskbench.devdata import MODELS_ENV


def _loader(models_dir: Path, device: str) -> Any:
    """``load(spec) -> (model, key)``: a built-in card from its folder under ``models_dir``, else what
    ``evaluate`` accepts; the key is the sha256 of the model's files (what the cache is keyed by)."""
    from maskbench.evaluation.cards import CardModel, builtin_cards, load_card
    from maskbench.evaluation.leaderboard import file_sha256
    from maskbench.evaluation.registry import load_model

    def load(spec: str) -> tuple[Any, str]:
        if spec in builtin_cards():
            card = load_card(spec)
            model = CardModel(card, models_dir / card.models_folder, device)
            return model, f"{spec}:{file_sha256(model.paths)}"
        model = load_model(spec, device=device)
        paths = getattr(model, "paths", None) or ([Path(spec)] if Path(spec).is_file() else [])
        return model, f"{spec}:{file_sha256(paths) if paths else 'code'}"

    return load


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder of published releases, one sub-folder per card (whenet/, fsanet/, 3ddfa_v2/, ...). "
              f"Default: ${MODELS_ENV}, else ./models.")
@click.option("--suite", "suites", multiple=True, default=["default"], show_default=True,
              help="Suite name or path, repeatable; default: every AFLW2000 and BIWI suite present (plain, masked, "
              "rotated, masked+rotated).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("leaderboard"), show_default=True,
              help="Folder for leaderboard.md/.csv/.json/.png and the prediction cache; an earlier leaderboard there "
              "is replaced as a whole (its cached predictions reused); a folder maskbench did not write is refused.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N faces of each suite.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@opt.data_root_option
def leaderboard(models: tuple[str, ...], models_dir: Path | None, suites: tuple[str, ...], out: Path,
                limit: int | None, device: str, data_root: Path | None) -> None:
    """Score MODELS on the same faces of every suite and write the masked leaderboard.

    \b
    MODELS: built-in cards (whenet, 3ddfa-v2-mb05, mediapipe-face-landmarker,
    openvino-head-pose-adas-0001, fsanet-fusion, ...; weights under --models-dir in the
    card's folder), baseline:pnp, checkpoints (.pth), exports (.pt/.onnx), card files (.json),
    package.module:callable. A model that cannot be loaded gets a row saying why (exit 1).

    Example: `maskbench leaderboard fsanet-fusion whenet baseline:pnp --models-dir ../shared/models`.
    """
    from maskbench.datasets.registry import check_outside_datasets
    from maskbench.evaluation import leaderboard as lb
    from maskbench.evaluation.suites import find_suites
    from maskbench.io.lock import OutputLock
    from maskbench.io.writer import check_replaceable, replaced_folder

    root = opt.root(data_root)
    models_dir = (models_dir or Path(os.environ.get(MODELS_ENV) or "models")).expanduser().resolve()
    out_dir = out.expanduser().resolve()
    if list(suites) == ["default"]:
        found = {n: (root / n).resolve() for n in lb.DEFAULT_SUITES if (root / n).is_dir()}
        if not found:
            opt.fail(f"no AFLW2000 or BIWI suite under {root}; create them (`maskbench sample`, `synthesize`, `rotate`) "
                     "or name them with --suite")
    else:
        try:
            found, _ = find_suites(root, suites)
        except ValueError as exc:
            opt.fail(str(exc))
    guard = {"sources": list(found.values()), "data_root": root}
    with opt.writing(resumable=False):
        check_replaceable(out_dir, lb.LEADERBOARD_KIND, **guard)
        check_outside_datasets(out_dir, root)
        with OutputLock(out_dir):
            cache: dict[str, Any] = {}
            if (out_dir / lb.CACHE_FILE).is_file():  # ours: check_replaceable proved the folder is a leaderboard
                try:
                    cache = json.loads((out_dir / lb.CACHE_FILE).read_text(encoding="utf-8"))
                except ValueError:
                    cache = {}
            entries = lb.score_models(models, found, _loader(models_dir, opt.device(device)), cache, limit=limit)
            with replaced_folder(out_dir, lb.LEADERBOARD_KIND, lb.FILES, lock=False, **guard) as stage:
                lb.write(stage, entries, list(found), cache)
    click.echo((out_dir / "leaderboard.md").read_text())
    click.echo(f"leaderboard: {out_dir}")
    failed = [e for e in entries if e.error]
    for e in failed:
        click.echo(f"error: {e.name}: {e.error}", err=True)
    if failed:
        sys.exit(1)
