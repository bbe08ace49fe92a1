"""What a command may write: only folders maskbench created, never its source or the data root.

Every writer (split writers, ``sample``, ``merge``, ``evaluate``'s report) asks this module first and
touches nothing when it refuses. The rules:

* an output may not be, lie inside, or contain a source it reads, and may not be or contain the
  data root (:func:`check_location`);
* a folder is *maskbench's* when it is a finished output (a ``manifest.json`` of maskbench's that
  lists every file in the folder) or the partial output of a run (its journal ``.maskbench/job.json``);
  anything else that is not empty is the user's and is never replaced (:func:`ownership`);
* ``--overwrite`` writes the new output beside the old one (:func:`staging_dir`) and swaps the two
  only once the new one is complete (:func:`swap_in`), so an interrupted overwrite leaves the old
  output whole.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from maskbench.errors import UnsafeOutputError

MANIFEST = "manifest.json"
LOCK = ".maskbench.lock"
#: Per-run journal folder (job parameters and finished-sample records) of an unfinished run.
JOURNAL = ".maskbench"

#: What :func:`ownership` finds at a path.
ABSENT, EMPTY, COMPLETE, PARTIAL, FOREIGN = "absent", "empty", "complete", "partial", "foreign"


def _is_within(path: Path, other: Path) -> bool:
    """``path`` equals ``other`` or lies inside it (both resolved, symlinks followed)."""
    return path == other or path.is_relative_to(other)


def check_location(out_dir: Path, *, sources: Iterable[Path] = (), data_root: Path | None = None,
                   what: str = "--out") -> None:
    """Refuse an output that is, contains or lies inside a source, or is or contains the data root."""
    out = out_dir.expanduser().resolve()
    if data_root is not None:
        root = data_root.expanduser().resolve()
        if _is_within(root, out):
            raise UnsafeOutputError(f"{what} {out} is or contains the data root {root}; name a folder under it "
                                    "(e.g. BIWI_masked) or elsewhere")
    for src in sources:
        src = Path(src).expanduser().resolve()
        if out == src:
            raise UnsafeOutputError(f"{what} {out} is the source folder itself; choose another {what} "
                                    "(maskbench never writes into its source)")
        if out.is_relative_to(src):
            raise UnsafeOutputError(f"{what} {out} lies inside the source {src}; choose a folder outside it")
        if src.is_relative_to(out):
            raise UnsafeOutputError(f"{what} {out} contains the source {src}; choose a folder that does not")


def maskbench_manifest(folder: Path) -> dict | None:
    """The parsed ``manifest.json`` of ``folder`` when maskbench wrote it (it carries
    ``manifest_version`` and ``files``), else None."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "manifest_version" in data and isinstance(data.get("files"), dict):
        return data
    return None


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted posix path, the manifest, lock and journal left out."""
    out = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            rel = Path(root, name).relative_to(folder).as_posix()
            if rel not in (MANIFEST, LOCK) and not rel.startswith(JOURNAL + "/"):
                out.append(rel)
    return sorted(out)


def ownership(path: Path) -> tuple[str, str]:
    """(state, detail) of an output location: ``absent``, ``empty``, ``partial`` (a run's journal is
    there), ``complete`` (a maskbench manifest lists every file) or ``foreign`` (anything else; the
    detail names what maskbench did not write)."""
    if not path.exists() and not path.is_symlink():
        return ABSENT, ""
    if not path.is_dir():
        return FOREIGN, "it is a file, not a folder"
    if (path / JOURNAL / "job.json").is_file():
        return PARTIAL, ""
    if not files_under(path) and all(p.name in (LOCK, JOURNAL) for p in path.iterdir()):
        return EMPTY, ""  # nothing, or a run killed before it wrote its first record
    manifest = maskbench_manifest(path)
    if manifest is None:
        first = next(iter(files_under(path)), None) or next(p.name for p in path.iterdir() if p.name != LOCK)
        return FOREIGN, f"it has no maskbench manifest (e.g. {first})"
    extra = [rel for rel in files_under(path) if rel not in manifest["files"]]
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        return FOREIGN, f"it holds files maskbench did not write ({extra[0]}{more})"
    return COMPLETE, ""


def staging_dir(out_dir: Path) -> Path:
    """Where ``--overwrite`` builds the new output: a hidden sibling, swapped in when complete."""
    return out_dir.parent / f".{out_dir.name}.maskbench-partial"


def refuse_foreign(out_dir: Path, detail: str, what: str = "--out") -> UnsafeOutputError:
    return UnsafeOutputError(f"{what} {out_dir} was not written by maskbench ({detail}); maskbench will not replace "
                             f"or write into it: choose another {what}, or move its contents away")


def clear_staging(stage: Path) -> None:
    """Remove a leftover staging folder of an earlier run; refuse when it is not maskbench's."""
    state, detail = ownership(stage)
    if state == ABSENT:
        return
    if state == FOREIGN:
        raise refuse_foreign(stage, detail, what="staging folder")
    shutil.rmtree(stage)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def swap_in(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` at ``target`` and delete what was there (a maskbench output).

    On Linux the two folders trade places in one atomic step; elsewhere the old one is renamed
    aside first, so a crash in between leaves it whole under ``.<name>.maskbench-old``.
    """
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new)  # now holds the old output
        return
    old = target.parent / f".{target.name}.maskbench-old"
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old)
