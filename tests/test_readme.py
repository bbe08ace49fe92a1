"""The README a newcomer reads: its quickstart runs as printed on the sample data, in an empty folder, and
every link from it and from docs/ points at a file that exists."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def _quickstart() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- example:quickstart -->\n```bash\n(.*?)```", text, re.S)
    assert block, "README quickstart block not found"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [words for words in lines if words]


def test_the_quickstart_runs_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MASKBENCH_DATA", raising=False)
    commands = _quickstart()
    assert [c[0] for c in commands] == ["maskbench"] * len(commands) and len(commands) >= 4
    for words in commands:
        result = CliRunner().invoke(main, words[1:])
        assert result.exit_code == 0, (words, result.output)
    data = tmp_path / "data"
    for name in ("AFLW2000", "AFLW2000_masked", "AFLW2000_rotated"):
        assert (data / name / "manifest.json").is_file(), name
    masked = json.loads((data / "AFLW2000_masked" / "manifest.json").read_text())
    assert masked["parameters"]["landmarks"] == "detected" and masked["missed_faces"]["count"] <= 1
    suites = json.loads((tmp_path / "eval-pnp" / "results.json").read_text())["suites"]
    assert set(suites) == {"AFLW2000", "AFLW2000_masked", "AFLW2000_rotated"}
    assert len({s["n"] for s in suites.values()}) == 1  # paired: the same faces in every suite


def test_every_local_link_resolves() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_the_readme_is_an_entry_not_a_log() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 260
    table = [line for line in lines if line.startswith("| ") and "capability" not in line]
    assert all(len(line) <= 200 for line in table if "table:" not in line and " | " in line[:80]), "capability cells too long"
