"""An evaluation report folder: report.md (the published table layout), results.csv/json and predictions.csv."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS
from maskbench.evaluation.evaluator import SuiteResult, masked_penalties
from maskbench.evaluation.metrics import PENALTY_KEYS, Scores
from maskbench.evaluation.protocol import EULER_MODES, PROTOCOL_TEXT
from maskbench.io.atomic import atomic_write_text


def fmt_deg(v: float) -> str:
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
        lines.append(f"| {r.name} | {fmt_deg(o.yaw_mae_deg)} | {fmt_deg(o.pitch_mae_deg)} | {fmt_deg(o.roll_mae_deg)} | "
                     f"{fmt_deg(o.mae_deg)} | {fmt_deg(o.geodesic_deg)} | {fmt_deg(o.maev_deg)} | {o.miss_rate:.1%} | {o.n} | "
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
            lines += [f"| {g} | {fmt_deg(s.mae_deg)} | {s.n - s.n_missed} | {s.n_missed} |" for g, s in groups.items()]
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
