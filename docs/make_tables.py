"""Regenerate the measured tables (docs/*.md), dated, between their ``<!-- table:NAME -->`` markers.

Run: ``.venv/bin/python docs/make_tables.py`` (about 5 minutes on 2 cores). The real-photo rows need
``../shared/fixtures/real`` (or ``$MASKBENCH_FIXTURES``) and the FSA-Net tables ``../shared/models/fsanet``
(or ``$MASKBENCH_MODELS/fsanet``); without them those rows and tables are left as they are.

Tables:

* ``pnp``: `baseline:pnp` (dlib landmarks + solvePnP), crop protocol, MAE in degrees, on the sample
  data of ``make demo`` (16 renders per format, seed 0), on the 8 real AFLW2000 fixture photos and
  on the 1,005 real photos of the AFLW2000 dev half, each with its masked copy (``synthesize``,
  seed 0).
* ``fsanet``: the built-in FSA-Net cards on the AFLW2000 dev half and its masked and rotated
  (``--range -45 45``, seed 0) copies; plus Fusion given maskbench's generic crop instead of its own.
* ``fsanet-penalty``: Fusion's masked penalty on the dev half (same faces, bootstrap 95 % interval).
* ``masks``: masks on the 1,005 dev-half photos (seed 0, as ``synthesize`` draws them): placement
  (mouth/lower-nose and eye landmarks inside the occlusion map), occluders kept on top (CHECK photos,
  the odd-indexed ones ``docs/fit_constants.py`` did not fit on), dlib on the face box against the
  labels (every 5th CHECK photo), and the real-photo mask detector's pass rate on every face by mask
  type and |yaw|, also counted only on the faces it finds unmasked (the unmasked originals judged as
  a control); and the issue's rate goals, the surgical ones read both on the mix's surgical faces and
  on every face given a surgical mask (``synthesize --mask-types surgical``, seed 0), and the mix's
  readings at seeds 1-3 (other draws of masks on the same photos).
* ``check100``: FSA-Net Fusion and ``baseline:pnp`` on the first 100 photos of the dev half and their
  masked and rotated copies (seed 0). Cheap enough that ``tests/test_tables.py`` recomputes it and
  fails when the README's numbers differ: a change that moves a number cannot land with the old one.

Every block is stamped with the date and the commit the script ran on. ``make tables`` runs it.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from maskbench import devdata
from maskbench.augment.rotation import RotationParams
from maskbench.augment.rotation import make_transform as rotation_transform
from maskbench.datasets import open_reader
from maskbench.evaluation.adapters import PnPBaseline
from maskbench.evaluation.cards import CardModel, ModelCard, load_card
from maskbench.evaluation.evaluator import SuiteResult, evaluate_suite, masked_penalties
from maskbench.evaluation.report import penalty_table
from maskbench.pipeline import write_variant
from maskbench.provenance import write_block
from maskbench.sampledata import make_sample_dataset
from maskbench.synthesis.mask import EYES, MOUTH_AND_LOWER_NOSE, SynthesisParams
from maskbench.synthesis.mask import make_transform as mask_transform

HERE = Path(__file__).resolve().parent
REAL = devdata.fixtures_dir()
MODELS = devdata.models_dir()


def _derive(src: Path, out: Path, kind: str, workers: int = 2, mask_types: tuple[str, ...] = (), seed: int = 0) -> Path:
    """The masked (``synthesize``, ``--mask-types`` when given) or rotated (``--range -45 45``) copy of
    ``src``, ``seed`` 0 unless given, as the command line writes it (same parameters, so the same bytes)."""
    reader = open_reader(src)
    if kind == "synthesize":
        params = SynthesisParams(mask_types=mask_types) if mask_types else SynthesisParams()
        transform = mask_transform(params)
    else:
        params = RotationParams(range_deg=(-45.0, 45.0))
        transform = rotation_transform(reader.fmt, params)
    write_variant(reader, out, transform=transform, transform_name=kind,
                parameters={"command": kind, "source": src.name, "limit": None, **params.as_dict()}, seed=seed,
                overwrite=True, workers=workers, progress=False)
    return out


#: Photos of the cheap check table: the first CHECK_N of the dev half, by file name.
CHECK_N = 100


def check_table(tmp: Path, models_dir: Path = MODELS, real: Path = REAL) -> list[str]:
    """FSA-Net Fusion (its card) and baseline:pnp on the first 100 dev-half photos, plain, masked and
    rotated (seed 0): per-axis MAE, MAE, geodesic error and n (crop protocol, Euler fixed)."""
    src = tmp / "check" / "AFLW2000"
    src.mkdir(parents=True)
    for jpg in sorted((real / "aflw2000_dev").glob("*.jpg"))[:CHECK_N]:
        shutil.copyfile(jpg, src / jpg.name)
        shutil.copyfile(jpg.with_suffix(".mat"), src / f"{jpg.stem}.mat")
    suites = {"AFLW2000": src, "AFLW2000_masked": _derive(src, tmp / "check" / "AFLW2000_masked", "synthesize", 1),
              "AFLW2000_rotated": _derive(src, tmp / "check" / "AFLW2000_rotated", "rotate", 1)}
    rows = ["| model | suite | YAW | PITCH | ROLL | MAE | GEODESIC | n |", "|---|---|---|---|---|---|---|---|"]
    for model in (CardModel(load_card("fsanet-fusion"), models_dir / "fsanet"), PnPBaseline()):
        for name, path in suites.items():
            o = evaluate_suite(model, name, path, progress=False).overall
            rows.append(f"| {model.name} | {name} | {o.yaw_mae_deg:.2f} | {o.pitch_mae_deg:.2f} | {o.roll_mae_deg:.2f} "
                        f"| {o.mae_deg:.2f} | {o.geodesic_deg:.2f} | {o.n} |")
    return rows




#: The issue's rate goals (#26): the five-type mix over all faces, surgical masks below and beyond |yaw| 60.
GOAL_MIX, GOAL_SURGICAL_FRONT, GOAL_SURGICAL_PROFILE = 0.95, 0.99, 0.95


def _passed(judged: list) -> int:
    """How many of :func:`maskbench.judge.grade`'s judged (item, face) pairs read as masked."""
    from maskbench.judge import read_as_masked

    return sum(read_as_masked(f) for _, f in judged)


def _surgical(judged: list, front: bool) -> list:
    """The judged surgical faces below |yaw| 60 (``front``) or at 60 and beyond."""
    return [(it, f) for it, f in judged if it.mask_type == "surgical" and (it.abs_yaw_deg < 60) == front]


def goal_rows(mix: list, surgical: list) -> list[str]:
    """The rate goals, each read on the mix's faces and (surgical) on every face given a surgical mask;
    ``mix`` and ``surgical`` are :func:`maskbench.judge.grade`'s judged (item, face) lists."""
    def row(what: str, judged: list, goal: float) -> str:
        if not judged:
            return f"| {what} | 0 | - | {100 * goal:.0f} % | no faces |"
        passed = _passed(judged)
        rate = passed / len(judged)
        return (f"| {what} | {len(judged)} | {passed} ({100 * rate:.2f} %) | {100 * goal:.0f} % | "
                f"{'met' if rate >= goal else f'not met ({math.ceil(goal * len(judged) - 1e-9) - passed} short)'} |")

    return ["| goal (dev half, seed 0) | faces | read as masked | goal | |", "|---|---|---|---|---|",
            row("five-type mix, all faces", mix, GOAL_MIX),
            row("surgical below abs(yaw) 60: the mix's surgical faces", _surgical(mix, True), GOAL_SURGICAL_FRONT),
            row("surgical below abs(yaw) 60: every face given one", _surgical(surgical, True), GOAL_SURGICAL_FRONT),
            row("surgical at abs(yaw) 60 and beyond: the mix's surgical faces", _surgical(mix, False),
                GOAL_SURGICAL_PROFILE),
            row("surgical at abs(yaw) 60 and beyond: every face given one", _surgical(surgical, False),
                GOAL_SURGICAL_PROFILE)]


#: Seeds of the mix whose goal readings the masks table also gives (other draws of masks, same photos).
OTHER_SEEDS = (1, 2, 3)


def seed_rows(mix_by_seed: dict[int, list]) -> list[str]:
    """The mix's goal readings per seed (``mix_by_seed``: seed -> judged (item, face) list)."""
    def count(judged: list) -> str:
        return f"{_passed(judged)}/{len(judged)} ({100 * _passed(judged) / len(judged):.2f} %)" if judged else "-"

    rows = ["| seed | five-type mix | its surgical faces below abs(yaw) 60 | its surgical faces at 60 and beyond |",
            "|---|---|---|---|"]
    for seed, judged in sorted(mix_by_seed.items()):
        rows.append(f"| {seed} | {count(judged)} | {count(_surgical(judged, True))} | {count(_surgical(judged, False))} |")
    return rows


def masks_table(dev_dir: Path, masked_dir: Path, surgical_dir: Path, other_seeds: dict[int, Path] | None = None) -> list[str]:
    """Placement, occluders, dlib-on-box, the detector's pass rates and the rate goals (``surgical_dir``:
    the dev half with every face given a surgical mask; ``other_seeds``: seed -> the mix drawn with it;
    see the module docstring)."""
    from maskbench import judge
    from maskbench.io.atomic import read_image
    from maskbench.io.labels import read_labels
    from maskbench.synthesis.landmarks import dlib_detected_landmarks, landmarks_for
    from maskbench.synthesis.mask import landmarks_inside, mask_sample

    samples = list(open_reader(dev_dir))
    covered, eyes, flagged = [], [], []
    for k, s in enumerate(samples):
        masked, _ = mask_sample(s, read_image(s.image_path), np.random.default_rng(k), SynthesisParams())
        covered.append(landmarks_inside(masked.aux_images["occlusion"], s.landmarks_px[MOUTH_AND_LOWER_NOSE]))
        eyes.append(landmarks_inside(masked.aux_images["occlusion"], s.landmarks_px[EYES]))
        flagged.append(masked.extra["occluder_px"] > 0)
    check = samples[1::2][::5]
    errors, found = [], 0
    inner = list(range(17, 68))
    for s in check:
        image = read_image(s.image_path)
        lm, _ = landmarks_for(s, image, "dlib")
        errors.append(np.median(np.linalg.norm(lm[inner] - s.landmarks_px[inner], axis=1)) / s.bbox.height_px)
        try:
            dlib_detected_landmarks(image, s.bbox)
            found += 1
        except Exception:  # the detector found no face on the labelled one
            pass
    odd = flagged[1::2]
    rows = ["| measure | value | photos |", "|---|---|---|",
            f"| mouth and lower-nose landmarks inside the occlusion map | {100 * np.concatenate(covered).mean():.1f} % "
            f"| {len(samples)} |",
            f"| eye landmarks inside it | {100 * np.concatenate(eyes).mean():.2f} % | {len(samples)} |",
            f"| faces with an occluder kept on top (odd-indexed photos) | {sum(odd)} ({100 * np.mean(odd):.1f} %) "
            f"| {len(odd)} |",
            f"| dlib on the face box: median landmark error, face heights (median / 90th percentile) | "
            f"{np.median(errors):.3f} / {np.percentile(errors, 90):.3f} | {len(check)} |",
            f"| the detector route (dlib HOG, as MaskTheFace) finds the face | {found} ({100 * found / len(check):.0f} %) "
            f"| {len(check)} |", ""]
    originals = {s.id: judge.Source.of(s) for s in samples}
    summary, judged = judge.grade(judge.items_of(masked_dir, read_labels(masked_dir)), sample=None, sources=originals)
    _, surgical = judge.grade(judge.items_of(surgical_dir, read_labels(surgical_dir)), sample=None)
    bins = list(summary["by_abs_yaw_deg"])
    rows += ["| read as masked (AIZOO detector) | all | " + " | ".join(f"abs(yaw) {b}" for b in bins) + " |",
             "|---|---|" + "---|" * len(bins)]
    cell = lambda d: f"{100 * d['pass_rate']:.1f} % ({d['n']})"  # noqa: E731

    def breakdown(s: dict, where: str) -> list[str]:
        both = s["by_mask_type_and_abs_yaw_deg"]
        out = [f"| all types{where} | {cell(s['overall'])} | "
               + " | ".join(cell(s["by_abs_yaw_deg"][b]) if b in s["by_abs_yaw_deg"] else "-" for b in bins) + " |"]
        for mask_type, d in sorted(s["by_mask_type"].items()):
            out.append(f"| {mask_type}{where} | {cell(d)} | " + " | ".join(
                cell(both[f"{mask_type} {b}"]) if f"{mask_type} {b}" in both else "-" for b in bins) + " |")
        return out

    control = summary["sources"]
    rows += breakdown(summary, "")
    rows += breakdown(control["where_source_found"], ", face found unmasked")
    rows += ["", f"The detector finds {control['face_found']} of the {control['judged']} unmasked originals "
             f"and reads {control['read_as_masked']} of those bare faces as masked "
             "(`maskbench judge DIR --sources ORIGINALS`).", ""]
    by_seed = {0: judged}
    for seed, folder in (other_seeds or {}).items():
        by_seed[seed] = judge.grade(judge.items_of(folder, read_labels(folder)), sample=None)[1]
    return rows + goal_rows(judged, surgical) + ["", "The mix drawn with other seeds (same photos):", ""] + seed_rows(by_seed)


def _mae(r: SuiteResult) -> str:
    o = r.overall
    return f"{o.mae_deg:.2f}" + (f" ({o.n_missed} missed)" if o.n_missed else "")


def pnp_table(tmp: Path, dev: dict[str, Path] | None) -> list[str]:
    model = PnPBaseline()
    rows = ["| data | AFLW2000 | AFLW2000_masked | BIWI | BIWI_masked |", "|---|---|---|---|---|"]
    for name in ("BIWI", "AFLW2000"):
        make_sample_dataset(name, tmp / name, n=16, seed=0, progress=False)
        _derive(tmp / name, tmp / f"{name}_masked", "synthesize")
    r = {n: evaluate_suite(model, n, tmp / n, progress=False) for n in ("AFLW2000", "AFLW2000_masked", "BIWI",
                                                                        "BIWI_masked")}
    rows.append(f"| sample data of `make demo` (renders: {r['AFLW2000'].overall.n} AFLW2000 faces in the protocol, "
                f"{r['BIWI'].overall.n} BIWI test frames) | {_mae(r['AFLW2000'])} | {_mae(r['AFLW2000_masked'])} | "
                f"{_mae(r['BIWI'])} | {_mae(r['BIWI_masked'])} |")
    sets = []
    if (REAL / "aflw2000").is_dir():
        sets.append(("real fixture photos", REAL / "aflw2000", _derive(REAL / "aflw2000", tmp / "fix_masked",
                                                                        "synthesize")))
    if dev is not None:
        sets.append(("real photos, AFLW2000 dev half", dev["AFLW2000"], dev["AFLW2000_masked"]))
    for what, plain_dir, masked_dir in sets:
        plain = evaluate_suite(model, "AFLW2000", plain_dir, progress=False)
        masked = evaluate_suite(model, "AFLW2000_masked", masked_dir, progress=False)
        rows.append(f"| {what} ({plain.overall.n} faces in the protocol) | {_mae(plain)} | {_mae(masked)} | | |")
    return rows


def fsanet_tables(dev: dict[str, Path]) -> tuple[list[str], list[str]]:
    rows = ["| model (card) | suite | YAW | PITCH | ROLL | MAE | n |", "|---|---|---|---|---|---|---|"]
    fusion: list[SuiteResult] = []
    generic = ModelCard.from_dict({"name": "fsanet-fusion, generic crop", "weights": list(load_card("fsanet-fusion").weights),
                                   "input": {"size": [64, 64], "layout": "NHWC", "color": "BGR"},
                                   "crop": {"box": ["dataset"], "margin": [0.25, 0.25]}})
    cards = [load_card(n) for n in ("fsanet-fusion", "fsanet-1x1", "fsanet-var", "fsanet-nos")] + [generic]
    for card in cards:
        model = CardModel(card, MODELS / "fsanet")
        results = [evaluate_suite(model, name, path, progress=False) for name, path in dev.items()]
        if card.name == "fsanet-fusion":
            fusion = results
        for r in results:
            o = r.overall
            rows.append(f"| {card.name} | {r.name} | {o.yaw_mae_deg:.2f} | {o.pitch_mae_deg:.2f} | {o.roll_mae_deg:.2f} "
                        f"| {o.mae_deg:.2f} | {o.n} |")
    return rows, penalty_table(masked_penalties(fusion)["AFLW2000_masked"])


def replace_block(name: str, rows: list[str]) -> None:
    """Write one measured block into the document that holds it (README.md or docs/*.md)."""
    try:
        print(f"{name}: {write_block(name, rows, by='docs/make_tables.py')}")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dev = None
        if (REAL / "aflw2000_dev").is_dir():
            dev = {"AFLW2000": REAL / "aflw2000_dev",
                   "AFLW2000_masked": _derive(REAL / "aflw2000_dev", tmp / "dev_masked", "synthesize"),
                   "AFLW2000_rotated": _derive(REAL / "aflw2000_dev", tmp / "dev_rotated", "rotate")}
        replace_block("pnp", pnp_table(tmp, dev))
        if dev is not None and (MODELS / "fsanet").is_dir():
            table, penalty = fsanet_tables(dev)
            replace_block("fsanet", table)
            replace_block("fsanet-penalty", penalty)
            replace_block("check100", check_table(tmp))
        if dev is not None:
            surgical = _derive(REAL / "aflw2000_dev", tmp / "dev_masked_surgical", "synthesize", mask_types=("surgical",))
            seeds = {k: _derive(REAL / "aflw2000_dev", tmp / f"dev_masked_seed{k}", "synthesize", seed=k) for k in OTHER_SEEDS}
            replace_block("masks", masks_table(REAL / "aflw2000_dev", dev["AFLW2000_masked"], surgical, seeds))


if __name__ == "__main__":
    sys.exit(main())
