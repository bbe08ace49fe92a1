"""``maskbench reproduce``: the masked-HPE experiment grid in one command (``make reproduce``).

Stages, in order, each a ``maskbench`` command run as a subprocess (the report lists them so that
any stage can be rerun by hand)::

    data      sample BIWI, 300W_LP, AFLW2000            (sample presets only; real data is read in place)
    variants  synthesize BIWI/300W_LP/AFLW2000 -> *_masked; rotate BIWI/AFLW2000 -> *_rotated
    train     model1 .. model4                          (configs written to OUT/configs/)
    evaluate  every model on every suite (crop protocol) -> OUT/eval/<model>/
    report    OUT/REPORT.md: the grid, the published numbers, the qualitative checks, timings

``--preset real --data DIR`` where DIR is one AFLW2000-format folder of photos (such as the
AFLW2000 dev half) runs the photo grid instead: a seeded split by id (70 % train, 10 % val, 20 %
test, recorded in every manifest); masked and rotated copies of the train and test parts; the
``real-model1`` (train), ``real-model2`` (+ masked) and ``real-model3`` (+ rotated) configs trained
from ``--init`` (the RetinaFace release); each ``best.pth`` (the epoch with the lowest error on the
``val`` part) scored on the test part and its masked and rotated copies with the crop and the full
(detection) protocols; REPORT.md answers the study's claims.

A finished stage is not redone: a data folder counts as finished when its manifest verifies
(every listed file present with its sha256), a training run when ``last.pth`` holds the final
epoch, an evaluation when its ``results.json`` exists. ``make reproduce-clean`` deletes OUT.

Output tree::

    OUT/
    ├── data/         BIWI/ 300W_LP/ AFLW2000/ (sample presets) and the *_masked/ *_rotated/ variants
    ├── configs/      model1.json .. model4.json as trained
    ├── runs/         model1/ .. model4/ (best.pth, last.pth, history.json)
    ├── eval/         model1/ .. model4/ (report.md, results.csv/json, predictions.csv, plots)
    ├── stages.json   command, wall time and status of every stage
    └── REPORT.md
"""

from maskbench.reproduce.plans import Stage, is_photo_folder, plan, plan_photos, shown_command, write_configs
from maskbench.reproduce.presets import (
    MODELS,
    PHOTO_MODELS,
    PHOTO_PARTS,
    PHOTO_SPLIT,
    PHOTO_SUITES,
    PRESETS,
    PUBLISHED_MAE_DEG,
    PUBLISHED_SOURCE,
    SUITES,
    Preset,
)
from maskbench.reproduce.report import CLAIMS, qualitative_checks, seen_in_training, write_photo_report, write_report
from maskbench.reproduce.runner import run

__all__ = ["CLAIMS", "MODELS", "PHOTO_MODELS", "PHOTO_PARTS", "PHOTO_SPLIT", "PHOTO_SUITES", "PRESETS",
           "PUBLISHED_MAE_DEG", "PUBLISHED_SOURCE", "SUITES", "Preset", "Stage", "is_photo_folder", "plan",
           "plan_photos", "qualitative_checks", "run", "seen_in_training", "shown_command", "write_configs",
           "write_photo_report", "write_report"]
