"""The evaluation loop: a model scored on one suite, per face, with breakdowns and paired masked
penalties. Suites are found and opened in :mod:`maskbench.evaluation.suites`; the report is
written by :mod:`maskbench.evaluation.report`.

Suites are dataset folders under the data root. Which samples a suite scores: its ``test`` rows
(:func:`maskbench.splits.splits_by_id`: the ``labels.csv`` column, or on a raw tree the same rule
the trainer and ``maskbench import`` apply), except ``300W_LP``-format suites, which have no test
rows and are scored whole (``300W_LP_masked``, as in the published study: a model trained on it is
scored on its own training faces, and reports mark that "(train)"). AFLW2000-format suites apply
the standard filter (every stored |angle| <= 99 degrees); the number dropped is reported. A
maskbench checkpoint records the identities of its training and validation faces (:mod:`maskbench.identity`);
scored faces among them are marked (``seen`` in predictions.csv, a "(train)" note in the report),
whatever folders or split rules they come through.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, label_matrix
from maskbench.evaluation.metrics import Scores, angle_errors_deg, paired_delta, score
from maskbench.evaluation.protocol import (
    EULER_MODES,
    EvalItem,
    PoseModel,
    label_euler_deg,
    predicted_euler_deg,
    try_load_item,
)
from maskbench.evaluation.suites import _scored, open_suite, protocol_notes
from maskbench.folder import VariantFolder
from maskbench.progress import progress_bar
from maskbench.types import Sample

YAW_BINS_DEG = (0.0, 30.0, 60.0, 90.0, 181.0)


ROTATION_BINS_DEG = (0.0, 15.0, 30.0, 45.0, 181.0)


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
    #: scored faces the model was trained or validated on, by identity (:mod:`maskbench.identity`)
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
