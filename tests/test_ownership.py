"""Data safety, second pass: one ownership rule for every writer, one writer per output, no
traceback, sources that verify. Each case of issue #43 (numbered as there) runs on the sample data
(no ../shared needed) and compares sha256 listings of the data root before and after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maskbench.datasets.registry import open_reader
from maskbench.io.labels import read_labels
from maskbench.io.lock import OutputLock, lock_path
from maskbench.io.manifest import JOURNAL, verify
from maskbench.io.safety import staging_dir
from maskbench.pipeline import write_variant
from tests.test_safety import run


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones included, links not followed): sha256 of files,
    ``dir`` for folders, ``-> target`` for links."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def one_line_error(code: int, text: str, expected: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text and expected in text, text
    assert len(text.strip().splitlines()) == 1, text


@pytest.fixture()
def root(user_root: Path) -> Path:
    """A data root as a user has it (``tests/conftest.py``'s ``user_root``: a raw AFLW2000 tree of 8
    photos, files of the user's) and a maskbench copy of the photos, AFLW2000_labelled."""
    root = user_root
    code, text = run("import", "--src", "AFLW2000", "--out", "AFLW2000_labelled", "--data-root", str(root))
    assert code == 0, text
    return root


def rotate(root: Path, out: str, *flags: str, src: str = "AFLW2000") -> tuple[int, str]:
    return run("rotate", "--src", src, "--out", out, "--angles=-20,20", "--data-root", str(root), *flags)


def partial_run(root: Path, out: str, after: int = 2) -> Path:
    """An unfinished rotate-like run at ``root/out`` (interrupted after ``after`` samples)."""
    reader = open_reader(root / "AFLW2000")
    done = []

    def stop(sample, image, rng):  # noqa: ANN001, ANN202 (a transform interrupted like Ctrl-C)
        done.append(sample.id)
        if len(done) > after:
            raise KeyboardInterrupt
        return [(sample, image)]

    with pytest.raises(KeyboardInterrupt):
        write_variant(reader, root / out, transform=stop, transform_name="t", parameters={"command": "t"}, seed=0,
                    progress=False, data_root=root)
    assert (root / out / JOURNAL / "job.json").is_file() and not (root / out / "manifest.json").exists()
    return root / out


# 1. evaluate --out: a folder is a report because its manifest says so, never by file names


def test_1_evaluate_never_replaces_a_folder_of_report_names_or_its_own_input(root: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("my notes\n")
    _predictions(root, tmp_path)
    before = snapshot(tmp_path)
    code, text = run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
                     "--out", str(notes), "--data-root", str(root))
    one_line_error(code, text, "was not written by maskbench")
    assert snapshot(tmp_path) == before
    report = tmp_path / "p"
    code, text = run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
                     "--out", str(report), "--data-root", str(root))
    assert code == 0, text
    before = snapshot(tmp_path)
    code, text = run("evaluate", "--predictions", str(report / "predictions.csv"), "--suite", "AFLW2000",
                     "--out", str(report), "--data-root", str(root))
    one_line_error(code, text, "contains the source")
    assert snapshot(tmp_path) == before


def _predictions(root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "preds.csv"
    if not path.exists():
        rows = read_labels(root / "AFLW2000_labelled")
        path.write_text("id,yaw_deg,pitch_deg,roll_deg\n" + "".join(f"{r['id']},1,2,3\n" for r in rows))
    return path


# 2. an output of one kind never replaces another kind


def test_2_reports_and_splits_never_replace_each_other(root: Path, tmp_path: Path) -> None:
    assert rotate(root, "AFLW2000_rotated")[0] == 0
    report = tmp_path / "eval"
    assert run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
               "--out", str(report), "--data-root", str(root))[0] == 0
    before_root, before_tmp = snapshot(root), snapshot(tmp_path)
    code, text = run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
                     "--out", str(root / "AFLW2000_rotated"), "--data-root", str(root))
    one_line_error(code, text, "is a maskbench dataset; maskbench never replaces it with an evaluation report")
    code, text = run("judge", str(root / "AFLW2000_labelled"), "--out", str(report))
    one_line_error(code, text, "is a maskbench evaluation report; maskbench never replaces it with a realism report")
    code, text = run("judge", str(root / "AFLW2000_labelled"), "--out", str(root / "AFLW2000_rotated"))
    one_line_error(code, text, "is a maskbench dataset")
    code, text = rotate(root, str(report), "--overwrite")
    one_line_error(code, text, "is a maskbench evaluation report; maskbench never replaces it with a dataset")
    assert snapshot(root) == before_root and snapshot(tmp_path) == before_tmp


# 3. compare --out replaces only a table compare wrote, unedited


def test_3_compare_out_never_overwrites_a_file_it_did_not_write(root: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval"
    assert run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
               "--out", str(report), "--data-root", str(root))[0] == 0
    note = tmp_path / "note.md"
    note.write_text("my thesis\n")
    photo = root / "AFLW2000" / "image00000.jpg"
    before_root, before_note = snapshot(root), note.read_bytes()
    for target in (note, photo):
        code, text = run("compare", str(report), "--out", str(target))
        assert code == 2 and "Traceback" not in text, text
    assert note.read_bytes() == before_note and snapshot(root) == before_root
    table = tmp_path / "table.md"
    assert run("compare", str(report), "--out", str(table))[0] == 0
    assert table.read_text().startswith("<!-- written by maskbench compare") and "| AFLW2000 |" in table.read_text()
    assert run("compare", str(report), "--out", str(table))[0] == 0  # its own table: replaced
    table.write_text(table.read_text() + "my remark\n")
    edited = table.read_bytes()
    code, text = run("compare", str(report), "--out", str(table))
    one_line_error(code, text, "was not written by maskbench compare (or was edited since)")
    assert table.read_bytes() == edited


# 4. a journal proves only the files it claims; nothing in a folder is taken for maskbench's by its name


def test_4_files_added_to_a_killed_run_are_refused_never_adopted(root: Path) -> None:
    out = partial_run(root, "AFLW2000_rot")
    (out / "mine.txt").write_text("mine\n")
    before = snapshot(root)
    for flag in ("--overwrite", "--resume"):
        code, text = run("rotate", "--src", "AFLW2000", "--out", "AFLW2000_rot", "--data-root", str(root), flag)
        one_line_error(code, text, "holds files maskbench did not write (mine.txt)")
    assert snapshot(root) == before


def test_4_a_killed_run_without_user_files_is_resumed_and_overwritten(root: Path) -> None:
    partial_run(root, "AFLW2000_rot")
    code, text = run("rotate", "--src", "AFLW2000", "--out", "AFLW2000_rot", "--data-root", str(root), "--overwrite")
    assert code == 0, text
    assert verify(root / "AFLW2000_rot") == []


@pytest.mark.parametrize("case", ["empty-job", "journal-note", "lock-file", "empty-dir", "dir-symlink",
                                  "file-in-journal", "journal-symlink"])
def test_4_nothing_is_maskbench_s_by_its_name(root: Path, tmp_path: Path, case: str) -> None:
    out = root / "AFLW2000_rotated"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep\n")
    if case == "empty-job":  # a journal that claims nothing, beside files
        out.mkdir()
        (out / JOURNAL).mkdir()
        (out / JOURNAL / "job.json").write_text("{}")
        (out / "image00000.jpg").write_bytes(b"user's photo")
    elif case == "journal-note":
        (out / JOURNAL).mkdir(parents=True)
        (out / JOURNAL / "notes.txt").write_text("mine\n")
    elif case == "lock-file":
        out.mkdir()
        (out / ".maskbench.lock").write_text("mine\n")
    else:
        assert rotate(root, "AFLW2000_rotated")[0] == 0
        if case == "empty-dir":
            (out / "my_empty_folder").mkdir()
        elif case == "dir-symlink":
            (out / "link").symlink_to(elsewhere, target_is_directory=True)
        elif case == "file-in-journal":
            (out / JOURNAL).mkdir()
            (out / JOURNAL / "notes.txt").write_text("mine\n")
        elif case == "journal-symlink":
            (out / JOURNAL).symlink_to(elsewhere, target_is_directory=True)
    before, before_elsewhere = snapshot(root), snapshot(elsewhere)
    for flag in ("--overwrite", "--resume"):
        code, text = rotate(root, "AFLW2000_rotated", flag)
        assert code == 2 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
        assert "maskbench did not write" in text or "maskbench does not write" in text \
            or "symbolic link" in text or "not written by maskbench" in text, text
    code, text = run("sample", "--dataset", "AFLW2000", "--out", "AFLW2000_rotated", "-n", "2", "--overwrite",
                     "--data-root", str(root))
    assert code == 2, text
    assert snapshot(root) == before and snapshot(elsewhere) == before_elsewhere


# 5. no output inside a dataset tree or a maskbench output


def test_5_out_inside_a_dataset_or_an_output_is_refused(root: Path, tmp_path: Path) -> None:
    before = snapshot(root)
    code, text = rotate(root, "AFLW2000/rot", src="AFLW2000_labelled")
    one_line_error(code, text, "a dataset tree")
    code, text = run("judge", str(root / "AFLW2000_labelled"), "--sources", str(root / "AFLW2000"),
                     "--out", str(root / "AFLW2000" / "judge"))
    assert code == 2 and "Traceback" not in text, text
    code, text = run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
                     "--out", str(root / "AFLW2000_labelled" / "eval"), "--data-root", str(root))
    one_line_error(code, text, "a maskbench output")
    code, text = rotate(root, "AFLW2000_labelled/sub")
    one_line_error(code, text, "a maskbench output")
    assert snapshot(root) == before


# 6-8. one writer per output: the lock is taken before anything is looked at, staged or deleted


@pytest.mark.parametrize("flag", ["", "--overwrite"])
def test_6_7_a_second_writer_is_refused_before_it_touches_anything(root: Path, flag: str) -> None:
    out = root / "AFLW2000_rotated"
    if flag:
        assert rotate(root, "AFLW2000_rotated")[0] == 0
    before = snapshot(root)
    with OutputLock(out):  # the first writer, mid-run
        code, text = rotate(root, "AFLW2000_rotated", *([flag] if flag else []))
        one_line_error(code, text, "is being written by another maskbench process")
        code, text = run("sample", "--dataset", "AFLW2000", "--out", "AFLW2000_rotated", "-n", "2", "--overwrite",
                         "--data-root", str(root))
        one_line_error(code, text, "is being written by another maskbench process")
        assert {k: v for k, v in snapshot(root).items() if not k.endswith("maskbench-lock")} == before
    assert not staging_dir(out).exists() and not lock_path(out).exists()


def test_8_a_second_evaluate_to_one_out_is_refused(root: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval"
    with OutputLock(report):
        code, text = run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000",
                         "--out", str(report), "--data-root", str(root))
        one_line_error(code, text, "is being written by another maskbench process")
        code, text = run("judge", str(root / "AFLW2000_labelled"), "--out", str(report))
        one_line_error(code, text, "is being written by another maskbench process")
    assert not report.exists()


# 9. what the operating system refuses is one line, or a skipped sample named


def test_9_a_source_photo_the_os_refuses_is_skipped_and_named(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import maskbench.io.manifest as manifest_module

    real = manifest_module.sha256_file

    def refuse(path: Path, chunk: int = 1 << 20) -> str:
        if Path(path).name == "image00003.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, chunk)

    monkeypatch.setattr("maskbench.identity.sha256_file", refuse)
    code, text = rotate(root, "AFLW2000_rotated")
    assert code == 0 and "Traceback" not in text, text
    assert "image00003.jpg: image cannot be read (Permission denied)" in text
    assert {r["source_id"] for r in read_labels(root / "AFLW2000_rotated")} == {
        p.stem for p in (root / "AFLW2000").glob("*.jpg")} - {"image00003"}


def test_9_a_read_only_folder_is_one_line(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads and writes regardless of permissions, so the refusal is simulated where the
    operating system would raise it: creating the output folder."""
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        if self.name in ("ro_out", ".ro_out.maskbench-partial") or self.parent.name == "ro_out":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, text = rotate(root, "ro_out")
    one_line_error(code, text, "Permission denied")
    monkeypatch.undo()
    assert rotate(root, "ro_out")[0] == 0  # nothing left behind blocks the next run


@pytest.mark.parametrize("manifest", ['{"manifest_version": 1, "files": ["a.jpg"]}', "[1, 2, 3]"])
def test_9_a_malformed_manifest_is_one_line_everywhere(root: Path, tmp_path: Path, manifest: str) -> None:
    split = root / "AFLW2000_labelled"
    (split / "manifest.json").write_text(manifest)
    code, text = run("verify", "AFLW2000_labelled", "--data-root", str(root))
    assert code == 1 and "not a maskbench manifest" in text and "Traceback" not in text, text
    for args in (["rotate", "--src", "AFLW2000_labelled", "--out", "x"], ["merge", "AFLW2000_labelled", "--out", "y"],
                 ["info", "AFLW2000_labelled"], ["import", "--src", "AFLW2000_labelled", "--out", "z"]):
        code, text = run(*args, "--data-root", str(root))
        one_line_error(code, text, "manifest")
    code, text = run("evaluate", "--predictions", str(_predictions(root, tmp_path)), "--suite", "AFLW2000_labelled",
                     "--out", str(tmp_path / "eval"), "--data-root", str(root))
    assert code == 2 and "Traceback" not in text and "manifest" in text, text


def test_9_a_240_character_name_can_be_overwritten(root: Path) -> None:
    name = "a" * 240
    assert rotate(root, name)[0] == 0
    code, text = rotate(root, name, "--overwrite")
    assert code == 0, text
    assert verify(root / name) == [] and len(staging_dir(root / name).name) <= 255


# 10. no state that only deleting by hand can clear


def test_10_killed_after_the_manifest_a_leftover_stage_and_a_dead_lock_block_nothing(root: Path) -> None:
    out = root / "AFLW2000_rotated"
    assert rotate(root, "AFLW2000_rotated")[0] == 0
    (out / JOURNAL).mkdir()  # killed between writing the manifest and removing the journal
    (out / JOURNAL / "job.json").write_text('{"kind": "dataset"}')
    (out / JOURNAL / "rows-1.jsonl").write_text('{"claim": ["image00000_rot-20.jpg"]}\n')
    code, text = rotate(root, "AFLW2000_rotated", "--resume")
    assert code == 2 and "nothing to resume" in text, text
    assert verify(out) == []  # the resume attempt removed the leftover journal
    partial_run(root, staging_dir(out).name)  # a killed overwrite's staging folder
    lock_path(out).write_text("99999999")  # the lock file of a dead writer (no process holds it)
    code, text = rotate(root, "AFLW2000_rotated", "--overwrite")
    assert code == 0, text
    assert verify(out) == [] and not staging_dir(out).exists() and not lock_path(out).exists()


# 11. an unfinished run is never a source


def test_11_a_killed_run_is_not_read_as_a_dataset(root: Path) -> None:
    import maskbench

    partial_run(root, "AFLW2000_partial")
    before = snapshot(root)
    for args in (["info", "AFLW2000_partial"], ["import", "--src", "AFLW2000_partial", "--out", "c"],
                 ["rotate", "--src", "AFLW2000_partial", "--out", "r"]):
        code, text = run(*args, "--data-root", str(root))
        one_line_error(code, text, "an unfinished maskbench run")
    code, text = run("judge", str(root / "AFLW2000_partial"), "--out", str(root.parent / "j"))
    one_line_error(code, text, "an unfinished maskbench run")
    code, text = run("evaluate", "baseline:pnp", "--suite", "AFLW2000_partial", "--out", str(root.parent / "e"),
                     "--data-root", str(root))
    one_line_error(code, text, "an unfinished maskbench run")
    with pytest.raises(maskbench.datasets.DatasetError, match="unfinished maskbench run"):
        maskbench.open_dataset(root / "AFLW2000_partial")
    assert snapshot(root) == before


# 12. derive only from a source that verifies


@pytest.mark.parametrize("edit", ["split", "deleted-row"])
def test_12_a_hand_edited_labels_csv_is_not_derived_from(root: Path, edit: str) -> None:
    labels = root / "AFLW2000_labelled" / "labels.csv"
    lines = labels.read_text().splitlines(keepends=True)
    if edit == "split":
        lines[1:6] = [line.replace(",test,", ",train,") for line in lines[1:6]]
    else:
        del lines[2]
    labels.write_text("".join(lines))
    before = snapshot(root)
    code, text = rotate(root, "AFLW2000_rotated", src="AFLW2000_labelled")
    one_line_error(code, text, "does not verify")
    assert snapshot(root) == before


def test_12_verify_catches_a_split_column_that_contradicts_the_rule_even_when_resealed(root: Path) -> None:
    """Someone who edits labels.csv and fixes the checksum (and the seal) still gets caught: the
    rows' split must be what the recorded rule gives their original."""
    from maskbench.io.manifest import sha256_file
    from maskbench.io.safety import seal

    split = root / "AFLW2000_labelled"
    labels = split / "labels.csv"
    labels.write_text(labels.read_text().replace(",test,", ",train,", 2))
    manifest = json.loads((split / "manifest.json").read_text())
    manifest["files"]["labels.csv"] = sha256_file(labels)
    manifest["counts"]["per_split"] = {"test": 6, "train": 2}
    (split / "manifest.json").write_text(json.dumps(seal({k: v for k, v in manifest.items() if k != "seal_sha256"})))
    problems = verify(split)
    assert problems == []  # io's checks alone cannot know the rule...
    code, text = run("verify", "AFLW2000_labelled", "--data-root", str(root))
    assert code == 1 and "2 rows whose split is not what the recorded rule" in text, text


# 13. a source that changed between shards or before a resume


def test_13_merge_refuses_shards_of_different_source_contents(root: Path) -> None:
    assert run("rotate", "--src", "AFLW2000", "--out", "s1", "--shard", "1/2", "--angles=10",
               "--data-root", str(root))[0] == 0
    (root / "AFLW2000" / "image00001.jpg").unlink()
    (root / "AFLW2000" / "image00001.mat").unlink()
    assert run("rotate", "--src", "AFLW2000", "--out", "s2", "--shard", "2/2", "--angles=10",
               "--data-root", str(root))[0] == 0
    code, text = run("merge", "s1", "s2", "--out", "merged", "--data-root", str(root))
    one_line_error(code, text, "different source contents")
    assert not (root / "merged").exists()


def test_13_resume_refuses_a_source_that_changed(root: Path) -> None:
    partial_run(root, "out")
    (root / "AFLW2000" / "image00007.jpg").unlink()
    with pytest.raises(ValueError, match="source that has changed"):
        write_variant(open_reader(root / "AFLW2000"), root / "out", transform=lambda s, i, r: [(s, i)],
                    transform_name="t", parameters={"command": "t"}, seed=0, progress=False, resume=True,
                    data_root=root)


# 14. verify sees edited metadata and added folders


@pytest.mark.parametrize("edit", ["per_split", "seed", "format", "parameters", "split-rule", "empty-dir", "dir-link"])
def test_14_verify_sees_edited_metadata_and_added_folders(root: Path, tmp_path: Path, edit: str) -> None:
    split = root / "AFLW2000_labelled"
    manifest = json.loads((split / "manifest.json").read_text())
    if edit == "per_split":
        manifest["counts"]["per_split"] = {"train": 8}
    elif edit == "seed":
        manifest["seed"] = 7
    elif edit == "format":
        manifest["format"] = "300W_LP"
    elif edit == "parameters":
        manifest["parameters"]["limit"] = 3
    elif edit == "split-rule":
        manifest["split"]["seed"] = 5
    elif edit == "empty-dir":
        (split / "extra").mkdir()
    else:
        (split / "link").symlink_to(tmp_path, target_is_directory=True)
    if not edit.startswith(("empty", "dir")):
        (split / "manifest.json").write_text(json.dumps(manifest, indent=1))
    problems = verify(split)
    assert problems, edit
    expected = {"empty-dir": "extra/: folder holding no listed file", "dir-link": "link: a symbolic link"}
    assert any(expected.get(edit, "edited after it was written") in p for p in problems), problems


# Races: real processes. The second writer starts once the first holds the lock (a deterministic
# interleaving), and both start at the same instant: once each in `make test`, 30 times in `make stress`
# (MASKBENCH_RACES=30).

RACES = int(os.environ.get("MASKBENCH_RACES", "1"))
ROTATE_64 = ["rotate", "--src", "AFLW2000", "--range", "-45", "45", "--per-image", "8"]


def _writer(root: Path, out: str, seed: int, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maskbench.cli", *ROTATE_64, "--out", out, "--seed", str(seed),
                             "--data-root", str(root), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _files(folder: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(folder).items() if k != "manifest.json"}


@pytest.fixture()
def references(root: Path) -> dict[int, dict[str, str]]:
    refs = {}
    for seed in (0, 1, 2):
        assert run(*ROTATE_64, "--out", f"ref{seed}", "--seed", str(seed), "--data-root", str(root))[0] == 0
        refs[seed] = _files(root / f"ref{seed}")
    return refs


def _check_outcome(root: Path, out: str, results: list[tuple[int, str]], refs: dict[int, dict[str, str]],
                   overwrite: bool) -> None:
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 2], [2, 2]), results
    assert all("Traceback" not in err for _, err in results)
    assert all("being written by another maskbench process" in err or "already exists" in err
               for code, err in results if code == 2)
    assert verify(root / out) == []
    winner = json.loads((root / out / "manifest.json").read_text())["seed"]
    assert _files(root / out) == refs[winner]  # images and labels of one run, never mixed
    if codes == [2, 2]:
        assert overwrite and winner == 0  # both refused: the previous output is whole
    assert not staging_dir(root / out).exists() and not lock_path(root / out).exists()


@pytest.mark.parametrize("overwrite", [False, True], ids=["fresh", "overwrite"])
def test_a_second_writer_started_mid_run_is_refused_and_nothing_mixes(root: Path, references: dict, overwrite: bool) -> None:
    out = "race"
    flags = ["--overwrite"] if overwrite else []
    if overwrite:
        shutil.copytree(root / "ref0", root / out)
    first = _writer(root, out, 1, *flags)
    folder = staging_dir(root / out) if overwrite else root / out
    deadline = time.monotonic() + 60
    while not (folder / JOURNAL / "job.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)  # the first writer holds the lock from before its journal exists
    first.send_signal(signal.SIGSTOP)  # frozen mid-run, holding the lock, while the second one tries
    try:
        second = _writer(root, out, 2, *flags)
        second_result = (second.wait(timeout=120), second.communicate()[1])
    finally:
        first.send_signal(signal.SIGCONT)
    results = [(first.wait(timeout=120), first.communicate()[1]), second_result]
    assert [code for code, _ in results] == [0, 2], results
    _check_outcome(root, out, results, references, overwrite)


@pytest.mark.parametrize("overwrite", [False, True], ids=["fresh", "overwrite"])
def test_two_writers_racing_never_both_succeed_nor_mix(root: Path, references: dict, overwrite: bool) -> None:
    for k in range(RACES if not overwrite else max(1, RACES // 3)):
        out = f"race{k}"
        if overwrite:  # the previous good output, seed 0
            shutil.copytree(root / "ref0", root / out)
        procs = [_writer(root, out, seed, *(["--overwrite"] if overwrite else [])) for seed in (1, 2)]
        _check_outcome(root, out, [(p.wait(), p.communicate()[1]) for p in procs], references, overwrite)
