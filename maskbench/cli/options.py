"""What every command shares: options, their parsers, the output rule and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from maskbench.datasets.base import (
    DATA_ROOT_ENV,
    DatasetError,
    default_data_root,
    resolve_output,
)
from maskbench.errors import UnsafeOutputError
from maskbench.io.lock import OutputLockedError
from maskbench.io.writer import OutputExistsError

#: What a command that writes a split reports as one line (exit 2) instead of a traceback.
WRITE_ERRORS = (ValueError, FileNotFoundError, DatasetError, OutputExistsError, OutputLockedError, UnsafeOutputError)
OUT_RULE = ("A relative path is taken under the data root (BIWI_masked -> <data-root>/BIWI_masked, "
            "variants/x -> <data-root>/variants/x); an absolute path as given. Never the source or the data root "
            "itself; a folder maskbench did not write is never replaced.")


def data_root_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--data-root",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Folder holding the datasets (BIWI/, 300W_LP/, AFLW2000/, derived splits). "
        f"Default: ${DATA_ROOT_ENV}, else ./data.",
    )(f)


def run_options(f):  # type: ignore[no-untyped-def]
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


def biwi_labels_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--biwi-labels", type=click.Choice(["literature", "calibrated"]), default="literature", show_default=True,
        help="BIWI label convention of the yaw/pitch/roll this command writes, trains on or scores: literature = the "
        "depth-frame rotation of the _pose.txt files as FSA-Net's and 6DRepNet's scripts convert it (what published "
        "BIWI numbers use); calibrated = the RGB camera frame (R_cal @ R_depth, Biwi+). Native files are the same "
        "either way; other formats ignore it.")(f)


def split_options(f):  # type: ignore[no-untyped-def]
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


def split_rule(split_by: str | None, split_seed: int | None, train_fraction: float | None = None,
                val_fraction: float | None = None):  # type: ignore[no-untyped-def]
    """The rule the options ask for, or None when none was given (a source keeps its own)."""
    from maskbench.splits import DEFAULT_RULE, SplitRule, default_train_fraction

    if split_by is None and split_seed is None and train_fraction is None and val_fraction is None:
        return None
    by = split_by or DEFAULT_RULE.by
    return SplitRule(by=by, seed=split_seed or 0,
                     train_fraction=default_train_fraction(by) if train_fraction is None else train_fraction,
                     val_fraction=val_fraction or 0.0)


def parse_angles(text: str) -> tuple[float, ...]:
    """``--angles=-30,0,30`` -> degrees; a one-line error naming the option otherwise."""
    parts = [a.strip() for a in text.split(",")]
    if not any(parts):
        fail("--angles is empty: give comma-separated degrees, e.g. --angles=-30,0,30")
    out = []
    for a in parts:
        try:
            value = float(a)
        except ValueError:
            fail(f"--angles: {a!r} is not a number (give comma-separated degrees, e.g. --angles=-30,0,30)")
        if not -180.0 <= value <= 180.0:
            fail(f"--angles: {a} is outside [-180, 180] degrees")
        out.append(value)
    return tuple(out)


def judge_sample(text: str, option: str = "--judge-sample") -> int | str | None:
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
        fail(f"{option}: {text!r} is neither a positive number nor 'all' or 'auto'")
    return n


def report(summary, out_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for line in summary.lines():
        click.echo(line)
    click.echo(f"output: {out_dir}")


def protocol_options(protocol_filter: bool) -> dict[str, float]:
    """Reader options of ``--protocol-filter``: the AFLW2000 99-degree protocol."""
    from maskbench.datasets.aflw2000 import PROTOCOL_MAX_ABS_ANGLE_DEG

    return {"max_abs_angle_deg": PROTOCOL_MAX_ABS_ANGLE_DEG} if protocol_filter else {}


def device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def root(data_root: Path | None) -> Path:
    return data_root.expanduser().resolve() if data_root else default_data_root()


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def os_error(exc: OSError) -> str:
    """One line for a failure the operating system reports (a read-only folder, a full disk)."""
    where = exc.filename if exc.filename is not None else ""
    text = exc.strerror or str(exc)
    return f"{where}: {text}" if where else text


def out(out: str, root: Path, *sources: Path) -> Path:
    """A writer's ``--out`` by the one rule (:data:`OUT_RULE`); refused (touching nothing) when it
    is, holds or lies in a source or the data root, or lies inside a dataset tree or maskbench output."""
    from maskbench.datasets.registry import check_outside_datasets
    from maskbench.io.safety import check_location

    out_dir = resolve_output(out, root)
    check_location(out_dir, sources=sources, data_root=root)
    check_outside_datasets(out_dir, root)
    return out_dir


@contextmanager
def writing(resumable: bool = True) -> Iterator[None]:
    """Around a command's write: its expected failures (a missing source, an output maskbench must
    not touch, a bad option value) become one ``error:`` line and exit 2, Ctrl-C the resume hint
    (:func:`interrupted`)."""
    try:
        yield
    except WRITE_ERRORS as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error(exc))
    except KeyboardInterrupt:
        interrupted(resumable)


def interrupted(resumable: bool = True) -> None:
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
