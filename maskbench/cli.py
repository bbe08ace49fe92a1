"""The ``maskbench`` command line. Commands only parse options and call the library."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from maskbench import __version__
from maskbench import judge as judge_rules
from maskbench.datasets.base import (
    DATA_ROOT_ENV,
    DatasetError,
    default_data_root,
    resolve_dataset,
    resolve_output,
)
from maskbench.datasets.registry import open_reader
from maskbench.errors import UnsafeOutputError
from maskbench.io.manifest import OutputExistsError, OutputLockedError

#: What a command that writes a split reports as one line (exit 2) instead of a traceback.
WRITE_ERRORS = (ValueError, FileNotFoundError, DatasetError, OutputExistsError, OutputLockedError, UnsafeOutputError)
OUT_RULE = ("A relative path is taken under the data root (BIWI_masked -> <data-root>/BIWI_masked, "
            "variants/x -> <data-root>/variants/x); an absolute path as given. Never the source or the data root "
            "itself; a folder maskbench did not write is never replaced.")


def _data_root_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--data-root",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Folder holding the datasets (BIWI/, 300W_LP/, AFLW2000/, derived splits). "
        f"Default: ${DATA_ROOT_ENV}, else ./data.",
    )(f)


def _run_options(f):  # type: ignore[no-untyped-def]
    """Options shared by the commands that write a split from a source."""
    options = [
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N source samples."),
        click.option("--overwrite", is_flag=True,
                     help="Replace an earlier maskbench output at --out; the new one is built beside it and swapped in "
                     "when complete (an interrupted overwrite leaves the old one whole)."),
        click.option("--resume", is_flag=True,
                     help="Continue a stopped run (same command and options); finished samples are kept."),
        click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Worker processes. Outputs are byte-identical for any value."),
        click.option("--shard", default=None, metavar="K/N",
                     help="Process only part K of N (deterministic); join the parts with `maskbench merge`."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _biwi_labels_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--biwi-labels", type=click.Choice(["literature", "calibrated"]), default="literature", show_default=True,
        help="BIWI label convention of the yaw/pitch/roll this command writes, trains on or scores: literature = the "
        "depth-frame rotation of the _pose.txt files as FSA-Net's and 6DRepNet's scripts convert it (what published "
        "BIWI numbers use); calibrated = the RGB camera frame (R_cal @ R_depth, Biwi+). Native files are the same "
        "either way; other formats ignore it.")(f)


def _split_options(f):  # type: ignore[no-untyped-def]
    """``--split-by`` / ``--split-seed`` / fractions: the split rule of a raw source (:mod:`maskbench.splits`)."""
    options = [
        click.option("--split-by", type=click.Choice(["frame", "subject", "id"]), default=None,
                     help="Train/test split of a raw source. BIWI: per subject (default: 16 of the 24 sequences train, "
                     "8 test, the published 70/30 protocol) or per frame (frames of every person on both sides); id: per "
                     "sample id for any format (AFLW2000 and 300W_LP otherwise keep their roles, test and train). A "
                     "maskbench source keeps its recorded split; another is refused."),
        click.option("--split-seed", type=int, default=None, help="Seed of the split draw (default 0)."),
        click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                     help="Share drawn into train, validation included (default: 16/24 sequences by subject, else 0.7)."),
        click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help="Share of all samples, taken from the train share, marked val (default 0)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _split_rule(split_by: str | None, split_seed: int | None, train_fraction: float | None = None,
                val_fraction: float | None = None):  # type: ignore[no-untyped-def]
    """The rule the options ask for, or None when none was given (a source keeps its own)."""
    from maskbench.splits import DEFAULT_RULE, SplitRule, default_train_fraction

    if split_by is None and split_seed is None and train_fraction is None and val_fraction is None:
        return None
    by = split_by or DEFAULT_RULE.by
    return SplitRule(by=by, seed=split_seed or 0,
                     train_fraction=default_train_fraction(by) if train_fraction is None else train_fraction,
                     val_fraction=val_fraction or 0.0)


def _parse_angles(text: str) -> tuple[float, ...]:
    """``--angles=-30,0,30`` -> degrees; a one-line error naming the option otherwise."""
    parts = [a.strip() for a in text.split(",")]
    if not any(parts):
        _fail("--angles is empty: give comma-separated degrees, e.g. --angles=-30,0,30")
    out = []
    for a in parts:
        try:
            value = float(a)
        except ValueError:
            _fail(f"--angles: {a!r} is not a number (give comma-separated degrees, e.g. --angles=-30,0,30)")
        if not -180.0 <= value <= 180.0:
            _fail(f"--angles: {a} is outside [-180, 180] degrees")
        out.append(value)
    return tuple(out)


def _judge_sample(text: str, option: str = "--judge-sample") -> int | str | None:
    """``--judge-sample``: a positive count, ``"auto"``, or None for all."""
    if text.strip().lower() == "all":
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        _fail(f"{option}: {text!r} is neither a positive number nor 'all' or 'auto'")
    return n


def _report(summary, out_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for line in summary.lines():
        click.echo(line)
    click.echo(f"output: {out_dir}")


def _protocol_options(protocol_filter: bool) -> dict[str, float]:
    """Reader options of ``--protocol-filter``: the AFLW2000 99-degree protocol."""
    from maskbench.datasets.aflw2000 import PROTOCOL_MAX_ABS_ANGLE_DEG

    return {"max_abs_angle_deg": PROTOCOL_MAX_ABS_ANGLE_DEG} if protocol_filter else {}


def _device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _root(data_root: Path | None) -> Path:
    return data_root.expanduser().resolve() if data_root else default_data_root()


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _os_error(exc: OSError) -> str:
    """One line for a failure the operating system reports (a read-only folder, a full disk)."""
    where = exc.filename if exc.filename is not None else ""
    text = exc.strerror or str(exc)
    return f"{where}: {text}" if where else text


def _out(out: str, root: Path, *sources: Path) -> Path:
    """A writer's ``--out`` by the one rule (:data:`OUT_RULE`); refused (touching nothing) when it
    is, holds or lies in a source or the data root, or lies inside a dataset tree or maskbench output."""
    from maskbench.datasets.registry import check_outside_datasets
    from maskbench.io.safety import check_location

    out_dir = resolve_output(out, root)
    check_location(out_dir, sources=sources, data_root=root)
    check_outside_datasets(out_dir, root)
    return out_dir


@contextmanager
def _writing(resumable: bool = True) -> Iterator[None]:
    """Around a command's write: its expected failures (a missing source, an output maskbench must
    not touch, a bad option value) become one ``error:`` line and exit 2, Ctrl-C the resume hint
    (:func:`_interrupted`)."""
    try:
        yield
    except WRITE_ERRORS as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_os_error(exc))
    except KeyboardInterrupt:
        _interrupted(resumable)


def _interrupted(resumable: bool = True) -> None:
    """Ctrl-C during a write: say how to continue (finished samples are kept), exit 130."""
    import shlex

    args = [a for a in sys.argv[1:] if a not in ("--overwrite", "--resume")]
    if resumable:
        click.echo(f"\ninterrupted: finished samples are kept. Continue with:\n  maskbench {shlex.join(args + ['--resume'])}",
                   err=True)
    else:
        click.echo(f"\ninterrupted: nothing was replaced. Start again with:\n  maskbench {shlex.join(args + ['--overwrite'])}",
                   err=True)
    sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="maskbench")
def main() -> None:
    """maskbench: masked and rotated head-pose datasets (BIWI, 300W_LP, AFLW2000) and a benchmark.

    Datasets are found under the data root (--data-root, $MASKBENCH_DATA or ./data) by name, so
    `--src BIWI` means <data-root>/BIWI; a path works too. No real data at hand? Run
    `maskbench sample --dataset BIWI` to render a small synthetic tree in the native layout.
    """


@main.command()
@click.option("--dataset", type=click.Choice(["BIWI", "300W_LP", "AFLW2000"], case_sensitive=False), required=True,
              help="Native layout to write.")
@click.option("--out", default=None, help="Output folder (default: the dataset name). " + OUT_RULE)
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=24, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for poses, identities, backgrounds.")
@click.option("--scale", type=click.FloatRange(0.05, 4), default=1.0, show_default=True,
              help="Image size factor: 0.25 renders the same scenes at 160x120 (BIWI) / 112x112, about 5x faster.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Render in N processes (same bytes as 1).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@_biwi_labels_option
@_data_root_option
def sample(dataset: str, out: str | None, n: int, seed: int, scale: float, workers: int, overwrite: bool,
           biwi_labels: str, data_root: Path | None) -> None:
    """Render procedural heads at known poses into a dataset's native layout.

    Labels are exact (pose, 68 landmarks, box); labels.csv and manifest.json are written too.
    """
    from maskbench.sampledata import make_sample_dataset

    root = _root(data_root)
    with _writing(resumable=False):
        out_dir = _out(out or dataset.upper(), root)
        manifest = make_sample_dataset(dataset, out_dir, n=n, seed=seed, overwrite=overwrite, scale=scale,
                                       workers=workers, data_root=root, biwi_labels=biwi_labels)
    click.echo(f"wrote {manifest['counts']['samples']} {manifest['format']} samples to {out_dir}")


@main.command(name="import")
@click.option("--src", required=True, help="Dataset name under the data root, or a path to a raw tree.")
@click.option("--out", default=None, help="Output folder (default: <SRC>_labelled). " + OUT_RULE)
@click.option("--protocol-filter/--no-protocol-filter", default=False, show_default=True,
              help="Drop samples with any stored |angle| > 99 deg (the AFLW2000 protocol); "
              "dropped ids are listed in the manifest.")
@_split_options
@click.option("--only-split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Keep only the samples of this split (the others are counted as filtered in the manifest).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N samples.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier maskbench output at --out (swapped in when complete).")
@click.option("--resume", is_flag=True, help="Continue a stopped run (same command and options).")
@_biwi_labels_option
@_data_root_option
def import_(src: str, out: str | None, protocol_filter: bool, split_by: str | None, split_seed: int | None,
            train_fraction: float | None, val_fraction: float | None, only_split: str | None, limit: int | None,
            overwrite: bool, resume: bool, biwi_labels: str, data_root: Path | None) -> None:
    """Copy a raw dataset tree into a maskbench split (native files + labels.csv + manifest.json)."""
    from maskbench.runs import write_split

    root = _root(data_root)
    with _writing():
        src_dir = resolve_dataset(src, root)
        reader = open_reader(src_dir, **_protocol_options(protocol_filter))
        out_dir = _out(out or f"{src_dir.name}_labelled", root, src_dir)
        summary = write_split(
            reader, out_dir, transform=None, transform_name="", seed=0, overwrite=overwrite, resume=resume,
            limit=limit, split=_split_rule(split_by, split_seed, train_fraction, val_fraction), only_split=only_split,
            parameters={"command": "import",
                        "protocol_filter_max_abs_angle_deg": _protocol_options(protocol_filter).get("max_abs_angle_deg"),
                        "limit": limit},
            data_root=root, biwi_labels=biwi_labels,
        )
    _report(summary, out_dir)


@main.command()
@click.option("--src", default="BIWI", show_default=True, help="Dataset name under the data root, or a path "
              "(raw tree or any maskbench split, e.g. BIWI_masked).")
@click.option("--out", default=None, help="Output folder (default: <SRC>_rotated). " + OUT_RULE)
@click.option("--range", "range_deg", type=(float, float), default=None, metavar="LO HI",
              help="Degrees, -180 <= LO <= HI <= 180; each copy draws an angle uniformly from [LO, HI] (seeded per "
              "sample). Default: -45 45.")
@click.option("--angles", default=None, metavar="A,B,...",
              help="Explicit angles in degrees (a sweep), each in [-180, 180]: every image is rotated by each. "
              "Not together with --range.")
@click.option("--per-image", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rotated copies per source image (ignored with --angles). With 1, file names stay the same.")
@click.option("--center", type=click.Choice(["image", "face"]), default="image", show_default=True,
              help="Rotate about the principal point / image centre (exact labels) or the face box centre.")
@click.option("--border", type=click.Choice(["reflect", "constant", "replicate"]), default="reflect",
              show_default=True, help="How pixels uncovered by the rotation are filled.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the angle draws.")
@_split_options
@_run_options
@_biwi_labels_option
@_data_root_option
def rotate(src: str, out: str | None, range_deg: tuple[float, float] | None, angles: str | None, per_image: int,
           center: str, border: str, seed: int, split_by: str | None, split_seed: int | None,
           train_fraction: float | None, val_fraction: float | None, limit: int | None,
           overwrite: bool, resume: bool,
           workers: int, shard: str | None, biwi_labels: str, data_root: Path | None) -> None:
    """Rotate faces in-plane and recompute yaw/pitch/roll exactly (Sheka & Samun style).

    Example: `maskbench rotate --range -45 45` writes <data-root>/BIWI_rotated. Image, landmarks, box
    and pose move together; labels are written in the source's native layout plus labels.csv
    (rotation_deg, source_id columns) and manifest.json.
    """
    from maskbench.augment.rotation import RotationParams, make_transform
    from maskbench.runs import parse_shard, write_split
    from maskbench.transforms import RandomInPlaneRotation

    root = _root(data_root)
    angle_list = None if angles is None else _parse_angles(angles)
    if angle_list is not None and range_deg is not None:
        _fail("give --angles (a sweep) or --range (random angles), not both")
    range_deg = range_deg or (-45.0, 45.0)
    lo, hi = range_deg
    if not -180.0 <= lo <= hi <= 180.0:
        _fail(f"--range {lo:g} {hi:g}: needs -180 <= LO <= HI <= 180 (degrees)")
    with _writing():
        params = RotationParams(range_deg=range_deg, angles_deg=angle_list, per_image=per_image, center=center,
                                border=border)
        src_dir = resolve_dataset(src, root)
        reader = open_reader(src_dir)
        out_dir = _out(out or f"{src_dir.name}_rotated", root, src_dir)
        summary = write_split(
            reader, out_dir, transform=make_transform(reader.fmt, params),
            transform_name=RandomInPlaneRotation.purpose, seed=seed,
            overwrite=overwrite, resume=resume, limit=limit, workers=workers,
            split=_split_rule(split_by, split_seed, train_fraction, val_fraction),
            shard=parse_shard(shard),
            parameters={"command": "rotate", "source": src_dir.name, "limit": limit, **params.as_dict()},
            data_root=root, biwi_labels=biwi_labels,
        )
    _report(summary, out_dir)


@main.command()
@click.option("--src", default="BIWI", show_default=True,
              help="Dataset name under the data root, or a path (raw tree or any maskbench split).")
@click.option("--out", default=None, help="Output folder (default: <SRC>_masked). " + OUT_RULE)
@click.option("--mask-types", default="all", show_default=True, metavar="A,B|all",
              help="Comma list of mask types to draw from (surgical, n95, kn95, cloth, respirator) or all; "
              "each face gets one, chosen by the seeded per-sample generator.")
@click.option("--colors", default="all", show_default=True, metavar="A,B|all",
              help="Restrict colours by name (e.g. white,black), drawn by each type's colour frequencies; with all, "
              "30 % of cloth masks get a pattern (stripes, gingham, dots) in a two-colour palette.")
@click.option("--landmarks", type=click.Choice(["auto", "gt", "dlib", "pose"]), default="auto", show_default=True,
              help="Landmark source: dataset ground truth; dlib's 68-point model run on the face box (no detector, "
              "so no face is missed); the generic 3D face posed with the label. auto = gt, else dlib, else pose.")
@click.option("--no-occluders", is_flag=True,
              help="Paint the mask over everything in its place. By default what is in front of the lower face and "
              "is not its skin (a hand of another colour, hair, an object) stays on top, and the occlusion map "
              "leaves it out; occluder_px counts those pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-sample choices.")
@click.option("--no-judge", is_flag=True, help="Do not grade the masks with the real-photo mask detector.")
@click.option("--judge-sample", default="auto", show_default=True, metavar="N|all|auto",
              help=f"Faces the mask detector grades (a seeded sample; all: every face; auto: {judge_rules.SAMPLE_RULE}). "
              "It runs at about 45 images/s on 2 CPU cores, several times slower than masking, so the default "
              "grades a sample; realism.json gives the pass rate's 95 % interval.")
@_split_options
@_run_options
@_biwi_labels_option
@_data_root_option
def synthesize(src: str, out: str | None, mask_types: str, colors: str, landmarks: str, no_occluders: bool, seed: int,
               no_judge: bool, judge_sample: str,
               split_by: str | None,
               split_seed: int | None, train_fraction: float | None, val_fraction: float | None,
               limit: int | None, overwrite: bool, resume: bool, workers: int, shard: str | None,
               biwi_labels: str, data_root: Path | None) -> None:
    """Fit a synthetic face mask to every face (pose-aware, 100 % coverage) and write a masked split.

    Example: `maskbench synthesize --src BIWI --out BIWI_masked`. Labels are unchanged (a mask does not
    change the pose); a binary occlusion map per image goes to occlusion/ (occlusion_path column), with
    mask_type, mask_color, landmark_source and occluder_px columns. The mask is matched to each photo:
    light and shadow from the skin it covers, white balance, blur, noise and the source's JPEG quality.

    At the end a real-photo face-mask detector (AIZOO, MIT) grades the masks: realism.json (pass rate and
    mean p(mask) per mask type and |yaw| bin), realism_lowest.png (the 16 lowest-scoring faces) and one
    summary line; --no-judge skips it.
    """
    from maskbench.runs import parse_shard, write_split
    from maskbench.synthesis.mask import SynthesisParams, make_transform
    from maskbench.transforms import RandomMask

    def split_list(text: str) -> tuple[str, ...]:
        return () if text.strip().lower() == "all" else tuple(t.strip() for t in text.split(",") if t.strip())

    root = _root(data_root)
    sample = _judge_sample(judge_sample)
    realism: dict = {}

    def judge(folder: Path, rows: list[dict[str, str]]) -> None:
        from maskbench.judge import items_of, write_realism

        realism.update(write_realism(folder, items_of(folder, rows), sample=sample, seed=seed, progress=True))

    with _writing():
        params = SynthesisParams(mask_types=split_list(mask_types), colors=split_list(colors), landmarks=landmarks,
                                 occluders=not no_occluders)
        src_dir = resolve_dataset(src, root)
        reader = open_reader(src_dir)
        out_dir = _out(out or f"{src_dir.name}_masked", root, src_dir)
        summary = write_split(
            reader, out_dir, transform=make_transform(params), transform_name=RandomMask.purpose, seed=seed,
            overwrite=overwrite, resume=resume, limit=limit, workers=workers,
            split=_split_rule(split_by, split_seed, train_fraction, val_fraction),
            shard=parse_shard(shard), count_columns=("mask_type", "landmark_source"),
            parameters={"command": "synthesize", "source": src_dir.name, "limit": limit, **params.as_dict(),
                        **({"judge_sample": sample if sample is not None else "all"} if not no_judge else {})},
            data_root=root, biwi_labels=biwi_labels, finalize=None if no_judge else judge,
            finalize_files=judge_rules.REPORT_FILES,
        )
    _report(summary, out_dir)
    if realism:
        from maskbench.judge import summary_line

        click.echo(summary_line(realism) + " (realism.json, realism_lowest.png)")


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
@_biwi_labels_option
@click.option("--strict", is_flag=True,
              help="Exit 1 when any sample could not be read (they are always listed in the report and left out "
              "of the scores; without --strict the exit status is 0).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N samples of each suite.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads decoding images ahead of the model.")
@_data_root_option
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
                             built-in: fsanet-fusion, fsanet-1x1, fsanet-var, fsanet-nos (+ --weights DIR)
      package.module:fn      a callable on RGB uint8 crops (./module.py is found)
    or none with --predictions FILE.csv.

    Example: `maskbench evaluate fsanet-fusion --weights models/fsanet --suite AFLW2000 --suite AFLW2000_masked`.
    """
    from maskbench.datasets.registry import check_outside_datasets
    from maskbench.evaluation.evaluator import REPORT_KIND
    from maskbench.io.manifest import check_replaceable
    from maskbench.io.safety import OutputLock

    root = _root(data_root)
    device = _device(device)
    out_dir = out.expanduser().resolve()
    if model is None and predictions is None:
        _fail("give a MODEL (see --help) or --predictions FILE.csv")
    found, missing = _suites_or_fail(root, suites)
    inputs = [p for p in (predictions, weights, Path(model) if model else None) if p is not None and p.exists()]
    guard = {"sources": [*found.values(), *inputs], "data_root": root}
    with _writing(resumable=False):
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
    from maskbench.evaluation.evaluator import REPORT_FILES, REPORT_KIND, evaluate_suite, training_matrices, write_report
    from maskbench.evaluation.plots import write_plots
    from maskbench.evaluation.registry import load_model
    from maskbench.io.manifest import replaced_folder

    try:
        train = training_matrices(root) if model == "baseline:mean" and predictions is None else []
        pose_model = load_model(model, predictions=predictions, train_matrices=train, device=device,
                                weights_dir=weights)
        results = [evaluate_suite(pose_model, name, path, batch_size=batch_size, limit=limit, workers=workers,
                                  protocol=protocol, euler=euler, biwi_labels=biwi_labels)
                   for name, path in found.items()]
    except (ValueError, DatasetError) as exc:
        _fail(str(exc))
    if isinstance(pose_model, PredictionsFile):
        _check_predictions_matched(pose_model, results, list(found), predictions)
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
    from maskbench.evaluation.evaluator import find_suites

    try:
        found, missing = find_suites(root, list(suites))
    except ValueError as exc:
        _fail(str(exc))
    for line in missing:
        click.echo(f"missing suite: {line}")
    if not found:
        _fail(f"no suite found under {root}")
    return found, missing


def _check_predictions_matched(pose_model, results, suites: list[str], predictions: Path | None) -> None:  # type: ignore[no-untyped-def]
    """A predictions file none of whose ids is scored is an error; a partial match a warning."""
    asked = sum(r.overall.n for r in results)
    matched = len(pose_model.matched)
    if matched == 0:
        example = next(iter(pose_model.table), "(empty file)")
        wanted = next((row["id"] for r in results for row in r.rows), "")
        _fail(f"none of the {len(pose_model.table)} ids in {predictions} is a scored sample of "
              f"{', '.join(suites)} (the file has ids like {example!r}; the suites want ids like {wanted!r}, "
              "as in their labels.csv)")
    if matched < asked:
        click.echo(f"warning: {asked - matched} of {asked} scored samples have no row in {predictions}; "
                   "they count as misses", err=True)


def _source_images(sources_dir: Path, items: list, folder: Path) -> dict:
    """Source id -> :class:`~maskbench.judge.Source` (image path and face box) of the originals in
    ``sources_dir`` that ``items`` were made from."""
    from maskbench.datasets.registry import open_reader
    from maskbench.judge import Source

    wanted = {it.source_id for it in items if it.source_id}
    if not wanted:
        _fail(f"--sources: {folder} has no labels.csv with source ids (is it a maskbench split?)")
    reader = open_reader(sources_dir)
    out = {}
    for key in sorted(wanted & set(reader.keys)):  # every format's keys are its sample ids
        sample = reader.read(key)
        if sample is not None and sample.image_path is not None:
            out[sample.id] = Source.of(sample)
    if not out:
        _fail(f"--sources: none of the {len(wanted)} source ids of {folder} is a sample of {sources_dir}")
    return out


#: ``maskbench judge`` names the three mask colours that read least as masks among those worn by at
#: least this many judged faces (fewer say little: 3 passes of 5 is a 95 % interval of 23-88 %).
JUDGE_COLOUR_MIN_FACES = 10


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
    from maskbench.io.manifest import check_replaceable, labels_by_id, replaced_folder
    from maskbench.judge import REPORT_FILES, REPORT_KIND, items_of, summary_line, write_realism

    folder = folder.resolve()
    out_dir = out.expanduser().resolve()
    sample = _judge_sample(judge_sample, "--sample")
    guard = {"sources": [folder, *([sources_dir.resolve()] if sources_dir else [])], "data_root": _root(None)}
    with _writing(resumable=False):
        check_replaceable(out_dir, REPORT_KIND, **guard)  # before the grading, so a refusal costs nothing
        check_outside_datasets(out_dir, _root(None))
        check_finished(folder)
        rows = list(labels_by_id(folder).values())
        items = items_of(folder, rows)
        if not items:
            _fail(f"{folder}: no .jpg or .png image to judge")
        sources = None if sources_dir is None else _source_images(sources_dir.resolve(), items, folder)
        with replaced_folder(out_dir, REPORT_KIND, REPORT_FILES, **guard) as stage:
            summary = write_realism(stage, items, sample=sample, seed=seed, progress=True, sources=sources)
    click.echo(summary_line(summary))
    for key in ("by_mask_type", "by_abs_yaw_deg"):
        for group, st in summary[key].items():
            click.echo(f"  {key[3:]} {group}: {st['pass_rate']:.1%} of {st['n']}, mean p(mask) {st['mean_p_mask']:.3f}")
    colours = sorted((st["pass_rate"], group, st["n"]) for group, st in summary["by_mask_type_and_color"].items()
                     if st["n"] >= JUDGE_COLOUR_MIN_FACES)
    if colours:  # a palette the detector does not read as a mask stands out here (all colours: realism.json)
        click.echo(f"  lowest colours (of {JUDGE_COLOUR_MIN_FACES} faces or more): "
                   + ", ".join(f"{group} {rate:.1%} of {n}" for rate, group, n in colours[:3]))
    click.echo(f"report: {out}")


@main.command()
@click.argument("report_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table to this markdown file. Its first line (an HTML comment) proves maskbench "
              "wrote it; an existing file is replaced only when it is such a table, unedited.")
def compare(report_dirs: tuple[Path, ...], out: Path | None) -> None:
    """Put several `maskbench evaluate` reports side by side (MAE per suite and model)."""
    from maskbench.evaluation.plots import compare_table
    from maskbench.io.manifest import write_sealed_text

    with _writing(resumable=False):
        table = compare_table(list(report_dirs))
        if out is not None:  # replaces only a table maskbench compare wrote (its first line proves it)
            write_sealed_text(out, table, "compare", sources=list(report_dirs), data_root=_root(None))
    click.echo(table)


@main.command()
@click.option("--config", "config_name", required=True,
              help="Built-in config (model1, model2, model3, model4) or a JSON file (copy one from "
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
@_data_root_option
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

    device = _device(device)
    try:
        if workers is None:
            workers = 6 if device.startswith("cuda") else 0
        config = load_config(config_name)
        if biwi_labels is not None:
            config = {**config, "biwi_labels": biwi_labels}
        result = run_training(config, _root(data_root), out.expanduser().resolve(), device=device,
                              epochs=epochs, seed=seed, max_minutes=max_minutes, init=init, resume=resume,
                              workers=workers, amp=amp)
    except (ValueError, FileNotFoundError, DatasetError) as exc:
        _fail(str(exc))
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
        _fail(str(exc))
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
              help="Starting weights of the photo grid's models: the RetinaFace-MobileNet0.25 release "
              "(mobilenet0.25_Final.pth).")
def reproduce(out: Path, preset: str | None, data: Path | None, device: str, seed: int, init: Path | None) -> None:
    """Rebuild the masked-HPE grid: variants, model1-4 trained, every suite evaluated, REPORT.md.

    Finished stages (verified manifests, completed runs, written results) are skipped, so an
    interrupted run continues where it stopped. `make reproduce` calls this.
    """
    from maskbench import reproduce as rep

    preset = preset or ("real" if data is not None else "sample")
    try:
        report = rep.run(out.expanduser().resolve(), preset, None if data is None else data.resolve(), _device(device),
                         seed, echo=click.echo, init=None if init is None else init.resolve())
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    click.echo(report.read_text())


@main.command()
@click.argument("shards", nargs=-1, required=True)
@click.option("--out", required=True, help="Output folder. " + OUT_RULE)
@click.option("--overwrite", is_flag=True, help="Replace an earlier maskbench output at --out (swapped in when complete).")
@_data_root_option
def merge(shards: tuple[str, ...], out: str, overwrite: bool, data_root: Path | None) -> None:
    """Join the outputs of `--shard 1/N` ... `--shard N/N` into one split.

    The result is byte-identical to an unsharded run (same files, labels.csv and manifest.json).
    """
    from maskbench.runs import merge_splits

    root = _root(data_root)
    with _writing(resumable=False):
        out_dir = _out(out, root)
        manifest = merge_splits([resolve_dataset(s, root) for s in shards], out_dir, overwrite=overwrite, data_root=root)
    click.echo(f"merged {len(shards)} shards: {manifest['counts']['samples']} samples in {out_dir}")


@main.command()
@click.argument("split_dirs", nargs=-1, required=True)
@_data_root_option
def verify(split_dirs: tuple[str, ...], data_root: Path | None) -> None:
    """Re-check counts and sha256 checksums of splits against their manifest.json.

    Exits 1 and lists every problem (changed, missing or extra files; label rows) when any is found.
    """
    from maskbench.splits import verify_split

    bad = 0
    for name in split_dirs:
        try:
            path = resolve_dataset(name, _root(data_root))
        except FileNotFoundError as exc:
            click.echo(f"{name}: {exc}")
            bad += 1
            continue
        problems = verify_split(path)
        click.echo(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        for p in problems:
            click.echo(f"  {p}")
        bad += bool(problems)
    sys.exit(1 if bad else 0)


@main.command()
@click.argument("src")
@click.option("--protocol-filter/--no-protocol-filter", default=False, help="Apply the 99-degree filter.")
@_data_root_option
def info(src: str, protocol_filter: bool, data_root: Path | None) -> None:
    """Read a dataset tree and print its format, counts, pose ranges and unreadable files."""
    import numpy as np

    from maskbench.io.manifest import labels_by_id

    try:
        reader = open_reader(resolve_dataset(src, _root(data_root)),
                              **_protocol_options(protocol_filter))
        rows = labels_by_id(reader.root)  # a maskbench split's labels.csv, checked like every command reads it
    except (FileNotFoundError, DatasetError) as exc:
        _fail(str(exc))
    angles = np.array([[s.pose.yaw_deg, s.pose.pitch_deg, s.pose.roll_deg] for s in reader]).reshape(-1, 3)
    n_filtered = sum(len(ids) for ids in reader.filtered.values())
    click.echo(f"{reader.root}: format {reader.fmt.name}, {len(angles)} of {len(reader)} samples kept"
               + (f", {n_filtered} outside the protocol" if protocol_filter else "")
               + f", {len(reader.errors)} unreadable")
    for k, name in enumerate(("yaw_deg", "pitch_deg", "roll_deg")):
        if len(angles):
            col = angles[:, k]
            click.echo(f"  {name:9s} min {col.min():8.2f}  mean {col.mean():8.2f}  max {col.max():8.2f}")
    if rows:
        per_split: dict[str, int] = {}
        for row in rows.values():
            per_split[row["split"]] = per_split.get(row["split"], 0) + 1
        click.echo("  labels.csv rows by split: " + ", ".join(f"{k} {v}" for k, v in sorted(per_split.items())))
    for reason, ids in reader.filtered.items():
        click.echo(f"  filtered ({reason}): {len(ids)}")
    for err in reader.errors:
        click.echo(f"  unreadable: {err}")


if __name__ == "__main__":  # pragma: no cover
    main()
