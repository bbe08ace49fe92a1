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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from maskbench.errors import DatasetError, UnsafeOutputError
from maskbench.io import safety
from maskbench.io.atomic import TMP_PREFIX, atomic_write_text
from maskbench.io.safety import JOURNAL, MANIFEST, files_under
from maskbench.io.safety import OutputLockedError as OutputLockedError  # raised by SplitWriter, replaced_folder
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
    """Parsed ``manifest.json``; ValueError naming the file when it is unreadable, not JSON, or not
    a maskbench manifest (an object whose ``files`` maps relative paths to sha256 strings)."""
    path = split_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a maskbench manifest (a JSON {type(data).__name__}, not an object)")
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ValueError(f"{path}: not a maskbench manifest ('files' must map each file to its sha256)")
    for rel in files:
        try:
            safe_relpath(rel)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    for key, typ in (("counts", dict), ("parameters", dict), ("source", dict), ("split", dict), ("filtered", dict),
                     ("skipped", list)):
        if key in data and not isinstance(data[key], typ):
            raise ValueError(f"{path}: not a maskbench manifest ({key!r} must be a JSON {typ.__name__})")
    return data


def listed_files(split_dir: Path) -> list[str]:
    """All files under ``split_dir`` except the manifest, the lock and the journal, as sorted posix paths."""
    return files_under(split_dir)


class OutputExistsError(FileExistsError):
    """The output directory exists and neither overwrite nor resume was asked for (or the one asked
    for does not apply to what is there)."""


@dataclass
class SplitWriter:
    """Writes one split directory: native files via a format writer, then labels and manifest.

    Use as a context manager; write the files under ``write_dir``, each announced first with
    :meth:`claim` (so that a killed run's folder still proves it wrote every file in it). On entry
    the output's lock is taken (:class:`~maskbench.io.safety.OutputLock`: a second writer of the
    same output is refused) and only then is what is at ``out_dir`` inspected
    (:func:`maskbench.io.safety.ownership`), before anything is touched:

    * nothing (or an empty folder): the split is written there;
    * a finished maskbench split: refused, unless ``overwrite``: then the new split is written in a
      staging folder beside it and swapped in by :meth:`finish`, so an interrupted overwrite leaves
      the old output whole;
    * a partial split (a killed run's journal, every file claimed): continued with ``resume`` when
      ``job`` (the run's command, parameters, seed, split rule, source listing) is the same, else
      refused; ``resume`` also continues a killed ``overwrite``'s staging folder;
    * anything else (a folder or file maskbench did not write, a report): refused whatever the flags.

    ``sources`` and ``data_root``: an output that is, holds or lies inside one of them is refused.
    The manifest is written last (then the journal is removed), so a directory without one is
    unfinished.
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
    _lock: safety.OutputLock | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> SplitWriter:
        self.out_dir = self.out_dir.expanduser().absolute()
        safety.check_location(self.out_dir, sources=self.sources, data_root=self.data_root)
        self._lock = safety.OutputLock(self.out_dir).__enter__()  # before anything is looked at or touched
        try:
            self.write_dir = self._choose_write_dir()
            self.write_dir.mkdir(parents=True, exist_ok=True)
            # the journal's job record marks the folder as this run's partial output (resumable, replaceable)
            atomic_write_text(self._job_path(self.write_dir), self._job_text())
        except BaseException:
            self._release()
            raise
        return self

    def _job_path(self, folder: Path) -> Path:
        return folder / JOURNAL / safety.JOB

    def _job_text(self) -> str:
        return json.dumps({"kind": safety.SPLIT, **(self.job or {})}, sort_keys=True, default=str)

    def _same_job(self, folder: Path) -> bool:
        try:
            return self._job_path(folder).read_text(encoding="utf-8") == self._job_text()
        except OSError:
            return False

    def _choose_write_dir(self) -> Path:
        """Where this run writes, by :func:`safety.ownership` of the output and its staging folder;
        raises (touching nothing) when the flags do not fit what is there."""
        out, stage = self.out_dir, safety.staging_dir(self.out_dir)
        found = safety.check_owned(out, safety.SPLIT)
        if self.resume:
            staged = safety.ownership(stage)
            if staged.state == safety.FOREIGN:
                raise safety.refuse_foreign(stage, staged.detail, what="staging folder")
            if staged.state == safety.PARTIAL and staged.kind == safety.SPLIT:  # a killed --overwrite
                if not self._same_job(stage):
                    raise ValueError(f"{stage} (an interrupted --overwrite of {out.name}) was started with different "
                                     "parameters or from a source that has changed since; run the same command again "
                                     "with --overwrite")
                return stage
            if found.state == safety.PARTIAL:
                if not self._same_job(out):
                    raise ValueError(f"{out} was started with different parameters or from a source that has changed "
                                     f"since ({self._job_path(out)}); use --overwrite to start it again")
                return out
            if found.state == safety.COMPLETE:
                if found.leftover_journal:  # killed after its manifest was written: only the cleanup was left
                    remove_journal(out)
                raise OutputExistsError(f"{out} is a finished maskbench output; there is nothing to resume "
                                        "(pass --overwrite to redo it)")
            return out  # absent or empty: a fresh start
        if found.state in (safety.ABSENT, safety.EMPTY):
            return out
        if not self.overwrite:
            if found.state == safety.PARTIAL:
                raise OutputExistsError(f"{out} holds an unfinished maskbench run; pass --resume to continue it "
                                        "(same options) or --overwrite to start again")
            raise OutputExistsError(f"{out} already exists (a maskbench output); pass --overwrite to replace it")
        if found.state == safety.PARTIAL:  # an unfinished run in place: replaced in place, nothing to keep
            safety.remove_owned(out)
            return out
        safety.clear_staging(stage)
        return stage

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__()
            self._lock = None

    def claim(self, rels: Iterable[str]) -> None:
        """Announce files about to be written under ``write_dir`` (journal line, flushed), so the
        folder of a run killed at any point accounts for each of its files."""
        append_claim(self.write_dir, list(rels))

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
        self.claim([LABELS])
        atomic_write_text(folder / LABELS, labels_csv_text(self.rows))
        for stray in folder.rglob(f"{TMP_PREFIX}*"):
            stray.unlink()
        per_split: dict[str, int] = {}
        for row in self.rows:
            per_split[row["split"]] = per_split.get(row["split"], 0) + 1
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "kind": safety.SPLIT,
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
        manifest = json.loads(json.dumps(manifest, default=str))  # what the file holds, so the seal matches it
        manifest = safety.seal(manifest)
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        remove_journal(folder)  # after the manifest: a kill in between leaves a finished, recognisable split
        if folder != self.out_dir:
            _swap_checked(folder, self.out_dir, safety.SPLIT)
            self.write_dir = self.out_dir
        return manifest


def remove_journal(folder: Path) -> None:
    """Delete a run's journal (``.maskbench/``) once its manifest is written."""
    journal = folder / JOURNAL
    if journal.is_dir() and not journal.is_symlink():
        for path in journal.iterdir():
            path.unlink()
        journal.rmdir()


def append_claim(folder: Path, rels: list[str], log: str | None = None) -> None:
    """Append ``{"claim": rels}`` to a journal log of ``folder`` and flush it (see
    :func:`maskbench.io.safety.read_claims`)."""
    path = folder / JOURNAL / (log or f"claims-{os.getpid()}.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"claim": rels}) + "\n")


def _swap_checked(stage: Path, out_dir: Path, kind: str) -> None:
    """Swap a finished ``stage`` in at ``out_dir`` (the caller holds the lock), once more checking
    that what is there may be replaced (a user may have added a file while the run went on)."""
    try:
        safety.check_owned(out_dir, kind)
    except UnsafeOutputError as exc:
        raise UnsafeOutputError(f"{exc} (the new output is complete in {stage})") from None
    safety.swap_in(stage, out_dir)


def check_replaceable(out_dir: Path, kind: str, *, sources: Iterable[Path] = (), data_root: Path | None = None,
                      what: str = "--out") -> None:
    """Raise (touching nothing) unless ``out_dir`` may be replaced as a whole by a new output of
    ``kind``: it is absent, empty or a maskbench output of that kind, and not a source, the data
    root or inside another maskbench output."""
    safety.check_location(out_dir, sources=sources, data_root=data_root, what=what)
    safety.check_owned(out_dir, kind, what)


@contextlib.contextmanager
def replaced_folder(out_dir: Path, kind: str, files: Iterable[str], *, sources: Iterable[Path] = (),
                    data_root: Path | None = None, what: str = "--out", lock: bool = True) -> Iterator[Path]:
    """Write a folder of outputs (a report) as a whole: yields a staging folder beside ``out_dir``
    in which only the ``files`` named may be written (claimed in its journal before the caller
    writes); on success a manifest (``kind``, sha256 of every file) is added and the folder replaces
    ``out_dir`` in one step, so no file of an earlier run is left beside the new ones. Refused like
    :func:`check_replaceable`; on an error the staging folder is removed and ``out_dir`` untouched.
    ``lock=False``: the caller holds the output's :class:`~maskbench.io.safety.OutputLock`."""
    sources = list(sources)
    files = sorted(files)
    safety.check_location(out_dir, sources=sources, data_root=data_root, what=what)
    with contextlib.ExitStack() as held:
        if lock:
            held.enter_context(safety.OutputLock(out_dir))
        safety.check_owned(out_dir, kind, what)
        stage = safety.staging_dir(out_dir)
        safety.clear_staging(stage)
        (stage / JOURNAL).mkdir(parents=True)
        try:
            atomic_write_text(stage / JOURNAL / safety.JOB, json.dumps({"kind": kind}))
            append_claim(stage, files)
            yield stage
            written = listed_files(stage)
            unclaimed = [rel for rel in written if rel not in files]
            if unclaimed:
                raise RuntimeError(f"internal error: {kind} wrote {unclaimed[0]}, which it did not claim")
            manifest = safety.seal({"manifest_version": MANIFEST_VERSION, "name": out_dir.name, "kind": kind,
                                    "maskbench_version": __version__,
                                    "files": {rel: sha256_file(stage / rel) for rel in written}})
            atomic_write_text(stage / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            remove_journal(stage)
            _swap_checked(stage, out_dir, kind)
        except BaseException:
            if safety.ownership(stage).state != safety.FOREIGN:
                safety.remove_owned(stage)
            raise


def source_listing_sha256(src_dir: Path) -> str:
    """sha256 of a source tree's file listing (every relative path and size, sorted): recorded by
    every split derived from it, so that ``merge`` and ``--resume`` notice a source that changed
    between shards or runs (a photo added, removed or replaced by another size)."""
    h = hashlib.sha256()
    for rel in safety.Inventory.of(src_dir).files:
        h.update(f"{rel}\0{(src_dir / rel).stat().st_size}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def source_reference(src_dir: Path) -> dict[str, Any]:
    """How a derived split names its source: name, the source manifest's sha256 if any, and the
    sha256 of its file listing (:func:`source_listing_sha256`)."""
    ref: dict[str, Any] = {"name": src_dir.name}
    if (src_dir / MANIFEST).is_file():
        ref["manifest_sha256"] = sha256_file(src_dir / MANIFEST)
    ref["listing_sha256"] = source_listing_sha256(src_dir)
    return ref


#: An extra check of a split's rows: ``(manifest, rows) -> problems`` (the split-rule check of
#: :func:`maskbench.splits.verify_split`, which lives above this module).
RowCheck = Callable[[Mapping[str, Any], list[dict[str, str]]], list[str]]


def verify(split_dir: Path, *, checksums: bool = True, row_check: RowCheck | None = None) -> list[str]:
    """Re-check a split against its manifest. Returns the problems found (empty = all good).

    Checks: every listed file is there with its sha256 (``checksums=False`` compares sizes of
    nothing, only presence); nothing else is in the folder (files, empty folders, symbolic links);
    the manifest's own fields are as written (its seal); ``labels.csv`` agrees with the manifest's
    counts (total and per split), has unique ids whose images exist, and every row's ``split`` is
    what the recorded rule gives its original sample (``row_check``; see
    :func:`maskbench.splits.verify_split`, what the commands run).
    """
    problems: list[str] = []
    if not (split_dir / MANIFEST).is_file():
        return [f"{split_dir / MANIFEST}: missing (the split is unfinished or not written by maskbench)"]
    try:
        manifest = read_manifest(split_dir)
    except ValueError as exc:
        return [str(exc)]
    if safety.seal_ok(manifest) is False:
        problems.append(f"{MANIFEST}: edited after it was written (its fields no longer match its seal_sha256)")
    files: dict[str, str] = manifest["files"]
    for rel, digest in sorted(files.items()):
        path = split_dir / rel
        if not path.is_file() or path.is_symlink():
            problems.append(f"{rel}: listed in the manifest but missing")
        elif checksums and sha256_file(path) != digest:
            problems.append(f"{rel}: checksum differs from the manifest (file changed or corrupted)")
    inventory = safety.Inventory.of(split_dir)
    for rel in listed_files(split_dir):
        if rel not in files:
            problems.append(f"{rel}: file not listed in the manifest")
    for rel in inventory.odd:
        problems.append(f"{rel}: a symbolic link or special file (maskbench writes none)")
    parents = {p for rel in files for p in safety._parents(rel)}
    for rel in inventory.dirs:
        if rel != JOURNAL and rel not in parents:
            problems.append(f"{rel}/: folder holding no listed file")
    if JOURNAL in inventory.dirs:
        problems.append(f"{JOURNAL}/: journal of a run is present (an unfinished run, or one killed just after "
                        "writing its manifest)")
    if safety.kind_of(manifest) != safety.SPLIT:
        return problems  # a report: its files are all there is to check
    if (split_dir / LABELS).is_file():
        try:
            rows = read_labels(split_dir, allow_empty=True)
        except DatasetError as exc:
            return problems + [f"{LABELS}: {exc.problem}"]
        problems += _label_problems(split_dir, manifest, rows)
        if row_check is not None:
            problems += row_check(manifest, rows)
    else:
        problems.append(f"{LABELS}: missing")
    return problems


def _label_problems(split_dir: Path, manifest: dict[str, Any], rows: list[dict[str, str]]) -> list[str]:
    """What in ``labels.csv`` disagrees with the manifest (counts, split rule) or the folder."""
    problems = []
    counts = manifest.get("counts", {})
    if counts.get("samples") != len(rows):
        problems.append(f"{LABELS}: {len(rows)} rows but the manifest counts {counts.get('samples')}")
    per_split: dict[str, int] = {}
    for row in rows:
        per_split[row["split"]] = per_split.get(row["split"], 0) + 1
    if "per_split" in counts and counts["per_split"] != dict(sorted(per_split.items())):
        problems.append(f"{LABELS}: rows per split {dict(sorted(per_split.items()))} but the manifest counts "
                        f"{counts['per_split']}")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        problems.append(f"{LABELS}: duplicate ids")
    for row in rows:
        if not (split_dir / row["image"]).is_file():
            problems.append(f"{LABELS}: image {row['image']} of {row['id']} is missing")
    return problems


def _seal_line(kind: str, body: str) -> str:
    return f"<!-- written by maskbench {kind}; sha256 of the rest: {hashlib.sha256(body.encode('utf-8')).hexdigest()} -->\n"


def write_sealed_text(path: Path, text: str, kind: str, *, sources: Iterable[Path] = (),
                      data_root: Path | None = None, what: str = "--out") -> None:
    """Write one text file (``maskbench compare``'s table) that proves it is maskbench's: its first
    line is an HTML comment naming ``kind`` and the sha256 of the rest. An existing file is replaced
    only when that line is there and the rest unchanged; anything else is refused (touching
    nothing), as is a path in a source, the data root or a maskbench output."""
    path = path.expanduser().absolute()
    safety.check_location(path, sources=sources, data_root=data_root, what=what)
    with safety.OutputLock(path):
        if path.exists() or path.is_symlink():
            if path.is_symlink() or not path.is_file():
                raise UnsafeOutputError(f"{what} {path} exists and is not a plain file; choose another {what}")
            try:
                head, _, rest = path.read_text(encoding="utf-8").partition("\n")
            except (UnicodeDecodeError, OSError):
                head, rest = "", ""
            if head + "\n" != _seal_line(kind, rest):
                raise UnsafeOutputError(f"{what} {path} exists and was not written by maskbench {kind} (or was edited "
                                        f"since); maskbench will not overwrite it: choose another {what}")
        body = text if text.endswith("\n") else text + "\n"
        atomic_write_text(path, _seal_line(kind, body) + body)
