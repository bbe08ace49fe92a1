"""Regenerate the README's placement block (``<!-- table:placement -->``): the default mask placement on the
AFLW2000 dev half, per |yaw| bin (the label's |yaw|, for counting only).

``maskbench synthesize`` (default ``--landmarks detected``, seed 0, every face judged) on the dev half, then
per bin: faces, faces the detector missed, the annotated mouth/lower-nose landmarks inside the occlusion map,
the eye landmarks inside it, and the judge's pass rate beside real masks' (realism.json's
``versus_real_masks``: both binned by the image-estimated |yaw|). Needs the dev half (``$MASKBENCH_FIXTURES``,
else ``../shared``). With ``--masked DIR`` an existing masked copy of the dev half is read instead of made.

    python docs/make_placement.py [--masked DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from maskbench import devdata
from maskbench.datasets import open_reader
from maskbench.io.labels import labels_by_id, yaw_bin
from maskbench.provenance import write_block
from maskbench.synthesis.mask import EYES, MOUTH_AND_LOWER_NOSE, landmarks_inside


def rows_for(dev: Path, masked: Path) -> list[str]:
    labels = labels_by_id(masked)
    per: dict[str, dict[str, list]] = {}
    for s in open_reader(dev):
        r = labels[s.id]
        d = per.setdefault(yaw_bin(abs(s.pose.yaw_deg)), {"n": [], "missed": [], "mn": [], "eyes": []})
        d["n"].append(1)
        d["missed"].append(r["landmark_source"] == "missed")
        occ = cv2.imread(str(masked / r["occlusion_path"]), cv2.IMREAD_GRAYSCALE)
        d["mn"].append(landmarks_inside(occ, s.landmarks_px[MOUTH_AND_LOWER_NOSE]))
        d["eyes"].append(landmarks_inside(occ, s.landmarks_px[EYES]))
    versus = json.loads((masked / "realism.json").read_text()).get("versus_real_masks", {})
    out = ["| |yaw| bin | faces | masked (detector found the face) | mouth and lower-nose landmarks inside the mask | "
           "eye landmarks inside it | judge: synthetic masks read as masked | judge: real masks (CC0 photos), 95 % |",
           "|---|---|---|---|---|---|---|"]
    for b, d in sorted(per.items()):
        v = versus.get(b, {})
        real = (f"{v['real']:.1%} [{v['real_ci95'][0]:.1%}, {v['real_ci95'][1]:.1%}] (n {v['real_n']})" if v else "-")
        ours = f"{v['synthetic']:.1%} (n {v['synthetic_n']})" if v.get("synthetic") is not None else "-"
        n, missed = len(d["n"]), int(np.sum(d["missed"]))
        out.append(f"| {b} | {n} | {n - missed} ({100 * (n - missed) / n:.1f} %) | {np.concatenate(d['mn']).mean():.3f} | "
                   f"{np.concatenate(d['eyes']).mean():.4f} | {ours} | {real} |")
    out += ["", "Placement columns: the dev half's annotated landmarks (used only to measure) against the occlusion "
            "map; bins by the label's |yaw|. Judge columns: every masked face graded, bins by |yaw| estimated from "
            "the image (3DDFA_V2 on the judged face) on both sides; the real masks' rates are "
            "`maskbench/judge/real_masks.json` (`python docs/make_real_mask_rates.py`)."]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masked", type=Path, default=None)
    args = parser.parse_args()
    dev = devdata.dev_half()
    if not dev.is_dir():
        raise SystemExit(f"the AFLW2000 dev half is not at {dev}; set ${devdata.FIXTURES_ENV}")
    with tempfile.TemporaryDirectory() as tmp:
        masked = args.masked
        if masked is None:
            masked = Path(tmp) / "AFLW2000_masked"
            subprocess.run([sys.executable, "-m", "maskbench", "synthesize", "--src", str(dev), "--out", str(masked),
                            "--workers", "2", "--seed", "0", "--judge-sample", "all"], check=True)
        rows = rows_for(dev, masked)
    write_block("placement", rows, by="docs/make_placement.py")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
