"""Which code a measured number came from: the commit of the checkout maskbench runs from."""

from __future__ import annotations

import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def source_commit() -> str:
    """The short commit of the checkout this package runs from, with ``+changes`` when tracked files
    differ from it; ``unknown (not a git checkout)`` for an installed copy."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown (not a git checkout)"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def replace_marked_block(text: str, name: str, rows: list[str], by: str, commit: str | None = None,
                         day: str | None = None) -> str:
    """``text`` (a README) with the lines between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``
    replaced by ``rows`` and a line naming the date, the commit (this checkout's unless the numbers
    were measured at another: ``commit``, ``day``) and the script ``by``."""
    import re
    from datetime import date

    pattern = re.compile(rf"(<!-- table:{re.escape(name)} -->\n).*?(<!-- /table:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- table:{name} --> ... <!-- /table:{name} --> block to replace")
    stamp = f"Measured {day or date.today().isoformat()} at commit {commit or source_commit()} by `{by}`."
    return pattern.sub(lambda m: m.group(1) + "\n".join(rows) + f"\n\n{stamp}\n" + m.group(2), text)


def documents(root: Path = CHECKOUT) -> list[Path]:
    """The files that hold measured blocks: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def file_with_block(name: str, root: Path = CHECKOUT) -> Path:
    """The document holding ``<!-- table:NAME -->`` (ValueError when none or several do)."""
    found = [p for p in documents(root) if p.is_file() and f"<!-- table:{name} -->\n" in p.read_text()]
    if len(found) != 1:
        raise ValueError(f"<!-- table:{name} --> is in {len(found)} of README.md and docs/*.md (needs exactly one)")
    return found[0]


def write_block(name: str, rows: list[str], by: str, commit: str | None = None, day: str | None = None,
                root: Path = CHECKOUT) -> Path:
    """Replace the measured block ``name`` wherever it lives (:func:`file_with_block`); return that file."""
    path = file_with_block(name, root)
    path.write_text(replace_marked_block(path.read_text(), name, rows, by, commit, day))
    return path
