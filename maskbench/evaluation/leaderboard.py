"""The masked leaderboard: many models scored on the same faces of every suite, with paired penalties.

``maskbench leaderboard MODEL... --out DIR`` writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.json``
(``{"models": {NAME: {"suites": {SUITE: {"mae_deg", "n", "miss_rate", per-axis...}}, "penalties": {...},
"published": {...}}}}``), ``leaderboard.png`` and ``predictions_cache.json``. Every model is scored on every
face of a suite (a face it misses is counted as missed, never dropped), so its ``n`` is the suite's for every
model. Predictions are cached per model x suite, keyed by the sha256 of the model's files and of the suite's
listing (manifest included), so adding a model scores only that model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.evaluation.evaluator import YAW_BINS_DEG, SuiteResult, evaluate_suite
from maskbench.evaluation.metrics import angle_errors_deg, paired_delta
from maskbench.evaluation.protocol import EvalItem
from maskbench.version import __version__

LEADERBOARD_KIND = "leaderboard"
FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.png", "predictions_cache.json")
CACHE_FILE = "predictions_cache.json"
#: The suites a leaderboard scores by default, when present under the data root.
DEFAULT_SUITES = ("AFLW2000", "AFLW2000_masked", "AFLW2000_rotated", "AFLW2000_masked_rotated",
                  "BIWI", "BIWI_masked", "BIWI_rotated", "BIWI_masked_rotated")
#: Penalties: variant suffix -> what it measures.
VARIANTS = {"_masked": "masked", "_rotated": "rotated"}


@dataclass
class Entry:
    """One model's row: its results per suite, or why it has none."""

    name: str
    results: dict[str, SuiteResult] = field(default_factory=dict)
    error: str = ""
    published: dict[str, Any] = field(default_factory=dict)
    finds_faces: bool = False


def file_sha256(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def suite_key(path: Path) -> str:
    """sha256 of a suite's listing: every file's relative path and size, and its manifest's bytes."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(path).as_posix()}\0{p.stat().st_size}\n".encode())
    if (path / "manifest.json").is_file():
        h.update((path / "manifest.json").read_bytes())
    return h.hexdigest()


class Replay:
    """A model's cached outputs for one suite, replayed by sample id (None: a miss)."""

    def __init__(self, name: str, outputs: dict[str, Any]) -> None:
        self.name, self.outputs = name, outputs

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        return [None if self.outputs.get(it.sample_id) is None else np.asarray(self.outputs[it.sample_id])
                for it in items]


class Recorder:
    """Wraps a model and keeps each output by sample id (for the cache)."""

    def __init__(self, model: Any) -> None:
        self.model, self.name, self.outputs = model, model.name, {}
        if hasattr(model, "prepare"):
            self.prepare = model.prepare

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        preds = self.model.predict(items)
        for it, p in zip(items, preds):
            self.outputs[it.sample_id] = None if p is None else np.asarray(p).tolist()
        return preds  # type: ignore[no-any-return]


def score_models(specs: Sequence[str], suites: dict[str, Path], load: Callable[[str], tuple[Any, str]],
                 cache: dict[str, Any], limit: int | None = None, progress: bool = True) -> list[Entry]:
    """Score each model on each suite; ``load(spec) -> (model, key)`` raises ValueError for a model that cannot
    be used (its row then says why). ``cache`` is read and updated in place."""
    keys = {name: suite_key(path) for name, path in suites.items()}
    entries = []
    for spec in specs:
        entry = Entry(spec)
        model, model_key = None, None
        try:
            for name, path in suites.items():
                key = f"{spec}|{keys[name]}|{limit}|{__version__}"
                if model is None or model_key is None:
                    model, model_key = load(spec)
                    entry.name = getattr(model, "name", spec)
                    card = getattr(model, "card", None)
                    entry.published = dict(getattr(card, "published", {}) or {})
                    entry.finds_faces = bool(getattr(card, "whole_image", False))
                key = f"{model_key}|{key}"
                if key in cache:
                    result = evaluate_suite(Replay(entry.name, cache[key]), name, path, limit=limit, progress=False)
                else:
                    recorder = Recorder(model)
                    result = evaluate_suite(recorder, name, path, limit=limit, progress=progress)
                    cache[key] = recorder.outputs
                entry.results[name] = result
        except (ValueError, OSError) as exc:
            entry.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            entry.results = {}
        entries.append(entry)
    return entries


def _errors_by_source(result: SuiteResult) -> dict[str, list[tuple[np.ndarray | None, float]]]:
    out: dict[str, list[tuple[np.ndarray | None, float]]] = {}
    for r in result.rows:
        err = None if r["missed"] else angle_errors_deg(
            np.array([r["pred_yaw_deg"], r["pred_pitch_deg"], r["pred_roll_deg"]]),
            np.array([r["true_yaw_deg"], r["true_pitch_deg"], r["true_roll_deg"]]))
        out.setdefault(r["source_id"], []).append((err, abs(r["true_yaw_deg"])))
    return out


def penalties(results: dict[str, SuiteResult], n_boot: int = 2000) -> dict[str, dict[str, Any]]:
    """For each ``X_masked`` / ``X_rotated`` scored beside ``X``: the variant's error minus the same face's plain
    error, per variant row (paired by source id; rows whose face either side missed are left out and counted),
    with a bootstrap 95 % interval."""
    out: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        for suffix, what in VARIANTS.items():
            if not name.endswith(suffix) or name[: -len(suffix)] not in results:
                continue
            plain = _errors_by_source(results[name[: -len(suffix)]])
            p, m, unpaired = [], [], 0
            for source, rows in _errors_by_source(result).items():
                base = plain.get(source, [(None, 0.0)])[0][0]
                for err, _ in rows:
                    if err is None or base is None:
                        unpaired += 1
                    else:
                        p.append(base)
                        m.append(err)
            delta = paired_delta(np.array(p).reshape(-1, 3), np.array(m).reshape(-1, 3), n_boot)
            out[name] = {"vs": name[: -len(suffix)], "what": what, "pairs": len(p), "left_out_missed": unpaired,
                         "mae_deg": delta["mae_deg"], "per_axis": {k: v for k, v in delta.items() if k != "mae_deg"}}
    return out


def _suite_row(result: SuiteResult) -> dict[str, Any]:
    s = result.overall
    return {"mae_deg": s.mae_deg, "n": s.n, "miss_rate": s.miss_rate, "yaw_mae_deg": s.yaw_mae_deg,
            "pitch_mae_deg": s.pitch_mae_deg, "roll_mae_deg": s.roll_mae_deg, "geodesic_deg": s.geodesic_deg}


def as_json(entries: Sequence[Entry], suites: Sequence[str]) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for e in entries:
        models[e.name] = ({"error": e.error} if e.error else
                          {"suites": {n: _suite_row(r) for n, r in e.results.items()}, "penalties": penalties(e.results)})
        models[e.name]["published"] = e.published
        models[e.name]["finds_faces_itself"] = e.finds_faces
    return {"maskbench_version": __version__, "suites": list(suites), "models": models}


def _fmt(v: float) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.2f}"


def markdown(data: dict[str, Any]) -> str:
    suites = data["suites"]
    variants = [s for s in suites if any(s.endswith(x) and s[: -len(x)] in suites for x in VARIANTS)]
    head = ["model", *[f"{s} MAE" for s in suites], *[f"{s} penalty (95 % CI)" for s in variants], "miss rate", "published"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in data["models"].items():
        if "error" in m:
            lines.append(f"| {name} | not scored: {m['error']} |" + " |" * (len(head) - 2))
            continue
        row = [name, *[_fmt(m["suites"][s]["mae_deg"]) if s in m["suites"] else "—" for s in suites]]
        for s in variants:
            pen = m["penalties"].get(s)
            row.append("—" if not pen else f"{pen['mae_deg'][0]:+.2f} ({pen['mae_deg'][1]:+.2f}, {pen['mae_deg'][2]:+.2f})")
        misses = [m["suites"][s]["miss_rate"] for s in suites if s in m["suites"]]
        row.append(f"{max(misses) * 100:.1f} %" if m["finds_faces_itself"] and misses else "0 (given the crop)")
        row.append("; ".join(f"{k} {v['mae_deg']:.2f}" for k, v in m["published"].items()) or "none")
        lines.append("| " + " | ".join(row) + " |")
    n = {s: sorted({m["suites"][s]["n"] for m in data["models"].values() if "suites" in m and s in m["suites"]})
         for s in suites}
    lines.append("")
    lines.append("Faces per suite (the same for every model; misses count): "
                 + ", ".join(f"{s} {'/'.join(map(str, v))}" for s, v in n.items()) + ".")
    lines.append("MAE: mean of yaw, pitch and roll errors in degrees on the faces a model found (a model that finds "
                 "faces itself is scored on those, with its miss rate beside). Penalty: variant minus plain error of "
                 "the same faces, bootstrap 95 % interval.")
    return "\n".join(lines) + "\n"


def csv_text(data: dict[str, Any]) -> str:
    rows = ["model,suite,n,miss_rate,yaw_mae_deg,pitch_mae_deg,roll_mae_deg,mae_deg,penalty_deg,penalty_lo,penalty_hi,error"]
    for name, m in data["models"].items():
        if "error" in m:
            rows.append(f'"{name}",,,,,,,,,,,"{m["error"].replace(chr(34), chr(39))}"')
            continue
        for s, r in m["suites"].items():
            pen = m["penalties"].get(s, {}).get("mae_deg", ["", "", ""])
            rows.append(",".join([f'"{name}"', s, str(r["n"]), f"{r['miss_rate']:.4f}",
                                  *(f"{r[k]:.4f}" for k in ("yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg", "mae_deg")),
                                  *(f"{v:.4f}" if v != "" else "" for v in pen), ""]))
    return "\n".join(rows) + "\n"


def plot(data: dict[str, Any], entries: Sequence[Entry], path: Path) -> None:
    """Penalty per model with its interval; error against |yaw| per model, plain (solid) and masked (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    scored = [(n, m) for n, m in data["models"].items() if "penalties" in m]
    variants = sorted({s for _, m in scored for s in m["penalties"]})
    width = 0.8 / max(1, len(variants))
    for k, s in enumerate(variants):
        xs, ys, lo, hi = [], [], [], []
        for i, (_, m) in enumerate(scored):
            if s in m["penalties"]:
                d, a, b = m["penalties"][s]["mae_deg"]
                xs.append(i + k * width)
                ys.append(d)
                lo.append(d - a)
                hi.append(b - d)
        ax1.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=s)
    ax1.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(scored))])
    ax1.set_xticklabels([n for n, _ in scored], rotation=30, ha="right", fontsize=8)
    ax1.axhline(0, color="k", lw=0.6)
    ax1.set_ylabel("penalty, degrees (variant - plain, same faces)")
    ax1.legend(fontsize=8)
    centres = [(a + b) / 2 for a, b in zip(YAW_BINS_DEG[:-1], YAW_BINS_DEG[1:])]
    for k, e in enumerate(x for x in entries if x.results):
        colour = f"C{k % 10}"
        for suffix, style in (("", "-"), ("_masked", "--")):
            for base in ("AFLW2000", "BIWI"):
                r = e.results.get(base + suffix)
                if r is None:
                    continue
                ys = []
                for lo_b, hi_b in zip(YAW_BINS_DEG[:-1], YAW_BINS_DEG[1:]):
                    errs = [np.mean(angle_errors_deg([row["pred_yaw_deg"], row["pred_pitch_deg"], row["pred_roll_deg"]],
                                                     [row["true_yaw_deg"], row["true_pitch_deg"], row["true_roll_deg"]]))
                            for row in r.rows if not row["missed"] and lo_b <= abs(row["true_yaw_deg"]) < hi_b]
                    ys.append(np.mean(errs) if errs else np.nan)
                ax2.plot(centres, ys, style, color=colour, label=f"{e.name} {base + suffix}" if base == "AFLW2000" else None)
                break
    ax2.set_xlabel("|yaw| of the label, degrees")
    ax2.set_ylabel("MAE, degrees")
    ax2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(stage: Path, entries: Sequence[Entry], suites: Sequence[str], cache: dict[str, Any]) -> dict[str, Any]:
    data = as_json(entries, suites)
    (stage / "leaderboard.json").write_text(json.dumps(data, indent=1, allow_nan=True), encoding="utf-8")
    (stage / "leaderboard.md").write_text(markdown(data), encoding="utf-8")
    (stage / "leaderboard.csv").write_text(csv_text(data), encoding="utf-8")
    (stage / CACHE_FILE).write_text(json.dumps(cache), encoding="utf-8")
    plot(data, entries, stage / "leaderboard.png")
    return data
