"""The realism report: ``realism.json``, a contact sheet of the lowest-scoring faces, and the summary line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from maskbench.judge.detector import Face
from maskbench.judge.grading import AUTO, Item, Source, grade

# ------------------------------------------------------------------------------------------------
# Grading a folder: realism.json and a contact sheet of the lowest-scoring faces
# ------------------------------------------------------------------------------------------------
REALISM_JSON = "realism.json"


CONTACT_SHEET = "realism_lowest.png"


#: The kind a realism report's manifest declares, and the files :func:`write_realism` writes.
REPORT_KIND = "realism report"


REPORT_FILES = (REALISM_JSON, CONTACT_SHEET)

#: The yardstick: how often the judge reads REAL masks as masked per |yaw| bin (estimated from the image),
#: measured once on the CC0 masked photos by ``docs/make_real_mask_rates.py`` and shipped as data.
REAL_MASKS = Path(__file__).resolve().parent / "real_masks.json"


def versus_real_masks(summary: Mapping) -> dict | None:
    """Per |yaw| bin (estimated from the image on both sides): the synthetic pass rate beside the real masks'
    (:data:`REAL_MASKS`) and whether it is at or above their 95 % lower bound. None without the data file."""
    import json

    if not REAL_MASKS.is_file():
        return None
    real = json.loads(REAL_MASKS.read_text())["masked"]["by_estimated_abs_yaw_deg"]
    ours = summary.get("by_estimated_abs_yaw_deg", {})
    return {b: {"synthetic": ours[b]["pass_rate"] if b in ours else None, "synthetic_n": ours.get(b, {}).get("n", 0),
                "real": r["pass_rate"], "real_ci95": r["pass_rate_ci95"], "real_n": r["n"],
                "at_or_above_real_lower_bound": None if b not in ours else ours[b]["pass_rate"] >= r["pass_rate_ci95"][0]}
            for b, r in real.items()}


def contact_sheet(judged: Sequence[tuple[Item, Face | None]], cell_px: int = 160, columns: int = 4) -> np.ndarray:
    """A BGR image of the (up to) 16 lowest-scoring faces: each crop (its box + 25 %, or the whole
    image) with its p(mask) and id written under it."""
    from maskbench.io.atomic import read_image

    cells = []
    for item, face in list(judged)[:16]:
        image = read_image(item.path)  # type: ignore[arg-type]
        box = item.box_px or (face.box_px if face is not None else None)
        if box is not None:
            x0, y0, x1, y1 = box
            m = 0.25 * max(x1 - x0, y1 - y0)
            h, w = image.shape[:2]
            xa, ya = int(max(0, x0 - m)), int(max(0, y0 - m))
            xb, yb = int(min(w, x1 + m)), int(min(h, y1 + m))
            if xb > xa and yb > ya:
                image = image[ya:yb, xa:xb]
        cell = np.full((cell_px + 28, cell_px, 3), 255, np.uint8)
        s = cell_px / max(image.shape[:2])
        small = cv2.resize(image, (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        cell[: small.shape[0], : small.shape[1]] = small
        p = 0.0 if face is None else face.p_mask
        text = f"{p:.2f} {item.id}"[:24]
        cv2.putText(cell, text, (3, cell_px + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        cells.append(cell)
    if not cells:
        return np.full((cell_px + 28, cell_px, 3), 255, np.uint8)
    while len(cells) % columns:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.hstack(cells[k : k + columns]) for k in range(0, len(cells), columns)]
    return np.vstack(rows)


def summary_line(summary: dict) -> str:
    o = summary["overall"]
    lo, hi = o["pass_rate_ci95"]
    line = (f"realism (AIZOO real-photo mask detector, {summary['judged']} of {summary['of']} faces): "
            f"{o['pass_rate']:.1%} read as masked (95 % interval {lo:.1%}-{hi:.1%}), mean p(mask) "
            f"{o['mean_p_mask']:.3f}")
    versus = summary.get("versus_real_masks")
    if versus:
        cells = [f"{b} {v['synthetic']:.0%} vs {v['real']:.0%}" for b, v in versus.items() if v["synthetic"] is not None]
        line += "; by image-estimated |yaw|, synthetic vs real masks: " + ", ".join(cells)
    src = summary.get("sources")
    if src:
        line += (f"; unmasked originals: {src['face_found']} of {src['judged']} faces found, "
                 f"{src['read_as_masked']} read as masked; on the faces found unmasked "
                 f"{src['where_source_found']['overall']['pass_rate']:.1%} read as masked")
    return line


def write_realism(out_dir: Path, items: Sequence[Item], sample: int | str | None = AUTO, seed: int = 0,
                  progress: bool = False, sources: Mapping[str, Source] | None = None) -> dict:
    """Grade ``items`` (:func:`grade`) and write ``realism.json`` and ``realism_lowest.png`` into
    ``out_dir`` (atomically); return the summary."""
    import json

    from maskbench.io.atomic import atomic_write_bytes, atomic_write_text, encode_image

    summary, judged = grade(items, sample=sample, seed=seed, progress=progress, sources=sources)
    versus = versus_real_masks(summary)
    if versus is not None:
        summary["versus_real_masks"] = versus
    atomic_write_text(out_dir / REALISM_JSON, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    atomic_write_bytes(out_dir / CONTACT_SHEET, encode_image(contact_sheet(judged), ".png"))
    return summary
