"""`make reproduce-smoke`: the whole grid at toy size, then a rerun that skips every finished stage."""

from __future__ import annotations

import json
from pathlib import Path

from maskbench import reproduce


def test_smoke_grid_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    report = reproduce.run(out, "smoke", device="cpu", echo=lambda _: None, quiet=True)
    text = report.read_text()
    for model in reproduce.MODELS:
        assert (out / "runs" / model / "last.pth").is_file()
        suites = json.loads((out / "eval" / model / "results.json").read_text())["suites"]
        assert set(suites) == set(reproduce.SUITES)
        assert f"| {model} | BIWI_masked |" in text
    row = next(line for line in text.splitlines() if line.startswith("| model1 | BIWI | "))
    assert row.rstrip().endswith("| 5.87 |")  # the published number beside ours, on its own row
    results = {m: json.loads((out / "eval" / m / "results.json").read_text())["suites"] for m in reproduce.MODELS}
    verdicts = reproduce.qualitative_checks(results)  # each claim's verdict, from the measured numbers
    assert verdicts and all(line in text.splitlines() for line in verdicts)
    stages = json.loads((out / "stages.json").read_text())
    assert all(s["status"] == "ok" for s in stages) and len(stages) == 3 + 3 + 2 + 4 + 4
    from maskbench.provenance import source_commit

    assert {s["commit"] for s in stages} == {source_commit()}  # each stage records the code it ran
    assert f"; commit {source_commit()}." in text
    lines: list[str] = []
    reproduce.run(out, "smoke", device="cpu", echo=lines.append, quiet=True)
    assert sum("finished earlier, skipped" in line for line in lines) == len(stages)
    # a damaged split is detected by its manifest and rebuilt, and only that stage runs again
    (out / "data" / "AFLW2000_rotated" / "labels.csv").write_text("id\n")
    lines.clear()
    reproduce.run(out, "smoke", device="cpu", echo=lines.append, quiet=True)
    redone = [line for line in lines if "skipped" not in line and line.startswith("[")]
    assert len(redone) == 1 and "rotate AFLW2000" in redone[0]


def test_qualitative_checks_say_no_when_the_effect_is_absent() -> None:
    res = {"model1": {"BIWI_masked": {"mae_deg": 10.0}, "BIWI_rotated": {"mae_deg": 8.0, "roll_mae_deg": 6.0}},
           "model2": {"BIWI_masked": {"mae_deg": 7.0}, "BIWI_rotated": {"mae_deg": 9.5}},
           "model3": {"BIWI_rotated": {"mae_deg": 9.0, "roll_mae_deg": 4.0}},
           "model4": {"BIWI_rotated": {"mae_deg": 9.0}}}
    lines = reproduce.qualitative_checks(res)
    assert any("BIWI_masked error (model2 vs model1): yes" in line for line in lines)
    assert any("BIWI_rotated error (model3 vs model1): NO (9.00 vs 8.00" in line for line in lines)
    assert any("BIWI_rotated roll error (model3 vs model1): yes (4.00 vs 6.00" in line for line in lines)
    assert any("BIWI_rotated error (model4 vs model2): yes (9.00 vs 9.50" in line for line in lines)
    assert len(lines) == 4  # suites without numbers are left out, not reported as NO


def test_photo_grid_at_toy_size(retinaface_release: Path, tmp_path: Path) -> None:
    """`maskbench reproduce --preset real-smoke --data PHOTOS`: one AFLW2000-format folder of faces (here 30
    rendered ones at half size; the grid's numbers on real photos are in docs/reproduce.md) split by id
    (recorded), masked and rotated, three models from the release shipped in the package (the default
    --init), both protocols."""
    from maskbench.io.labels import labels_by_id
    from maskbench.sampledata import make_sample_dataset
    from maskbench.splits import SplitRule, recorded_rule

    rendered = tmp_path / "rendered"
    make_sample_dataset("AFLW2000", rendered, n=30, seed=2, progress=False, scale=0.5)
    photos = tmp_path / "photos"  # as a user has them: images and .mat files, no labels.csv or manifest
    photos.mkdir()
    for p in sorted(rendered.glob("*.jpg")):
        for suffix in (".jpg", ".mat"):
            (photos / f"{p.stem}{suffix}").write_bytes(p.with_suffix(suffix).read_bytes())
    out = tmp_path / "grid"
    said: list[str] = []
    report = reproduce.run(out, "real-smoke", data=photos, device="cpu", echo=said.append, quiet=True)
    assert any(line.startswith("--init: the RetinaFace-MobileNet0.25 release shipped") for line in said)
    data = out / "data"
    parts = {part: set(labels_by_id(data / f"AFLW2000_{part}")) for part in reproduce.PHOTO_PARTS}
    assert parts["train"] and parts["test"] and not parts["train"] & parts["test"]
    assert not parts["val"] & (parts["train"] | parts["test"]) and len(set().union(*parts.values())) == 30
    rule = SplitRule(by="id", seed=0, train_fraction=0.8, val_fraction=0.1)
    for folder in ("AFLW2000_train", "AFLW2000_test", "AFLW2000_test_masked", "AFLW2000_train_rotated"):
        assert recorded_rule(data / folder) == rule, folder
    text = report.read_text()
    for model in reproduce.PHOTO_MODELS:
        for protocol in ("crop", "full"):
            assert f"| {model} | AFLW2000_test_masked | {protocol} |" in text
    assert "Masked training lowers the masked-test error (real-model2 vs real-model1, crop)" in text
    assert str(photos) not in text and str(out) not in text  # no machine's folders in the report
    assert text.count(f"--init {retinaface_release.name}") == len(reproduce.PHOTO_MODELS)  # every model from the release


def test_a_report_names_every_commit_its_stages_ran_at() -> None:
    """A grid continued after a change was made by two versions of the code: the report says both, and the
    commit it was written at (it used to name only the last)."""
    from maskbench.provenance import source_commit
    from maskbench.reproduce.plans import Stage
    from maskbench.reproduce.report import ran_at

    now = source_commit()
    assert ran_at([Stage("a", [], True, commit=now), Stage("b", [], True, commit=now)]) == f"commit {now}"
    mixed = ran_at([Stage("a", [], True, commit="4871b72"), Stage("b", [], True, commit=now)])
    assert "4871b72" in mixed and mixed.endswith(f"report written at commit {now}")
