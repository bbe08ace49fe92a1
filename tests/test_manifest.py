"""Output contract: atomic split writer, lock, verify, untrusted paths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskbench.io.labels import read_labels, safe_relpath
from maskbench.io.lock import OutputLockedError, lock_path
from maskbench.io.manifest import verify
from maskbench.io.writer import OutputExistsError, VariantWriter
from maskbench.sampledata import make_sample_dataset


@pytest.fixture()
def split(sample_root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "AFLW2000"
    shutil.copytree(sample_root / "AFLW2000", out)
    return out


def test_verify_detects_flipped_byte_deleted_and_extra_files(split: Path) -> None:
    assert verify(split) == []
    img = split / "image00000.jpg"
    data = bytearray(img.read_bytes())
    data[100] ^= 0xFF
    img.write_bytes(bytes(data))
    (split / "image00001.mat").unlink()
    (split / "stray.txt").write_text("x")
    problems = verify(split)
    assert any("image00000.jpg" in p and "checksum" in p for p in problems)
    assert any("image00001.mat" in p and "missing" in p for p in problems)
    assert any("stray.txt" in p and "not listed" in p for p in problems)


def test_verify_without_manifest(tmp_path: Path) -> None:
    assert "missing" in verify(tmp_path)[0]


def test_existing_output_refused_unless_overwrite(split: Path) -> None:
    with pytest.raises(OutputExistsError, match="--overwrite"):
        make_sample_dataset("AFLW2000", split, n=1, progress=False)
    make_sample_dataset("AFLW2000", split, n=1, progress=False, overwrite=True)
    assert len(read_labels(split)) == 1 and verify(split) == []


def test_live_lock_refuses_second_writer_and_a_dead_owner_leaves_no_lock(tmp_path: Path) -> None:
    """The lock is an flock beside the output: held by a live process it refuses a second writer
    (naming the pid); the kernel drops it when that process is killed, so no stale lock remains."""
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from maskbench.io.lock import OutputLock; l = OutputLock(Path(sys.argv[1])).__enter__(); "
                               "print('locked', flush=True); time.sleep(60)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=str(holder.pid)):
            with VariantWriter(out, overwrite=True):
                pass
        assert not out.exists()  # refused before anything was made
    finally:
        holder.kill()  # SIGKILL: no cleanup runs; its lock file stays, unlocked
        holder.wait()
    assert lock_path(out).exists()
    with VariantWriter(out, overwrite=True) as w:
        w.finish(name="out", fmt="AFLW2000", parameters={}, seed=0)
    assert not lock_path(out).exists() and verify(out) == []


@pytest.mark.parametrize("bad", ["../x.jpg", "/etc/passwd", "a/../../b", ""])
def test_unsafe_paths_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        safe_relpath(bad)


def test_manifest_with_escaping_path_is_rejected(split: Path) -> None:
    m = json.loads((split / "manifest.json").read_text())
    m["files"]["../outside.txt"] = "0" * 64
    (split / "manifest.json").write_text(json.dumps(m))
    assert any("unsafe" in p for p in verify(split))


def test_manifest_records_parameters_counts_and_checksums(split: Path) -> None:
    m = json.loads((split / "manifest.json").read_text())
    assert m["format"] == "AFLW2000" and m["seed"] == 0
    assert m["counts"]["samples"] == 8 and m["parameters"]["n"] == 8
    assert "labels.csv" in m["files"] and "manifest.json" not in m["files"]
    assert all(len(h) == 64 for h in m["files"].values())


def test_binary_maps_are_1_bit_pngs_that_read_back_as_0_and_255() -> None:
    import cv2

    from maskbench.io.atomic import encode_map_png

    binary = np.zeros((40, 30), np.uint8)
    binary[10:25, 5:20] = 255
    grey = binary // 2
    data = encode_map_png(binary)
    assert data[24] == 1  # IHDR bit depth
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE), binary)
    data = encode_map_png(grey)  # not binary: stays 8-bit, values kept
    assert data[24] == 8
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE), grey)


def test_atomic_write_survives_another_worker_making_the_folder_first(tmp_path: Path) -> None:
    """Two workers write the first files of a new folder: the one whose write failed because the
    folder was missing must not give up when the other has made the folder meanwhile."""
    from maskbench.io.atomic import atomic_write

    target = tmp_path / "occlusion" / "a.png"
    calls = []

    def write(tmp: Path) -> None:
        calls.append(tmp)
        if len(calls) == 1:
            target.parent.mkdir()  # the other worker, between our open() and our mkdir()
            raise FileNotFoundError(2, "No such file or directory", str(tmp))
        tmp.write_bytes(b"ok")

    atomic_write(target, write)
    assert target.read_bytes() == b"ok" and len(calls) == 2
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]
