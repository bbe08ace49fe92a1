"""Suites, the evaluation loop (``--protocol crop``) and reports.

Suites are split folders under the data root. Which samples a suite scores: the rows whose
``split`` is ``test`` when the suite has any (BIWI, and its derived splits, which inherit it), else
all rows (AFLW2000 is all test; ``300W_LP_masked`` is scored whole, as in the published study).
AFLW2000-format suites apply the standard filter (every stored |angle| <= 99 degrees); the number
dropped is reported.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench import geometry
from maskbench.datasets import detect_format, open_dataset
from maskbench.datasets.aflw2000 import PROTOCOL_MAX_ABS_ANGLE_DEG
from maskbench.evaluation.adapters import EvalItem, PoseModel
from maskbench.evaluation.metrics import Scores, score
from maskbench.io.atomic import atomic_write_text, read_image
from maskbench.io.manifest import labels_by_id
from maskbench.progress import progress_bar
from maskbench.types import Sample

#: Suite name -> the command that creates it when it is missing.
SUITES: dict[str, str] = {
    "BIWI": "maskbench sample --dataset BIWI   (or point --data-root at a real BIWI copy)",
    "BIWI_masked": "maskbench synthesize --src BIWI --out BIWI_masked",
    "BIWI_rotated": "maskbench rotate --src BIWI --range -45 45",
    "AFLW2000": "maskbench sample --dataset AFLW2000   (or point --data-root at a real AFLW2000 copy)",
    "AFLW2000_masked": "maskbench synthesize --src AFLW2000",
    "AFLW2000_rotated": "maskbench rotate --src AFLW2000 --range -45 45",
    "300W_LP_masked": "maskbench synthesize --src 300W_LP",
}
YAW_BINS_DEG = (0.0, 30.0, 60.0, 90.0, 181.0)
ROTATION_BINS_DEG = (0.0, 15.0, 30.0, 45.0, 181.0)


def find_suites(data_root: Path, requested: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Suite name -> folder for the requested names (``all`` = every known one present).

    Returns also one line per missing suite saying which command creates it.
    """
    names = list(SUITES) if list(requested) in (["all"], []) else list(requested)
    found: dict[str, Path] = {}
    missing = []
    for name in names:
        path = Path(name) if ("/" in name or Path(name).is_absolute()) else data_root / name
        if path.is_dir():
            found[path.name if "/" in name else name] = path.resolve()
        elif name in SUITES:
            missing.append(f"{name}: not found under {data_root}; create it with `{SUITES[name]}`")
        else:
            missing.append(f"{name}: no such folder ({path})")
    return found, missing


@dataclass
class SuiteResult:
    name: str
    overall: Scores
    filtered: int
    breakdown: dict[str, dict[str, Scores]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _bin_label(value: float, edges: Sequence[float]) -> str:
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= value < hi:
            return f"{lo:g}-{min(hi, 180):g}"
    return "other"


def _load_item(sample: Any, prepare: Callable[[EvalItem], Any] | None = None) -> EvalItem:
    calib = sample.native.get("calibration")
    item = EvalItem(sample.id, read_image(sample.image_path), sample.bbox, None if calib is None else calib.camera_matrix)
    return item if prepare is None else dataclasses.replace(item, prepared=prepare(item))


def evaluate_suite(model: PoseModel, name: str, path: Path, batch_size: int = 32, limit: int | None = None,
                   progress: bool = True, workers: int = 2, protocol: str = "crop") -> SuiteResult:
    """Score ``model`` on one suite folder with the ``crop`` or ``full`` protocol.

    Images are decoded (and, for adapters with ``prepare``, cropped and resized) by ``workers``
    threads (OpenCV releases the GIL); for a model on a GPU one batch ahead, overlapping inference.
    """
    from concurrent.futures import ThreadPoolExecutor

    if protocol == "full" and not hasattr(model, "predict_full"):
        raise ValueError(f"{model.name} cannot run --protocol full: it needs a face detector "
                         "(maskbench checkpoints have one); use --protocol crop")
    predict = model.predict_full if protocol == "full" else model.predict  # type: ignore[attr-defined]
    load = functools.partial(_load_item, prepare=getattr(model, "prepare", None) if protocol == "crop" else None)
    samples, n_filtered, rows = _scored_samples_and_rows(path)
    if limit is not None:
        samples = samples[:limit]
    true_m: list[np.ndarray] = []
    pred_m: list[np.ndarray | None] = []
    true_e: list[tuple[float, float, float]] = []
    pred_e: list[tuple[float, float, float]] = []
    out_rows: list[dict[str, Any]] = []
    nan = float("nan")
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
        items = list(pending.pop(0))
        for s, pred in zip(batch, predict(items)):
            truth = geometry.matrix_to_euler_deg(s.pose.matrix)
            if pred is not None and not np.isfinite(pred).all():
                raise ValueError(f"{model.name} returned a non-finite pose for {s.id} in {path}")
            # adapters return rotations (to_matrix); matrix_to_euler_deg reads the matrix as it is
            guess = geometry.matrix_to_euler_deg(pred) if pred is not None else (nan, nan, nan)
            true_m.append(s.pose.matrix)
            pred_m.append(pred)
            true_e.append(truth)
            pred_e.append(guess)
            extra = rows.get(s.id, {})
            out_rows.append({"suite": name, "id": s.id, "true_yaw_deg": truth[0], "true_pitch_deg": truth[1],
                             "true_roll_deg": truth[2], "pred_yaw_deg": guess[0], "pred_pitch_deg": guess[1],
                             "pred_roll_deg": guess[2], "missed": pred is None,
                             "mask_type": extra.get("mask_type", ""), "rotation_deg": extra.get("rotation_deg", "")})
    pool.shutdown()
    true_e_a, pred_e_a = np.asarray(true_e).reshape(-1, 3), np.asarray(pred_e).reshape(-1, 3)
    result = SuiteResult(name, score(true_e_a, pred_e_a, true_m, pred_m), n_filtered,
                         rows=out_rows)
    groups: dict[str, dict[str, list[int]]] = {"abs_yaw_deg": {}, "mask_type": {}, "rotation_deg": {}}
    for i, r in enumerate(out_rows):
        groups["abs_yaw_deg"].setdefault(_bin_label(abs(r["true_yaw_deg"]), YAW_BINS_DEG), []).append(i)
        if r["mask_type"]:
            groups["mask_type"].setdefault(r["mask_type"], []).append(i)
        if r["rotation_deg"] != "":
            groups["rotation_deg"].setdefault(_bin_label(abs(float(r["rotation_deg"])), ROTATION_BINS_DEG), []).append(i)
    for key, members in groups.items():
        for label, idx in sorted(members.items()):
            result.breakdown.setdefault(key, {})[label] = score(
                true_e_a[idx], pred_e_a[idx], [true_m[i] for i in idx], [pred_m[i] for i in idx]
            )
    return result


def _f(v: float) -> str:
    return "-" if v != v else f"{v:.2f}"


PROTOCOL_TEXT = {
    "crop": "crop (ground-truth box + 25 % margin)",
    "full": "full (whole image; the detection with IoU >= 0.4 to the labelled box, else a miss)",
}


def write_report(out_dir: Path, model_name: str, results: Sequence[SuiteResult], missing: Sequence[str],
                 protocol: str = "crop") -> None:
    """report.md (the published table layout), results.csv/json, predictions.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# maskbench evaluation: {model_name}", "", f"Protocol: {PROTOCOL_TEXT[protocol]}. "
             "Errors in degrees; angle differences wrapped to [-180, 180).", "",
             "| suite | YAW | PITCH | ROLL | MAE | MAEV | miss rate | n |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        o = r.overall
        lines.append(f"| {r.name} | {_f(o.yaw_mae_deg)} | {_f(o.pitch_mae_deg)} | {_f(o.roll_mae_deg)} | "
                     f"{_f(o.mae_deg)} | {_f(o.maev_deg)} | {o.miss_rate:.1%} | {o.n} |")
    for r in results:
        if r.filtered:
            lines.append(f"\n{r.name}: {r.filtered} samples outside the 99-degree protocol were not scored.")
        for key, groups in r.breakdown.items():
            if groups:
                lines += ["", f"### {r.name} by {key}", "", "| group | MAE | n |", "|---|---|---|"]
                lines += [f"| {g} | {_f(s.mae_deg)} | {s.n} |" for g, s in groups.items()]
    if missing:
        lines += ["", "Suites not found:", ""] + [f"* {m}" for m in missing]
    atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
    summary = {r.name: {**r.overall.as_dict(), "filtered": r.filtered,
                        "breakdown": {k: {g: s.as_dict() for g, s in v.items()} for k, v in r.breakdown.items()}}
               for r in results}
    atomic_write_text(out_dir / "results.json",
                      json.dumps({"model": model_name, "protocol": protocol, "suites": summary}, indent=1) + "\n")
    fields = ["suite", *Scores.__dataclass_fields__.keys(), "miss_rate"]
    with open(out_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow({"suite": r.name, **r.overall.as_dict()})
    rows = [row for r in results for row in r.rows]
    if rows:
        with open(out_dir / "predictions.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


def scored_samples(path: Path) -> tuple[list[Sample], int]:
    """The scored samples of a suite folder: rows with ``split`` = test (all rows when the folder has no
    split column), after the AFLW2000 protocol filter (|angle| <= 99 deg) for that format; and how
    many the filter dropped."""
    samples, n_filtered, _rows = _scored_samples_and_rows(path)
    return samples, n_filtered


def _scored_samples_and_rows(path: Path) -> tuple[list[Sample], int, dict[str, dict[str, str]]]:
    fmt = detect_format(path)
    options = {"max_abs_angle_deg": PROTOCOL_MAX_ABS_ANGLE_DEG} if fmt.name == "AFLW2000" else {}
    reader = open_dataset(path, fmt=fmt, **options)
    rows = labels_by_id(path)
    wanted = {k for k, r in rows.items() if r.get("split") == "test"} or None
    samples = [s for s in reader if wanted is None or s.id in wanted]
    return samples, sum(len(v) for v in reader.filtered.values()), rows


def training_matrices(data_root: Path) -> list[np.ndarray]:
    """Poses of the training data under the data root (BIWI train split and 300W_LP) for baseline:mean."""
    mats = []
    for name in ("BIWI", "300W_LP"):
        path = data_root / name
        if not path.is_dir():
            continue
        rows = labels_by_id(path)
        for s in open_dataset(path):
            if not rows or rows.get(s.id, {}).get("split") == "train":
                mats.append(s.pose.matrix)
    return mats
