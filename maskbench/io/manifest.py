"""The output contract: ``labels.csv`` + ``manifest.json`` beside the native layout.

Every split maskbench writes is a directory::

    BIWI_rotated/
    ├── hpdb/...              the dataset's native layout (images + label files)
    ├── labels.csv            one row per sample (columns below, then transform-specific ones)
    └── manifest.json         written last: name, format, version, parameters, seed, counts,
                              skipped/filtered samples, sha256 of every other file

``labels.csv`` columns: ``id, image, split, yaw_deg, pitch_deg, roll_deg, x_min, y_min, x_max,
y_max, source_id, transform`` followed by extra columns in sorted order. Angles follow
:mod:`maskbench.geometry`; coordinates are pixels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from maskbench import __version__
from maskbench.io.atomic import TMP_PREFIX, atomic_write_text
from maskbench.types import Sample

MANIFEST = "manifest.json"
LABELS = "labels.csv"
LOCK = ".maskbench.lock"
#: Per-run journal (job parameters, one record per finished source sample); removed by finish().
JOURNAL = ".maskbench"
MANIFEST_VERSION = 1
BASE_COLUMNS = [
    "id", "image", "split", "yaw_deg", "pitch_deg", "roll_deg",
    "x_min", "y_min", "x_max", "y_max", "source_id", "transform",
]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def safe_relpath(rel: str) -> str:
    """Validate a path read from a manifest or labels.csv: relative, no ``..``; else ValueError."""
    p = PurePosixPath(rel)
    if rel == "" or p.is_absolute() or rel.startswith(("/", "\\")) or ".." in p.parts or ":" in p.parts[0]:
        raise ValueError(f"unsafe path {rel!r} (must be relative, inside the split, without '..')")
    return rel


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 9))
    return str(value)


def label_row(sample: Sample, image_rel: str, split: str) -> dict[str, str]:
    """One ``labels.csv`` row for a sample."""
    row = {"id": sample.id, "image": image_rel, "split": split}
    row.update({k: _fmt(v) for k, v in sample.pose.euler_deg().items()})
    b = sample.bbox
    row.update({"x_min": _fmt(b.x_min), "y_min": _fmt(b.y_min), "x_max": _fmt(b.x_max), "y_max": _fmt(b.y_max)})
    # source_id names the original sample a row comes from; an original is its own source
    row.update({"source_id": sample.source_id or sample.id, "transform": sample.transform})
    row.update({k: _fmt(v) for k, v in sample.extra.items()})
    return row


def labels_csv_text(rows: Iterable[Mapping[str, str]]) -> str:
    """CSV text with the base columns first, extras sorted, rows sorted by id."""
    rows = sorted(rows, key=lambda r: r["id"])
    extras = sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BASE_COLUMNS + extras, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_labels(split_dir: Path) -> list[dict[str, str]]:
    """Rows of ``labels.csv``; paths in it are validated (no ``..``, not absolute)."""
    path = split_dir / LABELS
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        safe_relpath(row["image"])
    return rows


def labels_by_id(split_dir: Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` rows keyed by sample id; empty when the folder has no ``labels.csv`` (an
    original dataset)."""
    return {r["id"]: r for r in read_labels(split_dir)} if (split_dir / LABELS).is_file() else {}


def read_manifest(split_dir: Path) -> dict[str, Any]:
    """Parsed ``manifest.json`` (ValueError with the file name when it is garbled)."""
    path = split_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    for rel in data.get("files", {}):
        safe_relpath(rel)
    return data


def listed_files(split_dir: Path) -> list[str]:
    """All files under ``split_dir`` except the manifest and the lock, as sorted posix paths."""
    out = []
    for root, _dirs, files in os.walk(split_dir):
        for name in files:
            rel = Path(root, name).relative_to(split_dir).as_posix()
            if rel not in (MANIFEST, LOCK) and not rel.startswith(JOURNAL + "/"):
                out.append(rel)
    return sorted(out)


class OutputExistsError(FileExistsError):
    """The output directory exists and neither overwrite nor resume was asked for."""


class OutputLockedError(RuntimeError):
    """Another live process is writing the same output directory."""


@dataclass
class SplitWriter:
    """Writes one split directory: native files via a format writer, then labels and manifest.

    Use as a context manager. Existing output is refused unless ``overwrite`` (then removed) or
    ``resume`` (then continued). A lock file holding the writer's pid keeps a second process out;
    a lock whose pid is dead is taken over. The manifest is written last, so a directory without
    one is unfinished.
    """

    out_dir: Path
    overwrite: bool = False
    resume: bool = False
    rows: list[dict[str, str]] = field(default_factory=list)

    def __enter__(self) -> SplitWriter:
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            self._check_lock()
            if self.resume:
                (self.out_dir / MANIFEST).unlink(missing_ok=True)  # rewritten by finish()
            elif self.overwrite:
                shutil.rmtree(self.out_dir)
            else:
                raise OutputExistsError(
                    f"{self.out_dir} already exists; pass --overwrite to replace it or --resume to continue it"
                )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        return self

    def __exit__(self, *exc: object) -> None:
        (self.out_dir / LOCK).unlink(missing_ok=True)

    def _check_lock(self) -> None:
        lock = self.out_dir / LOCK
        if not lock.exists():
            return
        try:
            pid = int(lock.read_text().strip() or "0")
        except (ValueError, OSError):
            pid = 0
        if pid > 0 and pid != os.getpid() and _pid_alive(pid):
            raise OutputLockedError(f"{self.out_dir} is being written by process {pid} (lock {lock})")

    def _take_lock(self) -> None:
        lock = self.out_dir / LOCK
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            self._check_lock()
            lock.unlink()
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))

    def start_job(self, job: Mapping[str, Any]) -> None:
        """Record the run's parameters; a resumed run must have the same ones."""
        path = self.out_dir / JOURNAL / "job.json"
        text = json.dumps(job, sort_keys=True, default=str)
        if self.resume and path.is_file() and path.read_text() != text:
            raise ValueError(f"{self.out_dir} was started with different parameters ({path}); use --overwrite")
        atomic_write_text(path, text)

    def add(self, sample: Sample, image_rel: str, split: str) -> None:
        """Record a written sample's labels row."""
        self.rows.append(label_row(sample, image_rel, split))

    def finish(self, *, name: str, fmt: str, parameters: Mapping[str, Any], seed: int | None,
               skipped: Iterable[Any] = (), filtered: Mapping[str, list[str]] | None = None,
               source: Mapping[str, Any] | None = None, shard: tuple[int, int] | None = None,
               split: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write ``labels.csv`` then ``manifest.json`` (last); return the manifest. ``split``: the
        rule the rows' ``split`` column was drawn with (:class:`maskbench.splits.SplitRule` as a dict)."""
        atomic_write_text(self.out_dir / LABELS, labels_csv_text(self.rows))
        for stray in self.out_dir.rglob(f"{TMP_PREFIX}*"):
            stray.unlink()
        per_split: dict[str, int] = {}
        for row in self.rows:
            per_split[row["split"]] = per_split.get(row["split"], 0) + 1
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "name": name,
            "format": fmt,
            "maskbench_version": __version__,
            "parameters": dict(parameters),
            "seed": seed,
            "counts": {"samples": len(self.rows), "per_split": dict(sorted(per_split.items()))},
            "skipped": [str(s) for s in skipped],
            "filtered": {k: sorted(v) for k, v in (filtered or {}).items()},
            "source": dict(source or {}),
            "files": {rel: sha256_file(self.out_dir / rel) for rel in listed_files(self.out_dir)},
        }
        if split is not None:
            manifest["split"] = dict(split)
        if shard is not None:
            manifest["shard"] = {"index": shard[0], "count": shard[1]}
        shutil.rmtree(self.out_dir / JOURNAL, ignore_errors=True)
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return manifest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def source_reference(src_dir: Path) -> dict[str, Any]:
    """How a derived split names its source: path, and the source manifest's sha256 if any."""
    ref: dict[str, Any] = {"name": src_dir.name}
    if (src_dir / MANIFEST).is_file():
        ref["manifest_sha256"] = sha256_file(src_dir / MANIFEST)
    return ref


def verify(split_dir: Path) -> list[str]:
    """Re-check a split against its manifest. Returns the problems found (empty = all good)."""
    problems: list[str] = []
    if not (split_dir / MANIFEST).is_file():
        return [f"{split_dir / MANIFEST}: missing (the split is unfinished or not written by maskbench)"]
    try:
        manifest = read_manifest(split_dir)
    except ValueError as exc:
        return [str(exc)]
    files: dict[str, str] = manifest.get("files", {})
    for rel, digest in sorted(files.items()):
        path = split_dir / rel
        if not path.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{rel}: checksum differs from the manifest (file changed or corrupted)")
    for rel in listed_files(split_dir):
        if rel not in files:
            problems.append(f"{rel}: file not listed in the manifest")
    if (split_dir / JOURNAL).exists():
        problems.append(f"{JOURNAL}/: journal of an unfinished run is present (finish it with --resume)")
    if (split_dir / LOCK).exists():
        problems.append(f"{LOCK}: a writer's lock is present (run still going or killed)")
    if (split_dir / LABELS).is_file():
        try:
            rows = read_labels(split_dir)
        except (ValueError, KeyError, csv.Error) as exc:
            return problems + [f"{LABELS}: {exc}"]
        expected = manifest.get("counts", {}).get("samples")
        if expected != len(rows):
            problems.append(f"{LABELS}: {len(rows)} rows but the manifest counts {expected}")
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            problems.append(f"{LABELS}: duplicate ids")
        for row in rows:
            if not (split_dir / row["image"]).is_file():
                problems.append(f"{LABELS}: image {row['image']} of {row['id']} is missing")
    else:
        problems.append(f"{LABELS}: missing")
    return problems
