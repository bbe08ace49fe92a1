"""Commands that score and grade: evaluate, judge, compare."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from maskbench import judge as judge_rules
from maskbench.cli import options as opt
from maskbench.cli.app import main
from maskbench.datasets.base import DatasetError
from maskbench.judge.grading import COLOUR_MIN_FACES


@main.command()
@click.argument("model", required=False)
@click.option("--suite", "suites", multiple=True, default=["all"], show_default=True,
              help="Suite name (BIWI, BIWI_masked, BIWI_rotated, AFLW2000, AFLW2000_masked, AFLW2000_rotated, "
              "300W_LP_masked), a path, or all. Repeatable.")
@click.option("--predictions", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Score a CSV of predictions (id, yaw_deg, pitch_deg, roll_deg) instead of running a MODEL.")
@click.option("--weights", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder holding a model card's weight files (e.g. the FSA-Net release for fsanet-fusion).")
@click.option("--protocol", type=click.Choice(["crop", "full"]), default="crop", show_default=True,
              help="crop: the model gets the ground-truth box enlarged by 25 % on each side (a model card: its "
              "own crop); full: the whole image (models that detect faces), unmatched faces count as misses.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("eval"), show_default=True,
              help="Report folder: report.md, results.csv, results.json, predictions.csv, plots, manifest.json. "
              "Relative to the current folder. An earlier report there is replaced as a whole once the new one is "
              "written; a folder maskbench did not write is refused.")
@click.option("--euler", type=click.Choice(["fixed", "closest"]), default="fixed", show_default=True,
              help="Per-axis errors of a model that outputs rotations: fixed decomposes each prediction once in "
              "maskbench's convention (yaw in [-90, 90]; what published evaluations do); closest takes, per face, "
              "the one of its two Euler triples nearer the label (kinder near |yaw| = 90). The geodesic error "
              "beside them depends on neither.")
@opt.biwi_labels_option
@click.option("--strict", is_flag=True,
              help="Exit 1 when any sample could not be read (they are always listed in the report and left out "
              "of the scores; without --strict the exit status is 0).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N samples of each suite.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads decoding images ahead of the model.")
@opt.data_root_option
def evaluate(model: str | None, suites: tuple[str, ...], predictions: Path | None, weights: Path | None, protocol: str,
             out: Path, euler: str, biwi_labels: str, strict: bool, batch_size: int, device: str, limit: int | None,
             workers: int, data_root: Path | None) -> None:
    """Score a head-pose MODEL on every suite and write a report.

    \b
    MODEL is one of:
      baseline:mean          the mean training pose (the floor to beat)
      baseline:pnp           dlib 68 landmarks in the box + solvePnP on a generic 3D face
      run/best.pth           a maskbench checkpoint (crop or --protocol full)
      model.pt / model.onnx  TorchScript / ONNX: (N, 3, 224, 224) RGB in [0, 1] -> Euler, 6D or 3x3
                             (files from `maskbench export` get the crop letterboxed, as trained)
      card.json              a model card: the model's own crop, normalisation and outputs;
                             built-in: fsanet-fusion, fsanet-1x1, fsanet-var, fsanet-nos, whenet,
                             3ddfa-v2-mb05, mediapipe-face-landmarker, openvino-head-pose-adas-0001
                             (+ --weights DIR; all but FSA-Net need pip install 'maskbench[cards]')
      package.module:fn      a callable on RGB uint8 crops (./module.py is found)
    or none with --predictions FILE.csv.

    Example: `maskbench evaluate fsanet-fusion --weights models/fsanet --suite AFLW2000 --suite AFLW2000_masked`.
    """
    from maskbench.datasets.registry import check_outside_datasets
    from maskbench.evaluation.report import REPORT_KIND
    from maskbench.io.lock import OutputLock
    from maskbench.io.writer import check_replaceable

    root = opt.root(data_root)
    device = opt.device(device)
    out_dir = out.expanduser().resolve()
    if model is None and predictions is None:
        opt.fail("give a MODEL (see --help) or --predictions FILE.csv")
    found, missing = _suites_or_fail(root, suites)
    inputs = [p for p in (predictions, weights, Path(model) if model else None) if p is not None and p.exists()]
    guard = {"sources": [*found.values(), *inputs], "data_root": root}
    with opt.writing(resumable=False):
        check_replaceable(out_dir, REPORT_KIND, **guard)  # before the scoring, so a refusal costs nothing
        check_outside_datasets(out_dir, root)
        with OutputLock(out_dir):  # a second evaluate to this --out is refused from here on
                _evaluate_into(out_dir, model, found, missing, guard, predictions, weights, protocol, euler, biwi_labels,
                           batch_size, device, limit, workers, root, strict)


def _evaluate_into(out_dir: Path, model: str | None, found: dict[str, Path], missing: list[str], guard: dict,
                   predictions: Path | None, weights: Path | None, protocol: str, euler: str, biwi_labels: str,
                   batch_size: int, device: str, limit: int | None, workers: int, root: Path, strict: bool) -> None:
    """Score ``model`` on the suites ``found`` and write the report (the caller holds the lock)."""
    from maskbench.evaluation.adapters import PredictionsFile
    from maskbench.evaluation.evaluator import evaluate_suite
    from maskbench.evaluation.plots import write_plots
    from maskbench.evaluation.registry import load_model
    from maskbench.evaluation.report import REPORT_FILES, REPORT_KIND, write_report
    from maskbench.evaluation.suites import training_matrices
    from maskbench.io.writer import replaced_folder

    try:
        train = training_matrices(root) if model == "baseline:mean" and predictions is None else []
        pose_model = load_model(model, predictions=predictions, train_matrices=train, device=device,
                                weights_dir=weights)
        results = [evaluate_suite(pose_model, name, path, batch_size=batch_size, limit=limit, workers=workers,
                                  protocol=protocol, euler=euler, biwi_labels=biwi_labels)
                   for name, path in found.items()]
    except (ValueError, DatasetError) as exc:
        opt.fail(str(exc))
    if isinstance(pose_model, PredictionsFile):
        error, warning = pose_model.coverage([r.rows for r in results], [r.overall.n for r in results], list(found))
        if error:
            opt.fail(error)
        if warning:
            click.echo(f"warning: {warning}", err=True)
    with replaced_folder(out_dir, REPORT_KIND, REPORT_FILES, lock=False, **guard) as stage:
        write_report(stage, pose_model.name, results, missing, protocol,
                     protocol_text=getattr(pose_model, "protocol_text", None), euler=euler,
                     biwi_labels=biwi_labels)
        write_plots(stage, results)
    click.echo((out_dir / "report.md").read_text())
    click.echo(f"report: {out_dir}")
    unreadable = sum(len(r.unreadable) for r in results)
    if unreadable:
        click.echo(f"warning: {unreadable} samples could not be read and were not scored (listed in report.md)",
                   err=True)
        if strict:
            sys.exit(1)


def _suites_or_fail(root: Path, suites: tuple[str, ...]) -> tuple[dict[str, Path], list[str]]:
    """The requested suites found under ``root`` (the missing ones printed with the command that makes them)."""
    from maskbench.evaluation.suites import find_suites

    try:
        found, missing = find_suites(root, list(suites))
    except ValueError as exc:
        opt.fail(str(exc))
    for line in missing:
        click.echo(f"missing suite: {line}")
    if not found:
        opt.fail(f"no suite found under {root}")
    return found, missing


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("judge"), show_default=True,
              help="Report folder (realism.json, realism_lowest.png), relative to the current folder; an earlier "
              "report there is replaced as a whole, a folder maskbench did not write is refused.")
@click.option("--sample", "judge_sample", default="all", show_default=True, metavar="N|all|auto",
              help=f"Faces to grade: a seeded sample of N, all, or auto ({judge_rules.SAMPLE_RULE}).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--sources", "sources_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="The unmasked originals FOLDER was made from (a BIWI, 300W_LP or AFLW2000 folder): each judged "
              "face's original is graded too (twice the time), and realism.json counts the faces the detector "
              "finds unmasked, the unmasked faces it reads as masked, and the pass rates on the faces it finds "
              "unmasked (a fail there is the mask's, not the detector's reach; for a rotated split the control is the "
              "unrotated original). Needs FOLDER's labels.csv.")
def judge(folder: Path, out: Path, judge_sample: str, seed: int, sources_dir: Path | None) -> None:
    """Grade the masks in FOLDER with a real-photo face-mask detector (AIZOO, MIT; WIDER FACE + MAFA).

    FOLDER is a maskbench split (its labels.csv gives each face's box, mask type and yaw, for the
    breakdowns) or any folder of .jpg/.png images (e.g. MaskTheFace's output: the largest face of each
    image is judged). A face passes when p(mask) > p(no mask); no face found = fail.
    """
    from maskbench.datasets.registry import check_finished, check_outside_datasets
    from maskbench.io.labels import labels_by_id
    from maskbench.io.writer import check_replaceable, replaced_folder
    from maskbench.judge import REPORT_FILES, REPORT_KIND, items_of, summary_line, write_realism

    folder = folder.resolve()
    out_dir = out.expanduser().resolve()
    sample = opt.judge_sample(judge_sample, "--sample")
    guard = {"sources": [folder, *([sources_dir.resolve()] if sources_dir else [])], "data_root": opt.root(None)}
    with opt.writing(resumable=False):
        check_replaceable(out_dir, REPORT_KIND, **guard)  # before the grading, so a refusal costs nothing
        check_outside_datasets(out_dir, opt.root(None))
        check_finished(folder)
        rows = list(labels_by_id(folder).values())
        items = items_of(folder, rows)
        if not items:
            opt.fail(f"{folder}: no .jpg or .png image to judge")
        sources = None if sources_dir is None else judge_rules.sources_for(sources_dir.resolve(), items, folder)
        with replaced_folder(out_dir, REPORT_KIND, REPORT_FILES, **guard) as stage:
            summary = write_realism(stage, items, sample=sample, seed=seed, progress=True, sources=sources)
    click.echo(summary_line(summary))
    for key in ("by_mask_type", "by_abs_yaw_deg"):
        for group, st in summary[key].items():
            click.echo(f"  {key[3:]} {group}: {st['pass_rate']:.1%} of {st['n']}, mean p(mask) {st['mean_p_mask']:.3f}")
    colours = judge_rules.lowest_colours(summary)
    if colours:  # a palette the detector does not read as a mask stands out here (all colours: realism.json)
        click.echo(f"  lowest colours (of {COLOUR_MIN_FACES} faces or more): "
                   + ", ".join(f"{group} {rate:.1%} of {n}" for rate, group, n in colours))
    click.echo(f"report: {out}")


@main.command()
@click.argument("report_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table to this markdown file. Its first line (an HTML comment) proves maskbench "
              "wrote it; an existing file is replaced only when it is such a table, unedited.")
def compare(report_dirs: tuple[Path, ...], out: Path | None) -> None:
    """Put several `maskbench evaluate` reports side by side (MAE per suite and model)."""
    from maskbench.evaluation.plots import compare_table
    from maskbench.io.writer import write_sealed_text

    with opt.writing(resumable=False):
        table = compare_table(list(report_dirs))
        if out is not None:  # replaces only a table maskbench compare wrote (its first line proves it)
            write_sealed_text(out, table, "compare", sources=list(report_dirs), data_root=opt.root(None))
    click.echo(table)
