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

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from maskbench.errors import DatasetError
from maskbench.io import safety
from maskbench.io.atomic import TMP_PREFIX, atomic_write_text
from maskbench.io.safety import JOURNAL, LOCK, MANIFEST, files_under
from maskbench.types import HeadPose, Sample
from maskbench.version import __version__

LABELS = "labels.csv"
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


def label_row(sample: Sample, image_rel: str, split: str, label: HeadPose | None = None) -> dict[str, str]:
    """One ``labels.csv`` row for a sample; its angles are ``label``'s when given (a BIWI label
    convention other than the pose itself), else the pose's."""
    row = {"id": sample.id, "image": image_rel, "split": split}
    row.update({k: _fmt(v) for k, v in (label or sample.pose).euler_deg().items()})
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


#: Columns without which a ``labels.csv`` cannot be read.
REQUIRED_COLUMNS = ("id", "image", "split")


def read_labels(split_dir: Path, allow_empty: bool = False) -> list[dict[str, str]]:
    """Rows of ``labels.csv``; paths in it are validated (no ``..``, not absolute). A file that is
    not UTF-8 CSV text, lacks the header's ``id``, ``image`` or ``split`` column, or has no rows
    (unless ``allow_empty``) raises :class:`~maskbench.errors.DatasetError` naming it."""
    path = split_dir / LABELS
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError:
        raise DatasetError(path, "not a text CSV file (undecodable bytes; is it a binary file?)") from None
    except csv.Error as exc:
        raise DatasetError(path, f"not a readable CSV file ({exc})") from None
    if not header:
        raise DatasetError(path, "empty file (a labels.csv has a header line and one row per sample)")
    absent = [c for c in REQUIRED_COLUMNS if c not in header]
    if absent:
        raise DatasetError(path, f"no {', '.join(absent)} column in the header (first line: {','.join(header)[:80]!r}); "
                           f"maskbench writes {', '.join(BASE_COLUMNS)}")
    if not rows and not allow_empty:
        raise DatasetError(path, "header only, no rows (an empty or unfinished split)")
    for k, row in enumerate(rows, start=2):
        if any(row.get(c) in (None, "") for c in ("id", "image")):
            raise DatasetError(path, f"line {k}: empty id or image")
        try:
            safe_relpath(row["image"])
        except ValueError as exc:
            raise DatasetError(path, f"line {k}: {exc}") from None
    return rows


def labels_by_id(split_dir: Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` rows keyed by sample id; empty when the folder has no ``labels.csv`` (an
    original dataset). Duplicate ids raise :class:`~maskbench.errors.DatasetError`."""
    if not (split_dir / LABELS).is_file():
        return {}
    out: dict[str, dict[str, str]] = {}
    for row in read_labels(split_dir):
        if row["id"] in out:
            raise DatasetError(split_dir / LABELS, f"duplicate id {row['id']!r}")
        out[row["id"]] = row
    return out


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
    """All files under ``split_dir`` except the manifest, the lock and the journal, as sorted posix paths."""
    return files_under(split_dir)


class OutputExistsError(FileExistsError):
    """The output directory exists and neither overwrite nor resume was asked for (or the one asked
    for does not apply to what is there)."""


class OutputLockedError(RuntimeError):
    """Another live process is writing the same output directory."""


@dataclass
class SplitWriter:
    """Writes one split directory: native files via a format writer, then labels and manifest.

    Use as a context manager; write the files under ``write_dir``. What is at ``out_dir`` decides
    what happens (:mod:`maskbench.io.safety`), before anything is touched:

    * nothing (or an empty folder): the split is written there;
    * a finished maskbench output: refused, unless ``overwrite``: then the new split is written in a
      staging folder beside it and swapped in by :meth:`finish`, so an interrupted overwrite leaves
      the old output whole;
    * a partial output (a killed run's journal): continued with ``resume`` when ``job`` (the run's
      command, parameters, seed, split rule) is the same, else refused; ``resume`` also continues a
      killed ``overwrite``'s staging folder;
    * anything else (a folder maskbench did not write, a file): refused whatever the flags.

    ``sources`` and ``data_root``: an output that is, holds or lies inside one of them is refused.
    A lock file holding the writer's pid keeps a second process out; a lock whose pid is dead is
    taken over. The manifest is written last, so a directory without one is unfinished.
    """

    out_dir: Path
    overwrite: bool = False
    resume: bool = False
    job: Mapping[str, Any] | None = None
    sources: Sequence[Path] = ()
    data_root: Path | None = None
    rows: list[dict[str, str]] = field(default_factory=list)
    #: where the files go: ``out_dir``, or the staging folder of an overwrite
    write_dir: Path = field(init=False)

    def __enter__(self) -> SplitWriter:
        self.out_dir = self.out_dir.expanduser().absolute()
        safety.check_location(self.out_dir, sources=self.sources, data_root=self.data_root)
        self.write_dir = self._choose_write_dir()
        if self.write_dir != self.out_dir:
            self._check_lock(self.out_dir)  # a live run writing out_dir itself: not swapped away under it
        self.write_dir.mkdir(parents=True, exist_ok=True)
        self._check_lock(self.write_dir)
        (self.write_dir / MANIFEST).unlink(missing_ok=True)  # a partial output's stale manifest; finish() rewrites it
        self._take_lock()
        # the journal's job record marks the folder as this run's partial output (resumable, replaceable)
        atomic_write_text(self._job_path(self.write_dir), self._job_text())
        return self

    def _job_path(self, folder: Path) -> Path:
        return folder / JOURNAL / "job.json"

    def _job_text(self) -> str:
        return json.dumps(self.job or {}, sort_keys=True, default=str)

    def _same_job(self, folder: Path) -> bool:
        return self._job_path(folder).read_text(encoding="utf-8") == self._job_text()

    def _choose_write_dir(self) -> Path:
        """Where this run writes, by :func:`safety.ownership` of the output and its staging folder;
        raises (touching nothing) when the flags do not fit what is there."""
        out, stage = self.out_dir, safety.staging_dir(self.out_dir)
        state, detail = safety.ownership(out)
        if state == safety.FOREIGN:
            raise safety.refuse_foreign(out, detail)
        if self.resume:
            if safety.ownership(stage)[0] == safety.PARTIAL:  # a killed --overwrite
                if not self._same_job(stage):
                    raise ValueError(f"{stage} (an interrupted --overwrite of {out.name}) was started with different "
                                     "parameters; run the same command again with --overwrite")
                return stage
            if state == safety.PARTIAL:
                if not self._same_job(out):
                    raise ValueError(f"{out} was started with different parameters ({self._job_path(out)}); "
                                     "use --overwrite to start it again with these")
                return out
            if state == safety.COMPLETE:
                raise OutputExistsError(f"{out} is a finished maskbench output; there is nothing to resume "
                                        "(pass --overwrite to redo it)")
            return out  # absent or empty: a fresh start
        if state in (safety.ABSENT, safety.EMPTY):
            return out
        if not self.overwrite:
            if state == safety.PARTIAL:
                raise OutputExistsError(f"{out} holds an unfinished maskbench run; pass --resume to continue it "
                                        "(same options) or --overwrite to start again")
            raise OutputExistsError(f"{out} already exists (a maskbench output); pass --overwrite to replace it")
        safety.clear_staging(stage)
        return stage

    def __exit__(self, *exc: object) -> None:
        (self.write_dir / LOCK).unlink(missing_ok=True)

    @staticmethod
    def _check_lock(folder: Path) -> None:
        lock = folder / LOCK
        if not lock.exists():
            return
        try:
            pid = int(lock.read_text().strip() or "0")
        except (ValueError, OSError):
            pid = 0
        if pid > 0 and pid != os.getpid() and _pid_alive(pid):
            raise OutputLockedError(f"{folder} is being written by process {pid} (lock {lock})")

    def _take_lock(self) -> None:
        lock = self.write_dir / LOCK
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            self._check_lock(self.write_dir)
            lock.unlink()
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))

    def add(self, sample: Sample, image_rel: str, split: str, label: HeadPose | None = None) -> None:
        """Record a written sample's labels row (:func:`label_row`)."""
        self.rows.append(label_row(sample, image_rel, split, label))

    def finish(self, *, name: str, fmt: str, parameters: Mapping[str, Any], seed: int | None,
               skipped: Iterable[Any] = (), filtered: Mapping[str, list[str]] | None = None,
               source: Mapping[str, Any] | None = None, shard: tuple[int, int] | None = None,
               split: Mapping[str, Any] | None = None, biwi_labels: str | None = None) -> dict[str, Any]:
        """Write ``labels.csv`` then ``manifest.json`` (last), swap a staged overwrite in; return the
        manifest. ``split``: the rule the rows' ``split`` column was drawn with
        (:class:`maskbench.splits.SplitRule` as a dict)."""
        folder = self.write_dir
        atomic_write_text(folder / LABELS, labels_csv_text(self.rows))
        for stray in folder.rglob(f"{TMP_PREFIX}*"):
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
            "files": {rel: sha256_file(folder / rel) for rel in listed_files(folder)},
        }
        if split is not None:
            manifest["split"] = dict(split)
        if biwi_labels is not None:  # the convention of labels.csv's angles (BIWI; see datasets.biwi)
            manifest["biwi_labels"] = biwi_labels
        if shard is not None:
            manifest["shard"] = {"index": shard[0], "count": shard[1]}
        shutil.rmtree(folder / JOURNAL, ignore_errors=True)
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if folder != self.out_dir:
            (folder / LOCK).unlink(missing_ok=True)
            safety.swap_in(folder, self.out_dir)
            self.write_dir = self.out_dir
        return manifest


#: Files of an evaluation report folder written before reports had a manifest: such a folder is
#: recognised as maskbench's and may be replaced.
LEGACY_REPORT_FILES = frozenset({"report.md", "results.json", "results.csv", "predictions.csv", "error_vs_yaw.png",
                                 "masked_delta.png"})


def check_replaceable(out_dir: Path, *, sources: Iterable[Path] = (), data_root: Path | None = None,
                      legacy_files: frozenset[str] = frozenset(), what: str = "--out") -> None:
    """Raise (touching nothing) unless ``out_dir`` may be replaced as a whole by a new output: it is
    absent, empty or maskbench's own (:func:`safety.ownership`), and not a source or the data root."""
    safety.check_location(out_dir, sources=sources, data_root=data_root, what=what)
    state, detail = safety.ownership(out_dir)
    if state == safety.FOREIGN and not (out_dir.is_dir() and _only_files(out_dir, legacy_files)):
        raise safety.refuse_foreign(out_dir, detail, what)


def _only_files(folder: Path, names: frozenset[str]) -> bool:
    files = safety.files_under(folder)
    return bool(files) and bool(names) and all(rel in names for rel in files)


@contextlib.contextmanager
def replaced_folder(out_dir: Path, kind: str, *, sources: Iterable[Path] = (), data_root: Path | None = None,
                    legacy_files: frozenset[str] = frozenset(), what: str = "--out") -> Iterator[Path]:
    """Write a folder of outputs (a report) as a whole: yields a staging folder beside ``out_dir``;
    on success a manifest (``kind``, sha256 of every file) is added and the folder replaces
    ``out_dir`` in one step, so no file of an earlier run is left beside the new ones. Refused like
    :func:`check_replaceable`; on an error the staging folder is removed and ``out_dir`` untouched."""
    sources = list(sources)
    check_replaceable(out_dir, sources=sources, data_root=data_root, legacy_files=legacy_files, what=what)
    stage = safety.staging_dir(out_dir)
    safety.clear_staging(stage)
    (stage / JOURNAL).mkdir(parents=True)
    atomic_write_text(stage / JOURNAL / "job.json", json.dumps({"kind": kind}))
    try:
        yield stage
        manifest = {"manifest_version": MANIFEST_VERSION, "name": out_dir.name, "kind": kind,
                    "maskbench_version": __version__,
                    "files": {rel: sha256_file(stage / rel) for rel in listed_files(stage)}}
        shutil.rmtree(stage / JOURNAL)
        atomic_write_text(stage / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        check_replaceable(out_dir, sources=sources, data_root=data_root, legacy_files=legacy_files, what=what)
        safety.swap_in(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


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
            rows = read_labels(split_dir, allow_empty=True)
        except DatasetError as exc:
            return problems + [f"{LABELS}: {exc.problem}"]
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
