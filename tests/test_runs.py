"""Run mechanics shared by rotate/synthesize: workers, shards + merge, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from maskbench.augment.rotation import RotationParams, make_transform
from maskbench.datasets import open_reader
from maskbench.io.atomic import TMP_PREFIX
from maskbench.io.manifest import JOURNAL, read_manifest, verify
from maskbench.pipeline import merge_variants, write_variant

PARAMS = RotationParams(range_deg=(-40.0, 40.0), per_image=2)


def rotate(src: Path, out: Path, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    reader = open_reader(src)
    summary = write_variant(reader, out, transform=make_transform(reader.fmt, PARAMS), transform_name="rotate",
                          parameters=PARAMS.as_dict(), seed=5, progress=False, **kwargs)
    return summary.manifest


def journal_lines(out: Path) -> int:
    return sum(p.read_text().count("\n") for p in (out / JOURNAL).glob("rows-*.jsonl"))


def file_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_bytes_with_one_or_two_workers(sample_root: Path, tmp_path: Path) -> None:
    one = tmp_path / "a" / "out"
    two = tmp_path / "b" / "out"
    rotate(sample_root / "AFLW2000", one)
    rotate(sample_root / "AFLW2000", two, workers=2)
    assert file_bytes(one) == file_bytes(two)
    assert len(read_manifest(one)["files"]) == 8 * 2 * 2 + 1


@pytest.mark.parametrize("name", ["BIWI", "300W_LP"])
def test_three_shards_merged_equal_one_run(sample_root: Path, tmp_path: Path, name: str) -> None:
    whole = tmp_path / "whole" / "out"
    rotate(sample_root / name, whole)
    shards = [tmp_path / f"s{k}" for k in (1, 2, 3)]
    for k, d in enumerate(shards, start=1):
        rotate(sample_root / name, d, shard=(k, 3))
        assert read_manifest(d)["shard"] == {"index": k, "count": 3}
    merged = tmp_path / "merged" / "out"
    merge_variants(shards, merged)
    assert file_bytes(merged) == file_bytes(whole)
    with pytest.raises(ValueError, match="exactly once"):
        merge_variants(shards[:2], tmp_path / "bad" / "out")


def test_resume_requires_same_parameters(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    reader = open_reader(sample_root / "AFLW2000")
    seen = []

    def stop_at_second(sample, image, rng):  # noqa: ANN001, ANN202 (a transform interrupted like Ctrl-C)
        seen.append(sample.id)
        if len(seen) > 1:
            raise KeyboardInterrupt
        return [(sample, image)]

    with pytest.raises(KeyboardInterrupt):
        write_variant(reader, out, transform=stop_at_second, transform_name="t", parameters={"a": 1}, seed=0,
                    progress=False, limit=3)
    assert (out / JOURNAL / "job.json").is_file() and not (out / "manifest.json").exists()
    with pytest.raises(ValueError, match="different parameters"):
        write_variant(reader, out, transform=None, transform_name="", parameters={"a": 2}, seed=0, progress=False,
                    resume=True)


@pytest.mark.parametrize("command", [["rotate", "--angles=-30,-10,10,30"], ["synthesize", "--landmarks", "pose"]])
def test_sigkill_then_resume_gives_the_uninterrupted_result(sample_root: Path, tmp_path: Path,
                                                            command: list[str]) -> None:
    src = sample_root / "BIWI"
    reference = tmp_path / "ref" / "BIWI_rot"
    cmd = [sys.executable, "-m", "maskbench.cli", *command, "--src", str(src), "--seed", "2"]
    subprocess.run(cmd + ["--out", str(reference)], check=True, capture_output=True)
    expected = file_bytes(reference)
    # kill when the journal holds 0 (run just started), 3 and 6 of the 8 finished source samples; with
    # MASKBENCH_STRESS=1 (`make stress`) at 10 random points, each a random few ms past a record
    rng = np.random.default_rng(int(os.environ.get("MASKBENCH_STRESS_SEED", "0")))
    stress = os.environ.get("MASKBENCH_STRESS") == "1"
    points = [(int(rng.integers(0, 7)), float(rng.uniform(0, 0.03))) for _ in range(10)] if stress else \
        [(0, 0.0), (3, 0.0), (6, 0.0)]
    for k, (finished, extra_s) in enumerate(points):
        out = tmp_path / f"run{k}" / "BIWI_rot"
        proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / JOURNAL / "job.json").exists() and journal_lines(out) >= finished:
                time.sleep(extra_s)
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "manifest.json").exists()
        done = subprocess.run(cmd + ["--out", str(out), "--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert verify(out) == []
        assert not list(out.rglob(f"{TMP_PREFIX}*")) and not (out / JOURNAL).exists()
        assert file_bytes(out) == expected
        n_per_source = 4 if command[0] == "rotate" else 1
        assert json.loads((out / "manifest.json").read_text())["counts"]["samples"] == 8 * n_per_source


class _PlanFailsFor:
    """A planning transform that cannot handle one sample (DatasetError) and copies the others."""

    def __init__(self, bad_id: str) -> None:
        self.bad_id = bad_id

    def plan(self, sample, image_shape, rng):  # type: ignore[no-untyped-def]
        from maskbench.datasets.base import DatasetError

        if sample.id == self.bad_id:
            raise DatasetError(sample.image_path, "cannot plan this one")
        return [(sample, lambda image: image)]

    def __call__(self, sample, image, rng):  # type: ignore[no-untyped-def]
        yield sample, image  # the pipeline must not fall back to this after plan() failed


def test_a_sample_whose_plan_fails_is_skipped_not_written(sample_root: Path, tmp_path: Path) -> None:
    reader = open_reader(sample_root / "AFLW2000")
    bad = reader.keys[1]  # inside the first chunk, with good samples on both sides
    summary = write_variant(reader, tmp_path / "out", transform=_PlanFailsFor(bad), transform_name="copy",
                          parameters={}, seed=0, progress=False)
    assert len(summary.skipped) == 1 and "cannot plan this one" in summary.skipped[0]
    assert summary.written == len(reader.keys) - 1
    assert not (tmp_path / "out" / reader.fmt.image_rel(bad)).exists()
    assert (tmp_path / "out" / reader.fmt.image_rel(reader.keys[0])).exists()
    assert verify(tmp_path / "out") == []
