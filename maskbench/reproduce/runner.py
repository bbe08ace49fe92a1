"""Running a grid: the stages in order, a finished one skipped, a log of each (``stages.json``)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from maskbench.io.atomic import atomic_write_text
from maskbench.provenance import source_commit
from maskbench.reproduce.plans import Stage, is_photo_folder, plan, plan_photos, shown_command, write_configs
from maskbench.reproduce.presets import MODELS, PHOTO_MODELS, PRESETS
from maskbench.reproduce.report import write_photo_report, write_report


def run(out: Path, preset_name: str = "sample", data: Path | None = None, device: str = "cpu", seed: int = 0,
        echo: Any = print, quiet: bool = False, init: Path | None = None) -> Path:
    """Run (or continue) the grid; returns the report path. ``quiet``: stage output is discarded.
    ``init``: starting weights of the photo grid's models (default: the RetinaFace release shipped in the package)."""
    stdout = subprocess.DEVNULL if quiet else None
    stderr = subprocess.DEVNULL if quiet else None
    preset = PRESETS[preset_name]
    if preset.sample_n is None and data is None:
        raise ValueError(f"the {preset_name} preset needs --data DIR: a folder holding BIWI, 300W_LP and AFLW2000, "
                         "or one AFLW2000-format folder of photos (the photo grid)")
    photos = data is not None and preset.sample_n is None and is_photo_folder(data)
    if data is not None and not photos:
        missing = [n for n in ("BIWI", "300W_LP", "AFLW2000") if not (data / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"{data}: missing dataset folder(s) {', '.join(missing)} (or give one "
                                    "AFLW2000-format folder of photos for the photo grid)")
    if photos and init is None:
        from maskbench.models.weights import RETINAFACE_WEIGHTS

        init = RETINAFACE_WEIGHTS  # what the photo configs are tuned for; shipped with the package
        echo(f"--init: the RetinaFace-MobileNet0.25 release shipped in the package ({init.name})")
    out.mkdir(parents=True, exist_ok=True)
    write_configs(out, preset, PHOTO_MODELS if photos else MODELS)
    log_path = out / "stages.json"
    previous = {s["name"]: s for s in json.loads(log_path.read_text())} if log_path.is_file() else {}
    stages = plan_photos(out, preset, data, device, seed, init) if photos and data else plan(out, preset, data, device, seed)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for k, stage in enumerate(stages, 1):
        if stage.done:
            before = previous.get(stage.name, {})
            stage.status = "ok, earlier run" if before.get("status", "").startswith("ok") else "done earlier"
            stage.wall_s, stage.commit = before.get("wall_s"), before.get("commit")
            echo(f"[{k}/{len(stages)}] {stage.name}: finished earlier, skipped")
            continue
        echo(f"[{k}/{len(stages)}] {stage.name}: {shown_command(stage, out)}")
        stage.commit = source_commit()
        t0 = time.monotonic()
        proc = subprocess.run(stage.argv, env=env, stdout=stdout, stderr=stderr)
        stage.wall_s = time.monotonic() - t0
        stage.status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
        _write_log(log_path, stages)
        if proc.returncode != 0:
            raise RuntimeError(f"stage {stage.name!r} failed (exit {proc.returncode}); its output is above. "
                               "Fix the cause and rerun: finished stages are kept.")
    _write_log(log_path, stages)
    report = (write_photo_report(out, preset, data, device, seed, stages) if photos and data
              else write_report(out, preset, data, device, seed, stages))
    echo(f"report: {report}")
    return report


def _write_log(path: Path, stages: list[Stage]) -> None:
    out = path.parent
    atomic_write_text(path, json.dumps([{"name": s.name, "command": shown_command(s, out), "wall_s": s.wall_s,
                                         "status": s.status, "commit": s.commit} for s in stages], indent=1) + "\n")
