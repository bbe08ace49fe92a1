"""Suites, the evaluation loop (``--protocol crop``) and reports.

Suites are split folders under the data root. Which samples a suite scores: its ``test`` rows
(:func:`maskbench.splits.splits_by_id`: the ``labels.csv`` column, or on a raw tree the same rule
the trainer and ``maskbench import`` apply), except ``300W_LP``-format suites, which have no test
rows and are scored whole (``300W_LP_masked``, as in the published study: a model trained on it is
scored on its own training faces, and reports mark that "(train)"). AFLW2000-format suites apply
the standard filter (every stored |angle| <= 99 degrees); the number dropped is reported. A
maskbench checkpoint records the identities of its training and validation faces (:mod:`maskbench.faces`);
scored faces among them are marked (``seen`` in predictions.csv, a "(train)" note in the report),
whatever folders or split rules they come through.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets import detect_format
from maskbench.datasets.biwi import BIWI_LABELS, DEFAULT_BIWI_LABELS, label_matrix
from maskbench.evaluation.metrics import PENALTY_KEYS, Scores, angle_errors_deg, paired_delta, score
from maskbench.evaluation.protocol import (
    EULER_MODES,
    PROTOCOL_TEXT,
    SUITES,
    EvalItem,
    PoseModel,
    label_euler_deg,
    predicted_euler_deg,
    try_load_item,
)
from maskbench.folder import VariantFolder
from maskbench.io.atomic import atomic_write_text
from maskbench.io.safety import JOURNAL
from maskbench.progress import progress_bar
from maskbench.splits import FRAME_SPLIT_WARNING, SplitRule, rule_of
from maskbench.types import Sample

YAW_BINS_DEG = (0.0, 30.0, 60.0, 90.0, 181.0)
ROTATION_BINS_DEG = (0.0, 15.0, 30.0, 45.0, 181.0)


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


@dataclass
class SuiteResult:
    name: str
    overall: Scores
    filtered: int
    breakdown: dict[str, dict[str, Scores]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: samples whose files could not be read ("path: problem", path relative to the suite): not scored
    unreadable: list[str] = field(default_factory=list)
    #: what a reader of the numbers must know about the protocol (e.g. a per-frame BIWI split)
    notes: list[str] = field(default_factory=list)
    #: scored faces the model was trained or validated on, by identity (:mod:`maskbench.faces`)
    n_seen: int = 0


def _bin_label(value: float, edges: Sequence[float]) -> str:
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= value < hi:
            return f"{lo:g}-{min(hi, 180):g}"
    return "other"


def evaluate_suite(model: PoseModel, name: str, path: Path, batch_size: int = 32, limit: int | None = None,
                   progress: bool = True, workers: int = 2, protocol: str = "crop", euler: str = "fixed",
                   biwi_labels: str = DEFAULT_BIWI_LABELS) -> SuiteResult:
    """Score ``model`` on one suite folder with the ``crop`` or ``full`` protocol; per-axis errors of
    predicted rotations by ``euler`` (:data:`EULER_MODES`; angles a model outputs are compared as given);
    BIWI-format suites against labels in the ``biwi_labels`` convention (:data:`~maskbench.datasets.biwi.BIWI_LABELS`).

    Images are decoded (and, for adapters with ``prepare``, cropped and resized) by ``workers``
    threads (OpenCV releases the GIL); for a model on a GPU one batch ahead, overlapping inference.
    """
    if protocol == "full" and not hasattr(model, "predict_full"):
        raise ValueError(f"{model.name} cannot run --protocol full: it needs a face detector "
                         "(maskbench checkpoints have one); use --protocol crop")
    if euler not in EULER_MODES:
        raise ValueError(f"euler must be one of {', '.join(EULER_MODES)}, got {euler!r}")
    folder = open_suite(path)
    samples, n_filtered = _scored(folder)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise ValueError(f"suite {name} ({path}) has no samples to score"
                         + (f" (all {len(folder.errors)} unreadable, e.g. {folder.errors[0]})" if folder.errors else
                            ": an empty split, or one without test rows"))
    scored = _predict(model, name, folder, samples, protocol, euler, biwi_labels, batch_size, workers, progress)
    if not scored.rows:
        raise ValueError(f"suite {name} ({path}): none of its {len(samples)} samples could be read "
                         f"(e.g. {scored.unreadable[0]})")
    notes = protocol_notes(model, folder, biwi_labels)
    n_seen = sum(r["seen"] for r in scored.rows)
    if n_seen:
        notes.append(f"(train) {n_seen} of the {len(scored.rows)} scored faces were among the model's training or "
                     "validation faces (column seen of predictions.csv): this suite does not measure unseen faces")
    true_e, pred_e = np.asarray(scored.true_e).reshape(-1, 3), np.asarray(scored.pred_e).reshape(-1, 3)
    result = SuiteResult(name, score(true_e, pred_e, scored.true_m, scored.pred_m), n_filtered, rows=scored.rows,
                         unreadable=sorted(folder.errors + scored.unreadable), notes=notes, n_seen=n_seen)
    result.breakdown = _breakdown(scored, true_e, pred_e)
    return result


@dataclass
class _Scored:
    """What the model said about each readable face of a suite, in order."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    true_m: list[np.ndarray] = field(default_factory=list)
    pred_m: list[np.ndarray | None] = field(default_factory=list)
    true_e: list[tuple[float, float, float]] = field(default_factory=list)
    pred_e: list[tuple[float, float, float]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _predict(model: PoseModel, name: str, folder: VariantFolder, samples: Sequence[Sample], protocol: str, euler: str,
             biwi_labels: str, batch_size: int, workers: int, progress: bool) -> _Scored:
    """Decode (``workers`` threads; on a GPU one batch ahead, overlapping inference), predict, and
    compare each face with its label."""
    from concurrent.futures import ThreadPoolExecutor

    predict = model.predict_full if protocol == "full" else model.predict  # type: ignore[attr-defined]
    load = functools.partial(try_load_item, prepare=getattr(model, "prepare", None) if protocol == "crop" else None,
                             suite_dir=folder.path)
    seen_faces: set[str] | None = getattr(model, "seen_faces", None)
    out = _Scored()
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    # On a GPU the next batch is decoded while the model runs. On the CPU the forward pass already
    # keeps every core busy, and decoding beside it measured slower than decoding first: the decode
    # threads preempt the model's threads, which then wait for each other.
    ahead = 1 if str(getattr(model, "device", "cpu")).startswith("cuda") else 0
    pending = [pool.map(load, b) for b in batches[:ahead]]
    for k, batch in enumerate(progress_bar(batches, desc=f"evaluate {name}", unit="batch", disable=not progress)):
        if k + ahead < len(batches):
            pending.append(pool.map(load, batches[k + ahead]))
        loaded = list(pending.pop(0))
        out.unreadable += [it for it in loaded if isinstance(it, str)]
        good = [(s, it) for s, it in zip(batch, loaded) if isinstance(it, EvalItem)]
        for (s, _), pred in zip(good, predict([it for _, it in good]) if good else []):
            if pred is not None and not np.isfinite(pred).all():
                raise ValueError(f"{model.name} returned a non-finite pose for {s.id} in {folder.path}")
            _compare(out, name, folder, s, pred, euler, biwi_labels, seen_faces)
    pool.shutdown()
    return out


def _compare(out: _Scored, name: str, folder: VariantFolder, s: Sample, pred: np.ndarray | None, euler: str,
             biwi_labels: str, seen_faces: set[str] | None) -> None:
    """One face: its label and the model's answer as angles and matrices, and its predictions.csv row."""
    nan = float("nan")
    truth = label_euler_deg(s, biwi_labels)
    if pred is None:
        guess = (nan, nan, nan)
    elif pred.shape == (3,):  # the model's own angles, compared as given
        guess = (float(pred[0]), float(pred[1]), float(pred[2]))
        pred = geometry.euler_deg_to_matrix(*guess)
    else:  # a rotation: decomposed (fixed) or the nearer of its two triples (closest)
        guess = predicted_euler_deg(pred, truth, euler)
    out.true_m.append(label_matrix(s, biwi_labels))
    out.pred_m.append(pred)
    out.true_e.append(truth)
    out.pred_e.append(guess)
    extra = folder.rows.get(s.id, {})
    seen = seen_faces is not None and folder.face(s) in seen_faces
    out.rows.append({"suite": name, "id": s.id, "source_id": extra.get("source_id") or s.id, "seen": seen,
                     "true_yaw_deg": truth[0], "true_pitch_deg": truth[1],
                     "true_roll_deg": truth[2], "pred_yaw_deg": guess[0], "pred_pitch_deg": guess[1],
                     "pred_roll_deg": guess[2], "missed": pred is None,
                     "mask_type": extra.get("mask_type", ""), "rotation_deg": extra.get("rotation_deg", "")})


def _breakdown(scored: _Scored, true_e: np.ndarray, pred_e: np.ndarray) -> dict[str, dict[str, Scores]]:
    """Scores per |yaw| bin, per mask type and per in-plane rotation bin."""
    groups: dict[str, dict[str, list[int]]] = {"abs_yaw_deg": {}, "mask_type": {}, "rotation_deg": {}}
    for i, r in enumerate(scored.rows):
        groups["abs_yaw_deg"].setdefault(_bin_label(abs(r["true_yaw_deg"]), YAW_BINS_DEG), []).append(i)
        if r["mask_type"]:
            groups["mask_type"].setdefault(r["mask_type"], []).append(i)
        if r["rotation_deg"] != "":
            groups["rotation_deg"].setdefault(_bin_label(abs(float(r["rotation_deg"])), ROTATION_BINS_DEG), []).append(i)
    breakdown: dict[str, dict[str, Scores]] = {}
    for key, members in groups.items():
        for label, idx in sorted(members.items()):
            breakdown.setdefault(key, {})[label] = score(
                true_e[idx], pred_e[idx], [scored.true_m[i] for i in idx], [scored.pred_m[i] for i in idx]
            )
    return breakdown


def _f(v: float) -> str:
    return "-" if v != v else f"{v:.2f}"


#: The kind an evaluation report's manifest declares, and every file its writers may put in it.
REPORT_KIND = "evaluation report"
REPORT_FILES = ("report.md", "results.json", "results.csv", "predictions.csv", "error_vs_yaw.png", "masked_delta.png")


def write_report(out_dir: Path, model_name: str, results: Sequence[SuiteResult], missing: Sequence[str],
                 protocol: str = "crop", protocol_text: str | None = None, euler: str = "fixed",
                 biwi_labels: str = DEFAULT_BIWI_LABELS) -> None:
    """report.md (the published table layout), results.csv/json, predictions.csv. ``protocol_text``:
    what the model was given, when the model says so itself (a model card, a predictions file).
    ``euler``: how predicted rotations were split into angles (:data:`EULER_MODES`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol_text = protocol_text or PROTOCOL_TEXT[protocol]
    lines = [f"# maskbench evaluation: {model_name}", "", f"Protocol: {protocol_text}. "
             "Errors in degrees; angle differences wrapped to [-180, 180).",
             f"Per-axis errors of predicted rotations: Euler {EULER_MODES[euler]}; angles a model outputs are "
             "compared as given. GEODESIC: the rotation angle between prediction and label (no Euler convention).",
             "", "| suite | YAW | PITCH | ROLL | MAE | GEODESIC | MAEV | miss rate | n | unreadable |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        o = r.overall
        lines.append(f"| {r.name} | {_f(o.yaw_mae_deg)} | {_f(o.pitch_mae_deg)} | {_f(o.roll_mae_deg)} | "
                     f"{_f(o.mae_deg)} | {_f(o.geodesic_deg)} | {_f(o.maev_deg)} | {o.miss_rate:.1%} | {o.n} | "
                     f"{len(r.unreadable)} |")
    for r in results:
        lines += _suite_details(r)
    penalties = masked_penalties(results)
    lines += _penalty_lines(penalties)
    if missing:
        lines += ["", "Suites not found:", ""] + [f"* {m}" for m in missing]
    atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
    summary = {r.name: {**r.overall.as_dict(), "filtered": r.filtered, "unreadable": r.unreadable, "notes": r.notes,
                        "seen_in_training": r.n_seen,
                        "breakdown": {k: {g: s.as_dict() for g, s in v.items()} for k, v in r.breakdown.items()}}
               for r in results}
    for masked, pen in penalties.items():
        summary[masked]["masked_penalty"] = pen
    atomic_write_text(out_dir / "results.json",
                      json.dumps({"model": model_name, "protocol": protocol, "protocol_text": protocol_text,
                                  "euler": euler, "biwi_labels": biwi_labels, "suites": summary}, indent=1) + "\n")
    _write_csvs(out_dir, results)


def _suite_details(r: SuiteResult) -> list[str]:
    """A suite's notes, unreadable samples, protocol filter count and breakdown tables."""
    lines = [f"\n{r.name}: {note}." for note in r.notes]
    if r.unreadable:
        lines += ["", f"{r.name}: {len(r.unreadable)} samples could not be read and were not scored:", ""]
        lines += [f"* {u}" for u in r.unreadable]
    if r.filtered:
        lines.append(f"\n{r.name}: {r.filtered} samples outside the 99-degree protocol were not scored.")
    for key, groups in r.breakdown.items():
        if groups:
            lines += ["", f"### {r.name} by {key}", "", "| group | MAE | scored | missed |", "|---|---|---|---|"]
            lines += [f"| {g} | {_f(s.mae_deg)} | {s.n - s.n_missed} | {s.n_missed} |" for g, s in groups.items()]
    return lines


def _penalty_lines(penalties: dict[str, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for masked, pen in penalties.items():
        if "refused" in pen:
            lines += ["", f"### Masked penalty: {masked} minus {pen['vs']}: not computed", "", pen["refused"] + "."]
            continue
        lines += ["", f"### Masked penalty: {masked} minus {pen['vs']} on the same {pen['pairs']} faces",
                  "", "Mean of (masked error - unmasked error) per face, degrees, with a bootstrap 95 % interval "
                  "(2,000 resamples of the faces).", "",
                  *penalty_table(pen)]
    return lines


def _write_csvs(out_dir: Path, results: Sequence[SuiteResult]) -> None:
    """results.csv (one row per suite) and predictions.csv (one row per scored face)."""
    fields = ["suite", *Scores.__dataclass_fields__.keys(), "miss_rate", "unreadable"]
    with open(out_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow({"suite": r.name, **r.overall.as_dict(), "unreadable": len(r.unreadable)})
    rows = [row for r in results for row in r.rows]
    if rows:
        with open(out_dir / "predictions.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


def penalty_table(pen: dict[str, Any]) -> list[str]:
    """Markdown rows of one masked penalty (:func:`masked_penalties`): all faces, then per |yaw| bin."""
    lines = ["| faces (by abs yaw of the label) | YAW | PITCH | ROLL | MAE | n |", "|---|---|---|---|---|---|"]
    for label, block in [("all", pen["overall"]), *pen["by_abs_yaw_deg"].items()]:
        cells = " | ".join(f"{block[k][0]:+.2f} [{block[k][1]:+.2f}, {block[k][2]:+.2f}]" for k in PENALTY_KEYS)
        lines.append(f"| {label} | {cells} | {block['n']} |")
    return lines


def _per_face_errors(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[np.ndarray, float]]:
    """source id -> (per-axis wrapped error (3,), |true yaw|) of the faces a model did not miss."""
    out = {}
    for r in rows:
        if not r["missed"]:
            true = np.array([r["true_yaw_deg"], r["true_pitch_deg"], r["true_roll_deg"]])
            pred = np.array([r["pred_yaw_deg"], r["pred_pitch_deg"], r["pred_roll_deg"]])
            out[r["source_id"]] = (angle_errors_deg(pred, true), abs(r["true_yaw_deg"]))
    return out


def masked_penalties(results: Sequence[SuiteResult], n_boot: int = 2000) -> dict[str, dict[str, Any]]:
    """For every ``X_masked`` scored beside ``X``: the masked-minus-unmasked error on the same faces
    (paired by source id; faces missed on either side left out), per axis, overall and per |yaw| bin
    of the unmasked label, each with a bootstrap 95 % interval (:func:`metrics.paired_delta`)."""
    by_name = {r.name: r for r in results}
    out: dict[str, dict[str, Any]] = {}
    for name, r in by_name.items():
        base = by_name.get(name[: -len("_masked")]) if name.endswith("_masked") else None
        if base is None:
            continue
        plain_faces, masked_faces = {row["source_id"] for row in base.rows}, {row["source_id"] for row in r.rows}
        if plain_faces != masked_faces:  # a penalty is measured on the same faces or not at all
            out[name] = {"vs": base.name, "refused": (
                f"{name} and {base.name} score different faces ({len(masked_faces - plain_faces)} only in {name}, "
                f"{len(plain_faces - masked_faces)} only in {base.name}); no penalty is computed on unpaired sets")}
            continue
        plain, masked = _per_face_errors(base.rows), _per_face_errors(r.rows)
        common = sorted(set(plain) & set(masked))
        if not common:
            continue
        p = np.array([plain[k][0] for k in common])
        m = np.array([masked[k][0] for k in common])
        yaw = np.array([plain[k][1] for k in common])
        pen: dict[str, Any] = {"vs": base.name, "pairs": len(common),
                               "overall": {**paired_delta(p, m, n_boot), "n": len(common)}, "by_abs_yaw_deg": {}}
        for lo, hi in zip(YAW_BINS_DEG[:-1], YAW_BINS_DEG[1:]):
            sel = (yaw >= lo) & (yaw < hi)
            if sel.any():
                pen["by_abs_yaw_deg"][_bin_label(lo, YAW_BINS_DEG)] = {**paired_delta(p[sel], m[sel], n_boot),
                                                                       "n": int(sel.sum())}
        out[name] = pen
    return out


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
    """Notes a report must carry for a BIWI suite: its label convention; a suite split by frame, or
    scored for a model trained on a BIWI folder split by frame, is not the published protocol; a
    model trained on the other label convention is scored against labels it did not learn."""
    if isinstance(suite, VariantFolder):
        fmt, rule = suite.format.name, suite.rule
    else:  # a path: its manifest is enough, the rows are not read
        fmt, rule = detect_format(suite).name, rule_of(suite)
    if fmt != "BIWI":
        return []
    notes = [f"BIWI labels: {BIWI_LABELS[biwi_labels]}"]
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


def training_matrices(data_root: Path) -> list[np.ndarray]:
    """Poses of the training rows under the data root (BIWI's train split and 300W_LP) for baseline:mean."""
    return [s.pose.matrix for name in ("BIWI", "300W_LP") if (data_root / name).is_dir()
            for s in VariantFolder(data_root / name).samples("train")]
