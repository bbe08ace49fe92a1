"""Commands of the reference model: train, export, reproduce."""

from __future__ import annotations

from pathlib import Path

import click

from maskbench.cli import options as opt
from maskbench.cli.app import main
from maskbench.datasets.base import DatasetError


@main.command()
@click.option("--config", "config_name", required=True,
              help="Built-in config, named for what it trains on: plain (BIWI + 300W_LP), masked (+ their masked "
              "copies), rotated (BIWI + BIWI_rotated), masked-rotated, photos, photos-masked, photos-rotated; the "
              "masked-HPE study's names model1..model4 and real-model1..3 are aliases. Or a JSON file (copy one from "
              "maskbench/training/configs).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: best.pth, last.pth, history.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the config's epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-minutes", type=float, default=None, help="Stop after the epoch that passes this wall time.")
@click.option("--init", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from a maskbench checkpoint, or the RetinaFace-MobileNet0.25 release "
              "(mobilenet0.25_Final.pth: mapped into the detector, pose head fresh, its BGR-minus-mean input kept).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pth (weights, optimizer, schedule, history).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loading processes per training process (default: 0 on CPU, 6 on CUDA).")
@click.option("--amp/--no-amp", default=None, help="bfloat16 autocast for the forward pass (default: on for CUDA).")
@click.option("--biwi-labels", type=click.Choice(["literature", "calibrated"]), default=None,
              help="BIWI label convention of the targets (default: the config's biwi_labels, else literature: the "
              "depth-frame labels published BIWI numbers use). Recorded in the checkpoint.")
@opt.data_root_option
def train(config_name: str, out: Path, epochs: int | None, device: str, seed: int, max_minutes: float | None,
          init: Path | None, resume: bool, workers: int | None, amp: bool | None, biwi_labels: str | None,
          data_root: Path | None) -> None:
    """Train the reference model (RetinaFace-style detector + 6D pose head) on splits under the data root.

    Example: `maskbench train --config model1 --data-root data --out runs/model1`.
    Several GPUs: `torchrun --nproc_per_node 4 -m maskbench train --config model2 --device cuda ...`
    (the config's batch_size is the global batch, split evenly over the processes).
    """

    from maskbench.training.config import load_config
    from maskbench.training.trainer import train as run_training

    device = opt.device(device)
    try:
        if workers is None:
            workers = 6 if device.startswith("cuda") else 0
        config = load_config(config_name)
        if biwi_labels is not None:
            config = {**config, "biwi_labels": biwi_labels}
        result = run_training(config, opt.root(data_root), out.expanduser().resolve(), device=device,
                              epochs=epochs, seed=seed, max_minutes=max_minutes, init=init, resume=resume,
                              workers=workers, amp=amp)
    except (ValueError, FileNotFoundError, DatasetError) as exc:
        opt.fail(str(exc))
    if result["rank"] != 0:
        return
    last = result["history"][-1]
    click.echo(f"epochs: {len(result['history'])}, last loss {last['loss']:.3f}, "
               f"validation pose MAE {last['val_pose_mae_deg']:.2f} deg (best {result['best_val_pose_mae_deg']:.2f})")
    click.echo(f"checkpoints: {out / 'best.pth'}, {out / 'last.pth'}")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), default="torchscript", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: the checkpoint's name with .pt or .onnx).")
def export(checkpoint: Path, fmt: str, out: Path | None) -> None:
    """Export a reference-model checkpoint as a crop -> pose model (TorchScript .pt or ONNX .onnx).

    The exported model takes (N, 3, H, W) float RGB crops in [0, 1] and returns (N, 3, 3) rotation
    matrices; `maskbench evaluate model.pt` / `model.onnx` score it like the checkpoint (ONNX needs
    `pip install 'maskbench[onnx]'`).
    """
    from maskbench.training.export import export as run_export

    out = out or checkpoint.with_suffix(".pt" if fmt == "torchscript" else ".onnx")
    try:
        path = run_export(checkpoint, out, fmt)
    except ValueError as exc:
        opt.fail(str(exc))
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reproduce"), show_default=True,
              help="Output folder: data/, configs/, runs/, eval/, stages.json, REPORT.md.")
@click.option("--preset", type=click.Choice(["sample", "smoke", "real", "real-smoke"]), default=None,
              help="sample: rendered data, about 15 min on 2 cores; smoke: toy size (about a minute); "
              "real: the datasets under --data, or the photo grid when --data is one AFLW2000-format folder of "
              "photos (split by id, real-model1-3 from --init); real-smoke: the photo grid at toy size. "
              "Default: real when --data is given, else sample.")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder holding BIWI/, 300W_LP/ and AFLW2000/ (real data). Variants are written next to them.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Starting weights of the photo grid's models. Default: the RetinaFace-MobileNet0.25 release "
              "(mobilenet0.25_Final.pth, MIT), which ships in the package.")
def reproduce(out: Path, preset: str | None, data: Path | None, device: str, seed: int, init: Path | None) -> None:
    """Rebuild the masked-HPE grid: variants, model1-4 trained, every suite evaluated, REPORT.md.

    Finished stages (verified manifests, completed runs, written results) are skipped, so an
    interrupted run continues where it stopped. `make reproduce` calls this.
    """
    from maskbench import reproduce as rep

    preset = preset or ("real" if data is not None else "sample")
    try:
        report = rep.run(out.expanduser().resolve(), preset, None if data is None else data.resolve(), opt.device(device),
                         seed, echo=click.echo, init=None if init is None else init.resolve())
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        opt.fail(str(exc))
    click.echo(report.read_text())
