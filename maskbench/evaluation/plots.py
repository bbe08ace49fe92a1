"""PNG plots of an evaluation: error versus ground-truth yaw per suite; masked minus unmasked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskbench.evaluation.metrics import angle_errors_deg

YAW_EDGES_DEG = np.arange(-90, 91, 15)


def _per_sample_mae(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    hit = [r for r in rows if not r["missed"]]
    true = np.array([[r["true_yaw_deg"], r["true_pitch_deg"], r["true_roll_deg"]] for r in hit]).reshape(-1, 3)
    pred = np.array([[r["pred_yaw_deg"], r["pred_pitch_deg"], r["pred_roll_deg"]] for r in hit]).reshape(-1, 3)
    return true[:, 0], angle_errors_deg(pred, true).mean(axis=1)


def _binned(yaw: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centres, means = [], []
    for lo, hi in zip(YAW_EDGES_DEG[:-1], YAW_EDGES_DEG[1:]):
        sel = (yaw >= lo) & (yaw < hi)
        if sel.any():
            centres.append((lo + hi) / 2)
            means.append(err[sel].mean())
    return np.array(centres), np.array(means)


def write_plots(out_dir: Path, results: Sequence) -> list[Path]:  # type: ignore[type-arg]
    """``error_vs_yaw.png`` (all suites) and ``masked_delta.png`` (when X and X_masked were scored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    curves = {}
    for r in results:
        yaw, err = _per_sample_mae(r.rows)
        if len(yaw):
            curves[r.name] = _binned(yaw, err)
            ax.plot(*curves[r.name], marker="o", label=r.name)
    ax.grid(alpha=0.3)
    written.append(_finish(plt, fig, ax, out_dir / "error_vs_yaw.png", "MAE of yaw, pitch, roll (deg)",
                           "error versus yaw (15-degree bins)"))
    pairs = [(n, f"{n}_masked") for n in curves if f"{n}_masked" in curves]
    if pairs:
        fig, ax = plt.subplots(figsize=(7, 4))
        for k, (base, masked) in enumerate(pairs):
            (xb, yb), (xm, ym) = curves[base], curves[masked]
            common = np.intersect1d(xb, xm)
            delta = ym[np.isin(xm, common)] - yb[np.isin(xb, common)]
            ax.bar(common + (k - 0.5) * 5, delta, width=5, label=f"{masked} - {base}")
        ax.axhline(0, color="k", lw=0.8)
        written.append(_finish(plt, fig, ax, out_dir / "masked_delta.png", "MAE difference (deg)",
                               "what masks cost, per yaw bin"))
    return written


def _finish(plt, fig, ax, path: Path, ylabel: str, title: str) -> Path:  # type: ignore[no-untyped-def]
    """Common labels and legend, then save the figure to ``path`` and close it."""
    ax.set_xlabel("ground-truth yaw (deg)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def compare_table(report_dirs: Sequence[Path]) -> str:
    """Markdown table of MAE per suite (rows) and model (columns) from several report folders."""
    import json

    models, table = [], {}
    for d in report_dirs:
        path = d / "results.json"
        if not path.is_file():
            raise ValueError(f"{d}: no results.json (not a maskbench evaluate report folder)")
        data = json.loads(path.read_text())
        column = data["model"] if data["model"] not in models else f"{data['model']} ({d.name})"
        models.append(column)
        for suite, res in data["suites"].items():
            table.setdefault(suite, {})[column] = res
    for suite, per_model in table.items():  # side by side only when every report scored the same faces
        counts = {m: (res["n"], res.get("filtered", 0)) for m, res in per_model.items()}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{m}: n {n}" for m, (n, _) in counts.items())
            raise ValueError(f"suite {suite} was scored on different faces in these reports ({listed}); compare "
                             "reports of the same suite folders, protocol and --limit")
    lines = ["| suite | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for suite, per_model in table.items():
        cells = []
        for m in models:
            res = per_model.get(m)
            cells.append("-" if res is None or res["mae_deg"] != res["mae_deg"] else
                         f"{res['mae_deg']:.2f}" + (f" (miss {res['miss_rate']:.0%})" if res["miss_rate"] else ""))
        lines.append(f"| {suite} | " + " | ".join(cells) + " |")
    penalties = [(suite, per_model) for suite, per_model in table.items()
                 if any("masked_penalty" in res for res in per_model.values())]
    if penalties:
        lines += ["", "Masked penalty (MAE of the masked copy minus the original, same faces, degrees; bootstrap "
                  "95 % interval):", "", "| suite | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for suite, per_model in penalties:
            cells = []
            for m in models:
                pen = per_model.get(m, {}).get("masked_penalty")
                d = pen["overall"]["mae_deg"] if pen and "overall" in pen else None
                cells.append("-" if d is None else f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]")
            lines.append(f"| {suite} - {suite[: -len('_masked')]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
