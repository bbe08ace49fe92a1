"""Never lose a user's data: every writer refuses its source, the data root and folders it did not
write, whatever the flags; --overwrite swaps a complete new output in; --resume continues only its
own partial run. Each case runs on the sample data (so in any clone) and checks, byte for byte, that
the source and the user's other files are untouched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.io.manifest import JOURNAL, verify
from maskbench.io.safety import staging_dir


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (hidden files included)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


WRITERS = [["synthesize", "--landmarks", "gt"], ["rotate"], ["import"]]


@pytest.mark.parametrize("command", WRITERS, ids=lambda c: c[0])
@pytest.mark.parametrize("case", ["out-is-src", "out-is-data-root", "out-inside-src", "foreign-folder",
                                  "out-is-src-resume"])
def test_writers_refuse_and_touch_nothing(user_root: Path, command: list[str], case: str) -> None:
    before = snapshot(user_root)
    out, flag, expected = {
        "out-is-src": ("AFLW2000", "--overwrite", "is the source folder itself"),
        "out-is-data-root": (str(user_root), "--overwrite", "is or contains the data root"),
        "out-inside-src": ("AFLW2000/sub", "--overwrite", "lies inside the source"),
        "foreign-folder": ("notes", "--overwrite", "was not written by maskbench"),
        "out-is-src-resume": ("AFLW2000", "--resume", "is the source folder itself"),
    }[case]
    code, text = run(*command, "--src", "AFLW2000", "--out", out, flag, "--data-root", str(user_root))
    assert code == 2, text
    assert expected in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1  # one line
    assert snapshot(user_root) == before


def test_out_containing_the_source_is_refused(user_root: Path) -> None:
    group = user_root / "group"
    shutil.move(user_root / "AFLW2000", group / "AFLW2000")
    before = snapshot(user_root)
    code, text = run("rotate", "--src", str(group / "AFLW2000"), "--out", str(group), "--overwrite",
                     "--data-root", str(user_root))
    assert code == 2 and "contains the source" in text
    assert snapshot(user_root) == before


def test_existing_output_message_never_advises_destroying_the_source(user_root: Path) -> None:
    code, text = run("synthesize", "--src", "AFLW2000", "--out", "AFLW2000", "--data-root", str(user_root))
    assert code == 2 and "--overwrite" not in text and "source folder itself" in text
    code, text = run("synthesize", "--src", "AFLW2000", "--out", "notes", "--data-root", str(user_root))
    assert code == 2 and "--overwrite" not in text and "not written by maskbench" in text


def test_sample_refuses_the_data_root_and_a_real_dataset(user_root: Path) -> None:
    before = snapshot(user_root)
    code, text = run("sample", "--dataset", "AFLW2000", "--n", "2", "--overwrite", "--data-root", str(user_root))
    assert code == 2 and "not written by maskbench" in text  # <root>/AFLW2000 holds the user's photos
    code, text = run("sample", "--dataset", "AFLW2000", "--n", "2", "--overwrite", "--out", str(user_root),
                     "--data-root", str(user_root))
    assert code == 2 and "data root" in text
    assert snapshot(user_root) == before


def test_overwrite_replaces_only_a_maskbench_output_and_resume_only_its_own_run(user_root: Path) -> None:
    root = str(user_root)
    code, text = run("rotate", "--src", "AFLW2000", "--angles=10", "--data-root", root)
    assert code == 0, text
    out = user_root / "AFLW2000_rotated"
    first = snapshot(out)
    sources = snapshot(user_root / "AFLW2000")
    # a finished output: --resume has nothing to continue; other options are not a resume either
    code, text = run("rotate", "--src", "AFLW2000", "--angles=10", "--resume", "--data-root", root)
    assert code == 2 and "nothing to resume" in text
    # --overwrite replaces it with the new run (no file of the old one left)
    code, text = run("rotate", "--src", "AFLW2000", "--angles=20", "--overwrite", "--data-root", root)
    assert code == 0, text
    assert verify(out) == [] and snapshot(out) != first
    assert json.loads((out / "manifest.json").read_text())["parameters"]["angles_deg"] == [20.0]
    assert not staging_dir(out).exists()
    # a user file dropped into the output makes it no longer maskbench's alone: refused, kept
    (out / "my_notes.txt").write_text("mine")
    before = snapshot(user_root)
    code, text = run("rotate", "--src", "AFLW2000", "--angles=30", "--overwrite", "--data-root", root)
    assert code == 2 and "my_notes.txt" in text
    assert snapshot(user_root) == before
    assert snapshot(user_root / "AFLW2000") == sources


def test_resume_refuses_a_partial_run_with_other_options(user_root: Path) -> None:
    root = str(user_root)
    out = user_root / "part"
    (out / JOURNAL).mkdir(parents=True)
    (out / JOURNAL / "job.json").write_text('{"parameters": {"command": "rotate", "angles_deg": [5.0]}}')
    code, text = run("rotate", "--src", "AFLW2000", "--out", "part", "--angles=10", "--resume", "--data-root", root)
    assert code == 2 and "different parameters" in text
    code, text = run("rotate", "--src", "AFLW2000", "--out", "part", "--angles=10", "--data-root", root)
    assert code == 2 and "--resume" in text  # an unfinished run is named as such


def _wait_for_journal(folder: Path, proc: subprocess.Popen, lines: int = 1) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        journals = list((folder / JOURNAL).glob("rows-*.jsonl")) if (folder / JOURNAL).is_dir() else []
        if sum(p.read_text().count("\n") for p in journals) >= lines:
            return
        time.sleep(0.01)
    raise AssertionError("the run ended (or stalled) before it could be interrupted")


def test_kill_during_overwrite_leaves_the_old_output_whole_and_resume_finishes(user_root: Path,
                                                                               tmp_path: Path) -> None:
    root = str(user_root)
    base = [sys.executable, "-m", "maskbench.cli", "synthesize", "--src", "AFLW2000", "--landmarks", "gt",
            "--data-root", root]
    subprocess.run(base + ["--seed", "1"], check=True, capture_output=True)
    out = user_root / "AFLW2000_masked"
    old = snapshot(out)
    proc = subprocess.Popen(base + ["--seed", "2", "--overwrite"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for_journal(staging_dir(out), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(out) == old and verify(out) == []  # the previous output, complete and verifiable
    done = subprocess.run(base + ["--seed", "2", "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert verify(out) == [] and not staging_dir(out).exists()
    reference = tmp_path / "ref" / "AFLW2000_masked"  # same name: the manifest records it
    subprocess.run(base + ["--seed", "2", "--out", str(reference)], check=True, capture_output=True)
    assert snapshot(out) == snapshot(reference)


def test_ctrl_c_prints_the_exact_resume_command(user_root: Path) -> None:
    root = str(user_root)
    args = ["rotate", "--src", "AFLW2000", "--angles=-20,0,20", "--data-root", root]
    proc = subprocess.Popen([sys.executable, "-m", "maskbench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_journal(user_root / "AFLW2000_rotated", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    command = re.search(r"^\s+maskbench (.+)$", err, re.MULTILINE)
    assert command is not None, err
    assert shlex.split(command.group(1)) == [*args, "--resume"]
    done = subprocess.run([sys.executable, "-m", "maskbench.cli", *shlex.split(command.group(1))],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert verify(user_root / "AFLW2000_rotated") == []


def test_out_is_resolved_by_one_rule(user_root: Path, tmp_path: Path) -> None:
    """A relative --out is under the data root, with or without a slash; an absolute one as given."""
    root = str(user_root)
    code, _ = run("import", "--src", "AFLW2000", "--out", "variants/copy", "--limit", "2", "--data-root", root)
    assert code == 0 and verify(user_root / "variants" / "copy") == []
    code, _ = run("import", "--src", "AFLW2000", "--out", str(tmp_path / "abs"), "--limit", "2", "--data-root", root)
    assert code == 0 and verify(tmp_path / "abs") == []
