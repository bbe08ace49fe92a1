"""What a command may write: only folders maskbench created, never its source or the data root.

Every writer (split writers, ``sample``, ``merge``, ``evaluate``'s and ``judge``'s reports) asks
this module first and touches nothing when it refuses. The rules:

* an output may not be, lie inside, or contain a source it reads; may not be or contain the data
  root; and may not lie inside another maskbench output (:func:`check_location`);
* a folder is maskbench's only when maskbench can account for *every* entry in it
  (:func:`ownership`): a finished output's ``manifest.json`` lists every file, and a run still
  going or killed lists in its journal (``.maskbench/``) every file it is about to write *before*
  it writes it (a *claim*). A file, symbolic link or empty folder that neither lists, or a
  journal file maskbench does not write, makes the folder the user's, whatever the flags;
* a folder of one *kind* (a dataset: a raw copy or a variant of one, in its native layout; an
  evaluation report; a realism report) is never replaced by an output of another kind;
* one writer at a time per output: an exclusive ``flock`` on a lock file beside the output
  (:class:`maskbench.io.lock.OutputLock`), taken before anything is inspected, staged or deleted,
  and released by the kernel when its process dies (no stale lock, no pid reuse);
* ``--overwrite`` writes the new output beside the old one (:func:`staging_dir`) and swaps the two
  only once the new one is complete (:func:`swap_in`); removal (:func:`remove_owned`) deletes the
  listing (manifest, journal) last, so a folder killed half-way through removal is still known to be
  maskbench's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from maskbench.errors import UnsafeOutputError
from maskbench.io.labels import safe_relpath

MANIFEST = "manifest.json"
#: Per-run journal folder (job record, claims and finished-sample records) of an unfinished run.
JOURNAL = ".maskbench"
JOB = "job.json"
#: Prefix of a temporary file (:mod:`maskbench.io.atomic`): ``.tmp-<pid>-<name>``.
TMP_PREFIX = ".tmp-"

#: What :func:`ownership` finds at a path.
ABSENT, EMPTY, COMPLETE, PARTIAL, FOREIGN = "absent", "empty", "complete", "partial", "foreign"
#: The kind a dataset folder's manifest declares (reports name theirs: "evaluation report", "realism report").
DATASET = "dataset"


def _is_within(path: Path, other: Path) -> bool:
    """``path`` equals ``other`` or lies inside it (both resolved, symlinks followed)."""
    return path == other or path.is_relative_to(other)


def check_location(out_dir: Path, *, sources: Iterable[Path] = (), data_root: Path | None = None,
                   what: str = "--out") -> None:
    """Refuse an output that is, contains or lies inside a source (a folder or a file), is or
    contains the data root, or lies inside another maskbench output (a finished one or a run's)."""
    out = out_dir.expanduser().resolve()
    if data_root is not None:
        root = data_root.expanduser().resolve()
        if _is_within(root, out):
            raise UnsafeOutputError(f"{what} {out} is or contains the data root {root}; name a folder under it "
                                    "(e.g. BIWI_masked) or elsewhere")
    for src in sources:
        src = Path(src).expanduser().resolve()
        if out == src:
            raise UnsafeOutputError(f"{what} {out} is the source {'folder' if src.is_dir() else 'file'} itself; choose "
                                    f"another {what} "
                                    "(maskbench never writes into its source)")
        if out.is_relative_to(src):
            raise UnsafeOutputError(f"{what} {out} lies inside the source {src}; choose a folder outside it")
        if src.is_relative_to(out):
            raise UnsafeOutputError(f"{what} {out} contains the source {src}; choose a folder that does not")
    for parent in out.parents:
        if (parent / MANIFEST).is_file() or (parent / JOURNAL / JOB).is_file():
            raise UnsafeOutputError(f"{what} {out} lies inside {parent}, a maskbench output (its {MANIFEST} or "
                                    "journal is there); writing into it would break it. Choose a folder outside it")


def _sealed_fields(manifest: dict) -> bytes:
    return json.dumps({k: v for k, v in manifest.items() if k != "seal_sha256"}, sort_keys=True).encode("utf-8")


def seal(manifest: dict) -> dict:
    """``manifest`` with ``seal_sha256``: the sha256 of its other fields (canonical JSON), so that an
    edit of its metadata (counts, seed, parameters, split rule) is seen by ``verify``."""
    return {**manifest, "seal_sha256": hashlib.sha256(_sealed_fields(manifest)).hexdigest()}


def seal_ok(manifest: dict) -> bool | None:
    """True/False whether the seal matches; None for a manifest written before seals."""
    if "seal_sha256" not in manifest:
        return None
    return manifest["seal_sha256"] == hashlib.sha256(_sealed_fields(manifest)).hexdigest()


#: Manifest fields that, when present, must be of these JSON types.
FIELD_TYPES = (("counts", dict), ("parameters", dict), ("source", dict), ("split", dict), ("filtered", dict),
               ("skipped", list))


def manifest_problem(data: object) -> str | None:
    """Why parsed manifest JSON is not a maskbench manifest, or None: it must be an object whose
    ``files`` maps relative paths (no ``..``, not absolute) to sha256 strings, with the fields of
    :data:`FIELD_TYPES` of their types. The one check behind :func:`maskbench_manifest` and
    :func:`maskbench.io.manifest.read_manifest`."""
    if not isinstance(data, dict):
        return f"not a maskbench manifest (a JSON {type(data).__name__}, not an object)"
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "not a maskbench manifest ('files' must map each file to its sha256)"
    for rel in files:
        try:
            safe_relpath(rel)
        except ValueError as exc:
            return str(exc)
    for key, typ in FIELD_TYPES:
        if key in data and not isinstance(data[key], typ):
            return f"not a maskbench manifest ({key!r} must be a JSON {typ.__name__})"
    return None


def maskbench_manifest(folder: Path) -> dict | None:
    """The parsed ``manifest.json`` of ``folder`` when it is maskbench's (``manifest_version`` and
    nothing :func:`manifest_problem` objects to), else None."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest_problem(data) is not None or "manifest_version" not in data:
        return None
    return data


def kind_of(manifest_or_job: dict) -> str:
    """The kind a manifest or job record declares; a dataset when it names none (older manifests)."""
    kind = manifest_or_job.get("kind")
    return kind if isinstance(kind, str) else DATASET


@dataclass
class Inventory:
    """Every entry under a folder, symlinks not followed: files, folders and anything else (links,
    sockets...), as posix paths relative to it."""

    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    odd: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, folder: Path) -> Inventory:
        inv = cls()
        stack = [(folder, "")]
        while stack:
            here, prefix = stack.pop()
            with os.scandir(here) as entries:
                for entry in entries:
                    rel = prefix + entry.name
                    if entry.is_symlink():
                        inv.odd.append(rel)
                    elif entry.is_dir(follow_symlinks=False):
                        inv.dirs.append(rel)
                        stack.append((Path(entry.path), rel + "/"))
                    elif entry.is_file(follow_symlinks=False):
                        inv.files.append(rel)
                    else:
                        inv.odd.append(rel)
        inv.files.sort()
        inv.dirs.sort()
        inv.odd.sort()
        return inv


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted posix path, the manifest and the journal left out
    (what a manifest lists)."""
    return [rel for rel in Inventory.of(folder).files if rel != MANIFEST and not rel.startswith(JOURNAL + "/")]


def read_claims(folder: Path) -> tuple[dict | None, set[str], list[str]]:
    """(job record, claimed paths, journal files maskbench does not write) of a run's journal.

    The journal holds ``job.json`` and ``*.jsonl`` logs whose lines may carry ``"claim": [paths]``
    (files announced before they are written); a line cut short by a kill claims nothing."""
    journal = folder / JOURNAL
    job: dict | None = None
    try:
        data = json.loads((journal / JOB).read_text(encoding="utf-8"))
        job = data if isinstance(data, dict) else None
    except (OSError, ValueError):
        job = None
    claimed: set[str] = set()
    strange: list[str] = []
    for rel in Inventory.of(journal).files if journal.is_dir() and not journal.is_symlink() else []:
        if rel == JOB:
            continue
        if "/" in rel or not rel.endswith(".jsonl"):
            strange.append(f"{JOURNAL}/{rel}")
            continue
        try:
            text = (journal / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            strange.append(f"{JOURNAL}/{rel}")
            continue
        for line in text.splitlines():
            if '"claim"' not in line:  # a finished sample's record: only claim lines name files
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            paths = record.get("claim") if isinstance(record, dict) else None
            if isinstance(paths, list):
                claimed.update(p for p in paths if isinstance(p, str))
    return job, claimed, strange


def _untemp(name: str) -> str:
    """``.tmp-<pid>-<name>`` -> ``<name>`` (an atomic write's temporary file), else ``name``."""
    if name.startswith(TMP_PREFIX):
        pid, sep, rest = name[len(TMP_PREFIX):].partition("-")
        if sep and pid.isdigit():
            return rest
    return name


@dataclass(frozen=True)
class Ownership:
    """What is at an output location: ``state`` (absent, empty, partial, complete, foreign), the
    ``kind`` of a maskbench folder, and for a foreign one what maskbench did not write."""

    state: str
    kind: str = ""
    detail: str = ""
    #: a finished output whose journal is still there (killed after its manifest was written)
    leftover_journal: bool = False


def ownership(path: Path) -> Ownership:
    """Whether ``path`` is maskbench's, entry by entry (see the module docstring)."""
    if not path.exists() and not path.is_symlink():
        return Ownership(ABSENT)
    if path.is_symlink():
        return Ownership(FOREIGN, detail="it is a symbolic link; give the folder itself")
    if not path.is_dir():
        return Ownership(FOREIGN, detail="it is a file, not a folder")
    inv = Inventory.of(path)
    if inv.odd:
        return Ownership(FOREIGN, detail=f"it holds {inv.odd[0]}, a symbolic link or special file maskbench never makes")
    if not inv.files and set(inv.dirs) <= {JOURNAL}:
        return Ownership(EMPTY)  # nothing, or an empty journal folder (a run killed before its first record)
    manifest = maskbench_manifest(path)
    has_journal = JOURNAL in inv.dirs
    job, claimed, strange = read_claims(path) if has_journal else (None, set(), [])
    if strange:
        return Ownership(FOREIGN, detail=f"its journal holds {strange[0]}, which maskbench does not write")
    if manifest is not None:
        listed, state, kind = set(manifest["files"]) | {MANIFEST}, COMPLETE, kind_of(manifest)
    elif job is not None:
        listed, state, kind = set(), PARTIAL, kind_of(job)
    else:
        first = next((f for f in inv.files if not f.startswith(JOURNAL + "/")), inv.files[0] if inv.files else JOURNAL)
        return Ownership(FOREIGN, detail=f"it has no maskbench manifest or run journal (e.g. {first})")
    extra = [rel for rel in inv.files if not _accounted(rel, listed, claimed)]
    ancestors = {a for rel in listed | claimed for a in parents_of(rel)}
    extra += [rel + "/" for rel in inv.dirs if rel != JOURNAL and rel not in ancestors]
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        return Ownership(FOREIGN, kind, f"it holds files maskbench did not write ({extra[0]}{more})")
    return Ownership(state, kind, leftover_journal=state == COMPLETE and has_journal)


def parents_of(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: k + 1]) for k in range(len(parts))]


def _accounted(rel: str, listed: set[str], claimed: set[str]) -> bool:
    if rel in listed or rel in claimed:
        return True
    if rel.startswith(JOURNAL + "/"):
        return True  # the journal's own files were checked by read_claims
    head, _, name = rel.rpartition("/")
    untemp = (head + "/" if head else "") + _untemp(name)
    return untemp != rel and (untemp in claimed or untemp in listed)


def refuse_foreign(out_dir: Path, detail: str, what: str = "--out") -> UnsafeOutputError:
    return UnsafeOutputError(f"{what} {out_dir} was not written by maskbench ({detail}); maskbench will not replace "
                             f"or write into it: choose another {what}, or move its contents away")


def check_owned(out_dir: Path, kind: str, what: str = "--out") -> Ownership:
    """The ownership of ``out_dir`` when an output of ``kind`` may replace it (absent, empty, or a
    maskbench output of that kind, finished or partial); else raise, touching nothing."""
    found = ownership(out_dir)
    if found.state == FOREIGN:
        raise refuse_foreign(out_dir, found.detail, what)
    if found.state in (COMPLETE, PARTIAL) and found.kind != kind:
        article = "an" if kind[:1] in "aeiou" else "a"
        raise UnsafeOutputError(f"{what} {out_dir} is a maskbench {found.kind}; maskbench never replaces it with "
                                f"{article} {kind}: choose another {what}")
    return found


def sibling(out_dir: Path, suffix: str) -> Path:
    """A hidden path beside ``out_dir``: ``.<name><suffix>``, shortened with a hash when the name
    would pass the file-system limit of 255 bytes."""
    name = f".{out_dir.name}{suffix}"
    if len(os.fsencode(name)) > 255:
        digest = hashlib.sha256(os.fsencode(out_dir.name)).hexdigest()[:16]
        name = f".{os.fsdecode(os.fsencode(out_dir.name)[:150]).rstrip(chr(0xFFFD))}-{digest}{suffix}"
    return out_dir.parent / name


def staging_dir(out_dir: Path) -> Path:
    """Where ``--overwrite`` builds the new output: a hidden sibling, swapped in when complete."""
    return sibling(out_dir, ".maskbench-partial")


def remove_owned(folder: Path) -> None:
    """Delete a maskbench folder so that a kill at any point leaves it recognisably maskbench's:
    every other file first, then the folders emptied, then the journal, the manifest last."""
    if not folder.exists():
        return
    inv = Inventory.of(folder)
    last = [MANIFEST] + [rel for rel in inv.files if rel.startswith(JOURNAL + "/")]
    for rel in inv.files:
        if rel not in last:
            os.unlink(folder / rel)
    for rel in sorted(inv.dirs, key=lambda r: r.count("/"), reverse=True):
        if rel != JOURNAL:
            os.rmdir(folder / rel)
    for rel in sorted(last, key=lambda r: r == MANIFEST):
        (folder / rel).unlink(missing_ok=True)
    if (folder / JOURNAL).is_dir():
        os.rmdir(folder / JOURNAL)
    os.rmdir(folder)


def clear_staging(stage: Path) -> None:
    """Remove a leftover staging folder of an earlier run (the caller holds the output's lock, so
    no live writer uses it); refuse when it holds anything maskbench did not write."""
    found = ownership(stage)
    if found.state == ABSENT:
        return
    if found.state == FOREIGN:
        raise refuse_foreign(stage, found.detail, what="staging folder")
    remove_owned(stage)


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
    """Put the complete folder ``new`` at ``target`` and delete what was there (a maskbench output,
    checked by the caller under the output's lock).

    On Linux the two folders trade places in one atomic step; elsewhere the old one is renamed
    aside first, so a crash in between leaves it whole under ``.<name>.maskbench-old``.
    """
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        remove_owned(new)  # now holds the old output
        return
    old = sibling(target, ".maskbench-old")
    clear_staging(old)
    os.replace(target, old)
    os.replace(new, target)
    remove_owned(old)
