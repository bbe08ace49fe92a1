"""The command line end to end on sample data."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from maskbench.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_sample_import_info_verify(tmp_path: Path) -> None:
    root = str(tmp_path)
    code, out = run("sample", "--dataset", "AFLW2000", "--n", "3", "--seed", "1", "--data-root", root)
    assert code == 0 and "wrote 3 AFLW2000 samples" in out
    code, out = run("sample", "--dataset", "AFLW2000", "-n", "3", "--data-root", root)  # -n: --n's short form
    assert code == 2 and "already exists" in out and "--overwrite" in out
    code, out = run("info", "AFLW2000", "--data-root", root)
    assert code == 0 and "format AFLW2000, 3 of 3 samples kept, 0 unreadable" in out
    code, out = run("import", "--src", "AFLW2000", "--out", "copy", "--data-root", root)
    assert code == 0 and "written: 3" in out
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert manifest["parameters"]["command"] == "import" and manifest["counts"]["samples"] == 3
    code, out = run("verify", "AFLW2000", "copy", "--data-root", root)
    assert code == 0 and out.count("OK") == 2
    (tmp_path / "copy" / "image00000.jpg").write_bytes(b"changed")
    code, out = run("verify", "copy", "--data-root", root)
    assert code == 1 and "image00000.jpg: checksum differs" in out


def test_import_with_protocol_filter_records_dropped_ids(sample_root: Path, tmp_path: Path) -> None:
    code, out = run("import", "--src", str(sample_root / "AFLW2000"), "--out", str(tmp_path / "p"),
                    "--protocol-filter")
    assert code == 0
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    dropped = sum(manifest["filtered"].values(), [])
    assert manifest["counts"]["samples"] + len(dropped) == 8
    assert manifest["parameters"]["protocol_filter_max_abs_angle_deg"] == 99.0


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run("info", "BIWI", "--data-root", str(tmp_path))
    assert code == 2 and "not found" in out and "maskbench sample --dataset" in out


def test_data_root_from_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MASKBENCH_DATA", str(tmp_path))
    code, _ = run("sample", "--dataset", "BIWI", "--n", "1")
    assert code == 0 and (tmp_path / "BIWI" / "manifest.json").is_file()


def test_progress_bar_redraws_sparingly_off_a_terminal() -> None:
    import io

    from maskbench.progress import LOG_INTERVAL_S, progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_bar(total=1, file=io.StringIO()).mininterval == LOG_INTERVAL_S
    assert progress_bar(total=1, file=Terminal()).mininterval < 1.0


def test_ctrl_c_during_a_write_says_how_to_continue(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    import maskbench.pipeline
    import maskbench.sampledata

    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    root = str(tmp_path)
    assert run("sample", "--dataset", "AFLW2000", "--n", "2", "--scale", "0.25", "--data-root", root)[0] == 0
    # a resumable write (rotate): finished samples are kept, so the hint adds --resume
    monkeypatch.setattr(maskbench.pipeline, "write_variant", interrupt)
    args = ["rotate", "--src", "AFLW2000", "--range", "-5", "5", "--overwrite", "--data-root", root]
    monkeypatch.setattr(sys, "argv", ["maskbench", *args])
    code, out = run(*args)
    assert code == 130 and "finished samples are kept" in out
    assert "maskbench rotate --src AFLW2000 --range -5 5 --data-root" in out and out.rstrip().endswith("--resume")
    # a write that swaps in whole (sample): nothing was replaced, so the hint adds --overwrite
    monkeypatch.setattr(maskbench.sampledata, "make_sample_dataset", interrupt)
    args = ["sample", "--dataset", "AFLW2000", "--out", "again", "--data-root", root]
    monkeypatch.setattr(sys, "argv", ["maskbench", *args])
    code, out = run(*args)
    assert code == 130 and "nothing was replaced" in out and out.rstrip().endswith("--overwrite")
