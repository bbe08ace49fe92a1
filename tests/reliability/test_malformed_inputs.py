"""One bad file never stops a run, and every malformed input is one line naming the file or option.

The bad-sample tests use the sample data's 8 AFLW2000 faces with one truncated JPEG; the walk through
malformed inputs runs each through the command line and asserts exit 2, the named culprit, and no
traceback."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.datasets import open_reader
from maskbench.io.manifest import JOURNAL

N_PHOTOS = 8
BAD = "image00000"  # the first sample face, cut to 40 % of its bytes


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback would reach the user: fail with it
    return result.exit_code, result.output


@pytest.fixture()
def photos(sample_root: Path, tmp_path: Path) -> Path:
    """The 8 sample faces (raw AFLW2000 layout: images and .mat files only) under <tmp>/D/AFLW2000, one of
    them truncated."""
    src = tmp_path / "D" / "AFLW2000"
    src.mkdir(parents=True)
    for jpg in sorted((sample_root / "AFLW2000").glob("*.jpg"))[:N_PHOTOS]:
        shutil.copyfile(jpg, src / jpg.name)
        shutil.copyfile(jpg.with_suffix(".mat"), src / f"{jpg.stem}.mat")
    data = (src / f"{BAD}.jpg").read_bytes()
    (src / f"{BAD}.jpg").write_bytes(data[: int(len(data) * 0.4)])
    return src


def write_label_predictions(path: Path, folder: Path) -> None:
    """A predictions CSV equal to the labels (every stored angle), for the samples the reader can read."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "yaw_deg", "pitch_deg", "roll_deg"])
        for s in open_reader(folder):
            e = s.pose.euler_deg()
            w.writerow([s.id, e["yaw_deg"], e["pitch_deg"], e["roll_deg"]])


def test_evaluate_scores_the_rest_and_names_the_truncated_photo(photos: Path, tmp_path: Path) -> None:
    preds = tmp_path / "p.csv"
    write_label_predictions(preds, photos)
    out = tmp_path / "report"
    args = ["evaluate", "--predictions", str(preds), "--suite", str(photos), "--out", str(out)]
    code, text = run(*args)
    assert code == 0, text
    res = json.loads((out / "results.json").read_text())["suites"]["AFLW2000"]
    assert res["unreadable"] == [f"{BAD}.jpg: truncated image (the file ends before its end marker; an interrupted "
                                 "download or copy?)"]
    assert res["n"] + res["filtered"] == N_PHOTOS - 1
    report = (out / "report.md").read_text()
    assert f"* {BAD}.jpg: truncated image" in report and "| unreadable |" in report
    with open(out / "results.csv") as f:
        assert next(csv.DictReader(f))["unreadable"] == "1"
    code, text = run(*args, "--strict")
    assert code == 1 and "1 samples could not be read" in text


def test_head_pose_dataset_skips_the_truncated_photo_with_a_warning(photos: Path) -> None:
    import torch

    from maskbench.errors import DatasetError
    from maskbench.torch_dataset import HeadPoseDataset

    dataset = HeadPoseDataset(photos)
    assert len(dataset) == N_PHOTOS
    with pytest.warns(UserWarning, match=f"{BAD}.jpg: truncated image"):
        ids = [i for batch in torch.utils.data.DataLoader(dataset, batch_size=5) for i in batch["id"]]
    assert len(ids) == N_PHOTOS and BAD not in ids  # the bad item is served by the next readable one
    assert dataset.unreadable == [f"{photos / BAD}.jpg: truncated image (the file ends before its end marker; "
                                  "an interrupted download or copy?)"]
    strict = HeadPoseDataset(photos, on_error="raise")
    with pytest.raises(DatasetError, match=f"{BAD}.jpg: truncated image"):
        strict[0]


def test_writers_skip_the_truncated_photo_and_list_it(photos: Path) -> None:
    code, text = run("rotate", "--src", str(photos), "--out", "rot", "--data-root", str(photos.parent))
    assert code == 0, text
    manifest = json.loads((photos.parent / "rot" / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == N_PHOTOS - 1
    assert any(s.startswith(f"{BAD}.jpg: truncated image") for s in manifest["skipped"])


# ---------------------------------------------------------------------------------------------
# malformed inputs through the command line: exit 2, one line naming the file or option
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def split(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished maskbench AFLW2000 split (sample data) to damage copies of."""
    out = tmp_path_factory.mktemp("m") / "AFLW2000_copy"
    code, text = run("import", "--src", str(sample_root / "AFLW2000"), "--out", str(out))
    assert code == 0, text
    return out


def damaged(split: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / "AFLW2000_bad"
    shutil.copytree(split, folder)
    labels = folder / "labels.csv"
    lines = labels.read_text().splitlines(keepends=True)
    if how == "no-header":
        labels.write_text("".join(lines[1:]))
    elif how == "no-split-column":
        with open(labels, newline="") as f:
            rows = list(csv.DictReader(f))
        with open(labels, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "split"], extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    elif how == "binary":
        labels.write_bytes(bytes(range(256)) * 8)
    elif how == "empty":
        labels.write_bytes(b"")
    elif how == "header-only":
        labels.write_text(lines[0])
    elif how == "unfinished":
        (folder / "manifest.json").unlink()
        (folder / JOURNAL).mkdir()
        (folder / JOURNAL / "job.json").write_text("{}")
    return folder


LABEL_CASES = {
    "no-header": "no id, image, split column in the header",
    "no-split-column": "no split column in the header",
    "binary": "not a text CSV file",
    "empty": "empty file",
    "header-only": "header only, no rows",
}


@pytest.mark.parametrize("how", list(LABEL_CASES))
@pytest.mark.parametrize("command", ["rotate", "evaluate", "info"])
def test_a_malformed_labels_csv_is_one_line_naming_it(split: Path, tmp_path: Path, how: str, command: str) -> None:
    folder = damaged(split, tmp_path, how)
    if command == "rotate":
        args = ["rotate", "--src", str(folder), "--out", str(tmp_path / "r")]
    elif command == "evaluate":
        args = ["evaluate", "baseline:pnp", "--suite", str(folder), "--out", str(tmp_path / "e")]
    else:
        args = ["info", str(folder)]
    code, text = run(*args)
    assert code == 2, text
    assert f"{folder / 'labels.csv'}: {LABEL_CASES[how]}" in text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text


def test_cli_errors_name_the_file_or_option(split: Path, sample_root: Path, tmp_path: Path) -> None:
    root = str(sample_root)
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(bytes(range(256)) * 40)
    zip_pt = tmp_path / "notscript.pt"
    with zipfile.ZipFile(zip_pt, "w") as z:
        z.writestr("hello.txt", "not a TorchScript archive")
    junk_pth = tmp_path / "junk.pth"
    junk_pth.write_bytes(b"\x00garbage" * 100)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,yaw_deg,pitch_deg,roll_deg\na,1,2,3\nb,1,2,3\na,4,5,6\nb,0,0,0\nc,0,0,0\nc,1,1,1\n")
    nonnum = tmp_path / "nonnum.csv"
    nonnum.write_text("id,yaw_deg,pitch_deg,roll_deg\na,1,x,3\n")
    out = str(tmp_path / "e")
    ev = ["evaluate", "--suite", "AFLW2000", "--data-root", root, "--out", out]
    cases = [
        (["evaluate", str(junk_pt), *ev[1:]], f"{junk_pt}: not a TorchScript model"),
        (["evaluate", str(zip_pt), *ev[1:]], f"{zip_pt}: not a TorchScript model"),
        (["evaluate", str(junk_pth), *ev[1:]], f"{junk_pth}: "),
        (["evaluate", str(tmp_path / "missing.onnx"), *ev[1:]], f"{tmp_path / 'missing.onnx'}: model file not found"),
        (["evaluate", "--predictions", str(dup), *ev[1:]],
         f"{dup}: 3 ids appear more than once, e.g. 'a' (lines 2 and 4); 'b' (lines 3 and 5)"),
        (["evaluate", "--predictions", str(nonnum), *ev[1:]], f"{nonnum}: line 2: yaw_deg, pitch_deg, roll_deg"),
        (["evaluate", "baseline:pnp", "--suite", "typo", "--suite", "AFLW2000", "--data-root", root, "--out", out],
         "suite not found: typo: no such folder"),
        (["evaluate", "baseline:pnp", "--suite", str(damaged(split, tmp_path, "unfinished")), "--out", out],
         "is an unfinished maskbench run"),
        (["rotate", "--src", "AFLW2000", "--angles=abc", "--data-root", root, "--out", str(tmp_path / "r")],
         "--angles: 'abc' is not a number"),
        (["rotate", "--src", "AFLW2000", "--angles=", "--data-root", root, "--out", str(tmp_path / "r")],
         "--angles is empty"),
        (["rotate", "--src", "AFLW2000", "--angles=10", "--range", "-5", "5", "--data-root", root,
          "--out", str(tmp_path / "r")], "give --angles (a sweep) or --range (random angles), not both"),
        (["rotate", "--src", "AFLW2000", "--range", "-720", "720", "--data-root", root, "--out", str(tmp_path / "r")],
         "--range -720 720: needs -180 <= LO <= HI <= 180"),
        (["rotate", "--src", "AFLW2000", "--range", "30", "-30", "--data-root", root, "--out", str(tmp_path / "r")],
         "--range 30 -30: needs -180 <= LO <= HI <= 180"),
    ]
    for args, expected in cases:
        code, text = run(*args)
        assert code == 2, (args, text)
        assert expected in text, (args, text)
        assert "Traceback" not in text and len(text.strip().splitlines()) == 1, (args, text)
    assert not (tmp_path / "e").exists() and not (tmp_path / "r").exists()


def test_an_empty_split_is_an_error_not_an_n0_row(sample_root: Path, tmp_path: Path) -> None:
    root = str(sample_root)
    # the training part of BIWI has nothing to score
    code, text = run("import", "--src", "BIWI", "--out", str(tmp_path / "tr"), "--only-split", "train",
                     "--data-root", root)
    assert code == 0, text
    code, text = run("evaluate", "baseline:pnp", "--suite", str(tmp_path / "tr"), "--out", str(tmp_path / "e"))
    assert code == 2 and "has no samples to score" in text


def test_a_second_evaluate_replaces_the_report_as_a_whole(sample_root: Path, tmp_path: Path) -> None:
    root = str(sample_root)
    code, text = run("synthesize", "--src", "AFLW2000", "--out", str(tmp_path / "D" / "AFLW2000_masked"),
                     "--landmarks", "gt", "--no-occluders", "--data-root", root)
    assert code == 0, text
    shutil.copytree(sample_root / "AFLW2000", tmp_path / "D" / "AFLW2000")
    preds = tmp_path / "p.csv"
    write_label_predictions(preds, sample_root / "AFLW2000")
    out = tmp_path / "report"
    base = ["evaluate", "--predictions", str(preds), "--data-root", str(tmp_path / "D"), "--out", str(out)]
    code, text = run(*base, "--suite", "AFLW2000", "--suite", "AFLW2000_masked")
    assert code == 0, text
    assert (out / "masked_delta.png").is_file()
    code, text = run(*base, "--suite", "AFLW2000")
    assert code == 0, text
    assert not (out / "masked_delta.png").exists()  # nothing of the first report is left beside the second
    assert set(json.loads((out / "results.json").read_text())["suites"]) == {"AFLW2000"}
    assert set(json.loads((out / "manifest.json").read_text())["files"]) == \
        {p.name for p in out.iterdir()} - {"manifest.json"}
    # a folder maskbench did not write is never a report folder
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    code, text = run(*base[:-1], str(mine), "--suite", "AFLW2000")
    assert code == 2 and "was not written by maskbench" in text
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
