"""Remake ``maskbench/judge/real_masks.json``: how often the judge reads REAL masks as masked, per |yaw| bin.

The yardstick beside every synthetic pass rate (``realism.json``'s ``versus_real_masks``). Procedure, the
same as the judge's on synthetic masks: the CC0 "Face Mask Detection" photos (853 photos, VOC boxes; in
``$MASKBENCH_FIXTURES/masked_photos_cc0``, else ``../shared/fixtures/real``), each face of
:data:`MIN_SIDE_PX` px and up (its box's longer side) cut as a square of :data:`CONTEXT` box sides around its
box centre (zero-padded) and scaled to 450 px (AFLW2000's size), then graded by
:func:`maskbench.judge.grading.grade` on its box; |yaw| estimated from the image by 3DDFA_V2 on the judged
face's box (``estimated_abs_yaw_deg``). ``with_mask`` faces give the pass rates, ``without_mask`` faces the
detector's false alarms. Takes about a minute on 2 cores.

    python docs/make_real_mask_rates.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from maskbench import devdata
from maskbench.judge.grading import Item, grade, yaw_bin
from maskbench.judge.report import REAL_MASKS

MIN_SIDE_PX = 60
CONTEXT = 2.2
OUT_PX = 450


def faces(folder: Path) -> list[tuple[Path, str, tuple[float, float, float, float]]]:
    out = []
    for xml in sorted((folder / "annotations").glob("*.xml")):
        root = ET.parse(xml).getroot()
        image = folder / "images" / root.findtext("filename", "")
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            box = tuple(float(b.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[union-attr]
            if max(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE_PX:
                out.append((image, obj.findtext("name", ""), box))
    return out


def cut(image: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """The square of CONTEXT box sides around the box, at OUT_PX, and the box in its pixels."""
    side = CONTEXT * max(box[2] - box[0], box[3] - box[1])
    x0, y0 = (box[0] + box[2]) / 2 - side / 2, (box[1] + box[3]) / 2 - side / 2
    k = OUT_PX / side
    warped = cv2.warpAffine(image, np.array([[k, 0, -x0 * k], [0, k, -y0 * k]]), (OUT_PX, OUT_PX),
                            flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return warped, tuple((v - o) * k for v, o in zip(box, (x0, y0, x0, y0)))


def main() -> None:
    folder = devdata.fixtures_dir() / "masked_photos_cc0"
    if not (folder / "annotations").is_dir():
        raise SystemExit(f"the CC0 masked photos are not at {folder}; set ${devdata.FIXTURES_ENV}")
    found = faces(folder)
    result: dict = {"what": "the AIZOO judge on REAL masked photos, per |yaw| bin estimated from the image",
                    "set": "Face Mask Detection (Larxel, Kaggle 2020, CC0 1.0), 853 photos",
                    "procedure": f"faces whose box's longer side is >= {MIN_SIDE_PX} px, each cut as a square of {CONTEXT} "
                                 f"box sides around its box and scaled to {OUT_PX} px; judged on its box; |yaw| from "
                                 "3DDFA_V2 x0.5 on the judged face's box (as realism.json's by_estimated_abs_yaw_deg)",
                    "command": "python docs/make_real_mask_rates.py"}
    with tempfile.TemporaryDirectory() as tmp:
        for label, key in (("with_mask", "masked"), ("without_mask", "unmasked")):
            items = []
            for k, (image_path, _name, box) in enumerate(f for f in found if f[1] == label):
                image = cv2.imread(str(image_path))
                crop, crop_box = cut(image, box)
                path = Path(tmp) / f"{label}_{k:05d}.png"
                cv2.imwrite(str(path), crop)
                items.append(Item(f"{image_path.stem}#{k}", str(path), crop_box))  # type: ignore[arg-type]
            summary, judged = grade(items, sample=None, progress=True)
            result[key] = {"n": summary["overall"]["n"], "overall": summary["overall"],
                           "by_estimated_abs_yaw_deg": summary["by_estimated_abs_yaw_deg"],
                           "no_face_detected": summary["no_face_detected"]}
            bins = [yaw_bin(it.estimated_abs_yaw_deg) for it, _ in judged if it.estimated_abs_yaw_deg is not None]
            print(label, len(items), "faces;", {b: bins.count(b) for b in sorted(set(bins))}, file=sys.stderr)
    REAL_MASKS.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    for b, s in result["masked"]["by_estimated_abs_yaw_deg"].items():
        print(f"real masks, |yaw| {b}: {s['pass_rate']:.1%} read as masked (95 % {s['pass_rate_ci95']}), n {s['n']}")


if __name__ == "__main__":
    main()
