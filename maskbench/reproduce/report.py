"""REPORT.md of a grid: the numbers beside the published ones, and the study's claims checked."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskbench.io.atomic import atomic_write_text
from maskbench.provenance import source_commit
from maskbench.reproduce.plans import Stage, shown_command
from maskbench.reproduce.presets import MODELS, PHOTO_MODELS, PHOTO_SUITES, PUBLISHED_MAE_DEG, PUBLISHED_SOURCE, SUITES, Preset
from maskbench.version import __version__


def _results(out: Path) -> dict[str, dict[str, Any]]:
    res = {}
    for model in MODELS:
        path = out / "eval" / model / "results.json"
        if path.is_file():
            res[model] = json.loads(path.read_text())["suites"]
    return res


#: The claims the report checks: (what, model, baseline, suites, metric key, metric name). model3 vs
#: model1 is the study's comparison, but model3 also drops 300W_LP, so it mixes "rotated data" with
#: "less data"; model4 vs model2 (the same offline data plus BIWI_rotated and online rotation/masks)
#: and the roll error (the angle an in-plane rotation moves most) come closer to separating the two.
CLAIMS = (
    ("Masked training", "model2", "model1", ("BIWI_masked", "AFLW2000_masked"), "mae_deg", "error"),
    ("Rotation training", "model3", "model1", ("BIWI_rotated", "AFLW2000_rotated"), "mae_deg", "error"),
    ("Rotation training", "model3", "model1", ("BIWI_rotated", "AFLW2000_rotated"), "roll_mae_deg", "roll error"),
    ("Rotation added to masked training", "model4", "model2", ("BIWI_rotated", "AFLW2000_rotated"), "mae_deg",
     "error"),
)


def seen_in_training(result: dict[str, Any]) -> int:
    """How many of a suite's scored faces the model was trained or validated on: the evaluator's
    count by face identity (``seen_in_training`` of ``results.json``; :mod:`maskbench.identity`), the
    one rule every report uses. In the grid only 300W_LP-derived suites have such faces (they have
    no test rows and are scored whole)."""
    return int(result.get("seen_in_training", 0))


def qualitative_checks(res: dict[str, dict[str, Any]]) -> list[str]:
    """The study's two claims, checked on these numbers: masked training helps masked suites, rotation
    training helps the rotated suites (see :data:`CLAIMS`)."""
    lines = []
    for what, model, baseline, suites, key, metric in CLAIMS:
        for suite in suites:
            a = res.get(baseline, {}).get(suite, {}).get(key)
            b = res.get(model, {}).get(suite, {}).get(key)
            if a is not None and b is not None:
                lines.append(f"- {what} lowers the {suite} {metric} ({model} vs {baseline}): "
                             f"{'yes' if b < a else 'NO'} ({b:.2f} vs {a:.2f} deg)")
    return lines


def ran_at(stages: list[Stage]) -> str:
    """Which code made the numbers: ``commit X`` when every stage ran at the commit checked out now, else the
    commits the stages ran at (a grid continued after a change) and the one the report was written at."""
    now = source_commit()
    ran = sorted({s.commit for s in stages if s.commit})
    if not ran or ran == [now]:
        return f"commit {now}"
    return f"stages ran at commit {', '.join(ran)}; report written at commit {now}"


def write_report(out: Path, preset: Preset, data: Path | None, device: str, seed: int, stages: list[Stage]) -> Path:
    import torch

    res = _results(out)
    lines = ["# maskbench reproduce: the masked-HPE grid", ""]
    where = "embedded sample data (procedural renders)" if data is None else f"real datasets in {data}"
    lines += [f"Preset **{preset.name}** on {where}; seed {seed}; device {device}.",
              f"maskbench {__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
              f"{platform.machine()} with {os.cpu_count()} CPU(s); {ran_at(stages)}.", ""]
    lines += ["## Results (crop protocol, degrees)", "",
              "A suite marked (train) scores the model's own training faces (300W_LP-derived suites have no test "
              "rows): its error is training error, never set beside a published test number. BIWI and AFLW2000 "
              "suites score their test rows only, which no model trains on.", "",
              "| model | suite | YAW | PITCH | ROLL | MAE | miss rate | n | published MAE |",
              "|---|---|---|---|---|---|---|---|---|"]
    for model in MODELS:
        for suite in SUITES:
            r = res.get(model, {}).get(suite)
            if r is None:
                continue
            seen = seen_in_training(r) > 0
            pub = None if seen else PUBLISHED_MAE_DEG.get(model, {}).get(suite)
            lines.append(f"| {model} | {suite}{' (train)' if seen else ''} | {r['yaw_mae_deg']:.2f} | "
                         f"{r['pitch_mae_deg']:.2f} | "
                         f"{r['roll_mae_deg']:.2f} | {r['mae_deg']:.2f} | {100 * r['miss_rate']:.1f}% | {r['n']} | "
                         f"{'' if pub is None else f'{pub:.2f}'} |")
    lines += ["", f"Published: {PUBLISHED_SOURCE} Blank: not reported. On sample data they are context, not a "
              "target: renders are not photographs.", ""]
    lines += ["## Does the grid show the study's effects?", ""]
    checks = qualitative_checks(res)
    lines += checks or ["- (no results yet)"]
    if checks:
        lines += ["", "model3 trains on BIWI and BIWI_rotated only (the study's grid), so against model1 it also "
                  "lacks 300W_LP; model4 against model2 (the same data plus BIWI_rotated, online rotation and online "
                  "masks) and the roll error come closer to isolating the rotation."]
    if any("NO" in c for c in checks):
        lines += ["", "Where the answer is NO the effect did not appear in this run; see the per-suite numbers "
                  "above (sample-preset suites hold a few hundred faces, so differences of a degree are noise)."]
    lines += ["", "## Stages", "", "| stage | wall time | status | command |", "|---|---|---|---|"]
    for s in stages:
        wall = "" if s.wall_s is None else f"{s.wall_s:.0f} s"
        lines.append(f"| {s.name} | {wall} | {s.status} | `{shown_command(s, out)}` |")
    total = sum(s.wall_s or 0.0 for s in stages)
    lines += ["", f"Total wall time of the stages: {total / 60:.1f} min.", "",
              "Per-model reports with plots: `eval/<model>/report.md`; training curves: `runs/<model>/history.json`."]
    path = out / "REPORT.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _photo_results(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, protocol) -> suites of its results.json."""
    res = {}
    for model in PHOTO_MODELS:
        for protocol in ("crop", "full"):
            path = out / "eval" / model / protocol / "results.json"
            if path.is_file():
                res[(model, protocol)] = json.loads(path.read_text())["suites"]
    return res


def _photo_claims_and_targets(mae: Callable[..., float | None]) -> list[str]:
    """The study's claims and the reference model's targets, answered from the photo grid's numbers."""
    lines: list[str] = []
    lines += ["", "## The study's claims, answered from these numbers", ""]
    claims = [("Masked training lowers the masked-test error", "real-model2", "AFLW2000_test_masked"),
              ("Rotation training lowers the rotated-test error", "real-model3", "AFLW2000_test_rotated")]
    for what, model, suite in claims:
        for protocol in ("crop", "full"):
            a, b = mae("real-model1", suite, protocol), mae(model, suite, protocol)
            if a is not None and b is not None:
                lines.append(f"- {what} ({model} vs real-model1, {protocol}): {'yes' if b < a else 'NO'} "
                             f"({b:.2f} vs {a:.2f} deg)")
    a, b = mae("real-model1", "AFLW2000_test", "crop"), mae("real-model2", "AFLW2000_test", "crop")
    if a is not None and b is not None:
        lines.append(f"- What masked training costs on unmasked faces (real-model2 - real-model1, crop): {b - a:+.2f} deg")
    lines += ["", "## Targets of the reference model on real photos", ""]
    checks = [
        ("real-model1 crop MAE <= 4.0", mae("real-model1", "AFLW2000_test", "crop"), lambda v: v <= 4.0),
        ("real-model1 whole-image MAE <= 6.0", mae("real-model1", "AFLW2000_test", "full"), lambda v: v <= 6.0),
        ("real-model1 whole-image misses <= 0.5 %", mae("real-model1", "AFLW2000_test", "full", "miss_rate"),
         lambda v: v <= 0.005),
        ("real-model2 masked crop MAE <= 4.5", mae("real-model2", "AFLW2000_test_masked", "crop"), lambda v: v <= 4.5),
        ("real-model2 masked whole-image misses <= 1 %", mae("real-model2", "AFLW2000_test_masked", "full", "miss_rate"),
         lambda v: v <= 0.01),
    ]
    for what, value, ok in checks:
        if value is not None:
            lines.append(f"- {what}: {'met' if ok(value) else 'NOT met'} ({value:.3f})")
    m1, m2 = mae("real-model1", "AFLW2000_test_masked", "crop"), mae("real-model2", "AFLW2000_test_masked", "crop")
    if m1 is not None and m2 is not None:
        lines.append(f"- real-model2 masked crop MAE at least 2 below real-model1's: {'met' if m1 - m2 >= 2 else 'NOT met'} "
                     f"({m1 - m2:.2f})")
    return lines


def write_photo_report(out: Path, preset: Preset, data: Path, device: str, seed: int, stages: list[Stage]) -> Path:
    """REPORT.md of the photo grid: the table, the masked penalty, the study's claims and the targets."""
    import torch

    res = _photo_results(out)

    def mae(model: str, suite: str, protocol: str, key: str = "mae_deg") -> float | None:
        r = res.get((model, protocol), {}).get(suite)
        return None if r is None else float(r[key])

    lines = ["# maskbench reproduce: the photo grid", "",
             f"Preset **{preset.name}** on the AFLW2000-format photos of `{data.name}`, split by id with seed {seed} "
             "(70 % train, 10 % val, 20 % test; recorded in every manifest); device {device}.".replace("{device}", device),
             f"maskbench {__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
             f"{platform.machine()} with {os.cpu_count()} CPU(s); {ran_at(stages)}.", "",
             "## Results (degrees; test faces inside the 99-degree protocol)", "",
             "| model | suite | protocol | YAW | PITCH | ROLL | MAE | miss rate | n |", "|---|---|---|---|---|---|---|---|---|"]
    for model in PHOTO_MODELS:
        for protocol in ("crop", "full"):
            for suite in PHOTO_SUITES:
                r = res.get((model, protocol), {}).get(suite)
                if r is not None:
                    lines.append(f"| {model} | {suite} | {protocol} | {r['yaw_mae_deg']:.2f} | {r['pitch_mae_deg']:.2f} | "
                                 f"{r['roll_mae_deg']:.2f} | {r['mae_deg']:.2f} | {100 * r['miss_rate']:.1f}% | {r['n']} |")
    lines += ["", "## Masked penalty (masked minus original, same faces, MAE, bootstrap 95 % interval)", "",
              "| model | crop | full |", "|---|---|---|"]
    for model in PHOTO_MODELS:
        cells = []
        for protocol in ("crop", "full"):
            pen = res.get((model, protocol), {}).get("AFLW2000_test_masked", {}).get("masked_penalty")
            d = pen["overall"]["mae_deg"] if pen and "overall" in pen else None
            cells.append("-" if d is None else f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]")
        lines.append(f"| {model} | {cells[0]} | {cells[1]} |")
    lines += _photo_claims_and_targets(mae)
    lines += ["", "## Stages", "", "| stage | wall time | status | command |", "|---|---|---|---|"]
    for st in stages:
        wall = "" if st.wall_s is None else f"{st.wall_s:.0f} s"
        lines.append(f"| {st.name} | {wall} | {st.status} | `{shown_command(st, out)}` |")
    total = sum(st.wall_s or 0.0 for st in stages)
    lines += ["", f"Total wall time of the stages: {total / 60:.1f} min."]
    path = out / "REPORT.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
