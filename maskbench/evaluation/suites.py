"""The suite folders a model is scored on: finding them, opening one (an unfinished run refused), its
scored samples under the protocol, and what a report must say about them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.datasets import detect_format
from maskbench.datasets.biwi import BIWI_LABELS, DEFAULT_BIWI_LABELS
from maskbench.evaluation.protocol import SUITES
from maskbench.folder import VariantFolder
from maskbench.io.labels import labels_by_id
from maskbench.io.safety import JOURNAL
from maskbench.splits import FRAME_SPLIT_WARNING, SplitRule, rule_of
from maskbench.synthesis.landmarks import READS_ANNOTATION
from maskbench.types import Sample


def find_suites(data_root: Path, requested: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Suite name -> folder for the requested names (``all`` = every known one present).

    Returns also one line per missing suite saying which command creates it. A suite named
    explicitly (not through ``all``) that is not there is an error (ValueError listing each).
    """
    every = list(requested) in (["all"], [])
    names = list(SUITES) if every else [n for n in requested if n != "all"]
    found: dict[str, Path] = {}
    missing = []
    for name in names:
        path = Path(name) if ("/" in name or Path(name).is_absolute()) else data_root / name
        if path.is_dir():
            found[path.name if "/" in name else name] = path.resolve()
        elif name in SUITES:
            missing.append(f"{name}: not found under {data_root}; create it with `{SUITES[name]}`")
        else:
            missing.append(f"{name}: no such folder ({path}); known suites: {', '.join(SUITES)}, or a path")
    if missing and not every:
        raise ValueError("suite not found: " + "; ".join(missing))
    return found, missing


def scored_samples(path: Path) -> tuple[list[Sample], int]:
    """The scored samples of a suite folder: its test rows (all rows of a 300W_LP-format folder), after
    the AFLW2000 protocol filter (|angle| <= 99 deg) for that format; and how
    many the filter dropped."""
    return _scored(open_suite(path))


def open_suite(path: Path) -> VariantFolder:
    """A suite folder, opened once; an unfinished maskbench run is refused."""
    if (path / JOURNAL).exists():
        raise ValueError(f"suite {path} is an unfinished maskbench run (its journal {JOURNAL}/ is there): "
                         "finish it with the same command and --resume, or redo it with --overwrite")
    return VariantFolder(path)


def _scored(folder: VariantFolder) -> tuple[list[Sample], int]:
    samples, dropped = folder.protocol_filtered(folder.samples())  # AFLW2000: on the original photo's angles
    if folder.format.name != "300W_LP":  # a 300W_LP-format suite is scored whole (it has no test rows)
        samples = [s for s in samples if folder.split_of(s.id) == "test"]
    return samples, len(dropped)


def protocol_notes(model: Any, suite: Path | VariantFolder, biwi_labels: str = DEFAULT_BIWI_LABELS) -> list[str]:
    """Notes a report must carry: masks fitted from the annotation (:func:`annotation_notes`); for a BIWI
    suite, its label convention; a suite split by frame, or
    scored for a model trained on a BIWI folder split by frame, is not the published protocol; a
    model trained on the other label convention is scored against labels it did not learn."""
    if isinstance(suite, VariantFolder):
        fmt, rule, rows = suite.format.name, suite.rule, suite.rows
    else:  # a path: its manifest and labels.csv are enough, the samples are not read
        fmt, rule, rows = detect_format(suite).name, rule_of(suite), labels_by_id(suite)
    notes = annotation_notes(rows)
    if fmt != "BIWI":
        return notes
    notes.append(f"BIWI labels: {BIWI_LABELS[biwi_labels]}")
    biwi_runs = [t for t in getattr(model, "training_data", None) or []
                 if t.get("format") == "BIWI" and isinstance(t.get("split"), dict)]
    rules = [rule] + [SplitRule.from_dict(t["split"]) for t in biwi_runs]
    if any(r.by == "frame" for r in rules):
        notes.append(FRAME_SPLIT_WARNING)
    trained = getattr(model, "biwi_labels", None)
    if trained is not None and trained != biwi_labels:
        notes.append(f"the model was trained on BIWI labels '{trained}' and is scored against '{biwi_labels}' "
                     "(a constant offset of each sequence's RGB calibration)")
    return notes


def annotation_notes(rows: dict[str, dict[str, str]]) -> list[str]:
    """A note when a suite's masks were fitted from the annotation (``landmark_source`` gt, dlib or pose):
    a model trained on such masks can read part of the label off the mask, so its masked score flatters it."""
    used = sorted({r.get("landmark_source", "") for r in rows.values()} & set(READS_ANNOTATION))
    if not used:
        return []
    return [f"masks fitted with --landmarks {'/'.join(used)}: they carry the annotation (placed from the labelled "
            "landmarks or pose), so a model trained on such masks can read part of the label off them; "
            "re-mask with the default --landmarks detected for a clean score"]


def training_matrices(data_root: Path) -> list[np.ndarray]:
    """Poses of the training rows under the data root (BIWI's train split and 300W_LP) for baseline:mean."""
    return [s.pose.matrix for name in ("BIWI", "300W_LP") if (data_root / name).is_dir()
            for s in VariantFolder(data_root / name).samples("train")]
