"""Writing an output as a whole: a split (:class:`VariantWriter`), a report folder
(:func:`replaced_folder`) or one table file (:func:`write_sealed_text`), each under the output's
lock and the ownership rules of :mod:`maskbench.io.safety`, its files claimed before they are
written, its manifest written last."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskbench.errors import UnsafeOutputError
from maskbench.io import safety
from maskbench.io.atomic import TMP_PREFIX, atomic_write_text
from maskbench.io.labels import LABELS, label_row, labels_csv_text, missed_faces
from maskbench.io.lock import OutputLock
from maskbench.io.manifest import MANIFEST_VERSION, listed_files, sha256_file
from maskbench.io.safety import JOURNAL, MANIFEST
from maskbench.types import HeadPose, Sample
from maskbench.version import __version__


class OutputExistsError(FileExistsError):
    """The output directory exists and neither overwrite nor resume was asked for (or the one asked
    for does not apply to what is there)."""


@dataclass
class VariantWriter:
    """Writes one split directory: native files via a format writer, then labels and manifest.

    Use as a context manager; write the files under ``write_dir``, each announced first with
    :meth:`claim` (so that a killed run's folder still proves it wrote every file in it). On entry
    the output's lock is taken (:class:`~maskbench.io.OutputLock`: a second writer of the
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
    _lock: OutputLock | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> VariantWriter:
        self.out_dir = Path(self.out_dir).expanduser().absolute()  # a string from a caller's own script too
        self.sources = [Path(s) for s in self.sources]
        self.data_root = None if self.data_root is None else Path(self.data_root)
        safety.check_location(self.out_dir, sources=self.sources, data_root=self.data_root)
        self._lock = OutputLock(self.out_dir).__enter__()  # before anything is looked at or touched
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
        return json.dumps({"kind": safety.DATASET, **(self.job or {})}, sort_keys=True, default=str)

    def _same_job(self, folder: Path) -> bool:
        try:
            return self._job_path(folder).read_text(encoding="utf-8") == self._job_text()
        except OSError:
            return False

    def _choose_write_dir(self) -> Path:
        """Where this run writes, by :func:`safety.ownership` of the output and its staging folder;
        raises (touching nothing) when the flags do not fit what is there."""
        out, stage = self.out_dir, safety.staging_dir(self.out_dir)
        found = safety.check_owned(out, safety.DATASET)
        if self.resume:
            staged = safety.ownership(stage)
            if staged.state == safety.FOREIGN:
                raise safety.refuse_foreign(stage, staged.detail, what="staging folder")
            if staged.state == safety.PARTIAL and staged.kind == safety.DATASET:  # a killed --overwrite
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
            "kind": safety.DATASET,
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
        missed = missed_faces(self.rows)
        if missed is not None:  # a masked variant: the faces its detector missed, written unmasked
            manifest["missed_faces"] = missed
        if split is not None:
            manifest["split"] = dict(split)
        if biwi_labels is not None:  # the convention of labels.csv's angles (BIWI; see datasets.biwi)
            manifest["biwi_labels"] = biwi_labels
        if shard is not None:
            manifest["shard"] = {"index": shard[0], "count": shard[1]}
        manifest = _publish(folder, manifest, self.out_dir, safety.DATASET)
        self.write_dir = self.out_dir
        return manifest


def _publish(folder: Path, manifest: dict[str, Any], out_dir: Path, kind: str) -> dict[str, Any]:
    """Finish an output written in ``folder``: seal and write its manifest (last of its files),
    remove the run's journal (after the manifest: a kill in between leaves a finished, recognisable
    output), and swap a staging folder in at ``out_dir``. Returns the manifest as written."""
    manifest = safety.seal(json.loads(json.dumps(manifest, default=str)))  # what the file holds, so the seal matches
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    remove_journal(folder)
    if folder != out_dir:
        _swap_checked(folder, out_dir, kind)
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
    ``lock=False``: the caller holds the output's :class:`~maskbench.io.OutputLock`."""
    sources = list(sources)
    files = sorted(files)
    safety.check_location(out_dir, sources=sources, data_root=data_root, what=what)
    with contextlib.ExitStack() as held:
        if lock:
            held.enter_context(OutputLock(out_dir))
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
            _publish(stage, {"manifest_version": MANIFEST_VERSION, "name": out_dir.name, "kind": kind,
                             "maskbench_version": __version__,
                             "files": {rel: sha256_file(stage / rel) for rel in written}}, out_dir, kind)
        except BaseException:
            if safety.ownership(stage).state != safety.FOREIGN:
                safety.remove_owned(stage)
            raise


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
    with OutputLock(path):
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


#: Deprecated name of :class:`VariantWriter` (kept for one release).
SplitWriter = VariantWriter
