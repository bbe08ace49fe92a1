"""The one-direction data flow: read a tree, transform each sample, write a split.

``write_split`` is what every command that produces a split runs (``import`` with no transform;
``rotate`` and ``synthesize`` with theirs). A transform is a pure function
``(sample, image_bgr, rng) -> iterable of (sample, image_bgr)``; its randomness comes only from the
per-sample generator it is handed, so outputs do not depend on order, worker count or sharding.
A transform whose labels need only the image's shape may also offer
``plan(sample, image_shape, rng) -> [(sample, render), ...]`` with ``render(image_bgr) -> image_bgr``
(the albumentations split of parameters and pixels); the pipeline then runs the label halves of
a chunk back to back (see :meth:`SplitJob.process_chunk`).

Source samples are processed in chunks of :data:`CHUNK_SIZE` (labels, then pixels, then files:
see :meth:`SplitJob.process_chunk`). When a sample's files are written, a one-line record of its
label rows (or of why it was skipped) is appended to the process's journal
``.maskbench/rows-<pid>.jsonl`` and flushed: that record is what ``--resume`` trusts (a line cut
short by a kill is ignored, so its sample is redone), so a run killed at any point continues where it stopped and ends with
the same bytes as an uninterrupted run. ``finish`` turns the records into ``labels.csv`` and the
manifest and removes the journal.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.datasets.aflw2000 import SOURCE_ANGLE_COLUMN, max_abs_stored_angle_deg
from maskbench.datasets.base import DatasetError, DatasetReader
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, check_biwi_labels, label_matrix
from maskbench.faces import SOURCE_SHA_COLUMN, source_sha256
from maskbench.io.atomic import atomic_write_bytes, encode_image, encode_map_png, read_image
from maskbench.io.labels import BASE_COLUMNS, LABELS, label_row, labels_by_id, read_labels, safe_relpath
from maskbench.io.manifest import JOURNAL, MANIFEST, source_reference
from maskbench.io.writer import SplitWriter
from maskbench.progress import progress_bar
from maskbench.seeding import sample_rng
from maskbench.splits import DEFAULT_RULE, SplitRule, recorded_rule, verify_split
from maskbench.types import HeadPose, Sample

Transform = Callable[[Sample, np.ndarray, np.random.Generator], Iterable[tuple[Sample, np.ndarray]]]


@dataclass
class RunSummary:
    """What a run did: written / skipped (with reasons) / filtered counts."""

    written: int = 0
    resumed: int = 0
    skipped: list[str] = field(default_factory=list)
    filtered: dict[str, list[str]] = field(default_factory=dict)
    extra_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"written: {self.written}" + (f" ({self.resumed} source samples from before --resume)" if self.resumed else ""),
               f"skipped: {len(self.skipped)}"]
        out += [f"  {e}" for e in self.skipped[:20]]
        if len(self.skipped) > 20:
            out.append(f"  ... and {len(self.skipped) - 20} more (all listed in manifest.json)")
        for reason, ids in self.filtered.items():
            out.append(f"filtered ({reason}): {len(ids)}")
        for column, counts in self.extra_counts.items():
            out.append(f"by {column}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/4"`` -> (2, 4): the second of four deterministic parts (sample index mod 4 == 1)."""
    if text is None:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


@dataclass
class SplitJob:
    """Everything a worker needs to process one source sample (inherited by forked workers)."""

    reader: DatasetReader
    out_dir: Path
    transform: Transform | None
    transform_name: str
    seed: int
    split: SplitRule
    src_rows: dict[str, dict[str, str]]
    only_split: str | None = None
    biwi_labels: str = DEFAULT_BIWI_LABELS

    _journal: Any = field(default=None, init=False, repr=False)
    _journal_pid: int = field(default=-1, init=False, repr=False)

    def append_record(self, record: dict[str, Any]) -> None:
        """Append one record to this process's journal and flush it to the OS (survives SIGKILL)."""
        if self._journal is None or self._journal_pid != os.getpid():
            path = self.out_dir / JOURNAL / f"rows-{os.getpid()}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            self._journal = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
            self._journal_pid = os.getpid()
        self._journal.write(json.dumps(record, sort_keys=True) + "\n")
        self._journal.flush()

    def close_journal(self) -> None:
        if self._journal is not None and self._journal_pid == os.getpid():
            self._journal.close()
        self._journal = None


    def process(self, key: str) -> dict[str, Any]:
        """Read, transform and write one source sample; write and return its record."""
        return self.process_chunk([key])[0]

    def process_chunk(self, keys: list[str]) -> list[dict[str, Any]]:
        """Process source samples in three passes over the chunk: labels, pixels, files.

        Each sample's files are written and its journal record appended in the last pass, so a
        kill loses at most the unjournaled samples of one chunk (``--resume`` redoes them). The
        passes exist for speed: the label work of a sample is many small Python steps, and run
        between one image's decode/warp/encode and the next (which push it out of the CPU caches)
        it measured 2-4x slower than run back to back for several samples.
        """
        units = [_Unit(key) for key in keys]
        for unit in units:  # pass 1: labels
            sample, error, reason = self.reader.read_checked(unit.key)
            if error is not None:
                unit.record["error"] = str(error)
            elif reason is not None:
                unit.record["filtered"] = reason
            else:
                assert sample is not None
                self._guard(unit, lambda u, sample=sample: setattr(u, "sample", self._prepare(u, sample)))
                if unit.sample is not None and self.only_split is not None and unit.split != self.only_split:
                    unit.record["filtered"] = f"split {unit.split}, not {self.only_split}"
                    unit.sample = None
        live = [u for u in units if u.sample is not None]
        for unit in live:  # pass 2: pixels (decode, transform, encode)
            self._guard(unit, self._decode)
        if hasattr(self.transform, "plan"):  # a transform whose label work can run first, back to back
            live = [u for u in live if u.image is not None]
            for unit in live:
                self._guard(unit, self._plan)
        for unit in live:
            if unit.image is not None:
                self._guard(unit, self._render)
            unit.image = None
        for unit in units:  # pass 3: files (each claimed in the journal first) and the journal record
            if unit.outputs:
                unit.claimed = self._claims(unit)
                self.append_record({"claim": sorted(unit.claimed)})
                self._guard(unit, self._store)
            self.append_record(unit.record)
        return [unit.record for unit in units]

    def _guard(self, unit: _Unit, step: Callable[[_Unit], None]) -> None:
        try:
            step(unit)
        except DatasetError as exc:  # a bad file or an impossible transform: skipped with the reason
            unit.record["error"] = str(self.reader.error_for(exc))
            unit.image, unit.outputs = None, []  # no later pass touches this sample

    def _prepare(self, unit: _Unit, sample: Sample) -> Sample:
        row = self.src_rows.get(sample.id)
        fmt = self.reader.fmt
        unit.split = row["split"] if row else self.split.split_of(fmt.name, sample.id)
        unit.source_id = (row.get("source_id") if row else "") or sample.id
        unit.row = row
        if row:  # a maskbench source: keep its transform columns
            sample = sample.replace(extra=inherited_columns(row))
        if not (row or {}).get("transform"):  # an original: what every copy made from it carries
            extra = dict(sample.extra)
            if SOURCE_SHA_COLUMN not in extra:  # its identity (maskbench.faces); hashed only when not carried
                extra[SOURCE_SHA_COLUMN] = source_sha256(sample)
            if fmt.name == "AFLW2000" and SOURCE_ANGLE_COLUMN not in extra:  # what every copy's protocol tests
                extra[SOURCE_ANGLE_COLUMN] = max_abs_stored_angle_deg(sample)
            sample = sample.replace(extra=extra)
        if self.transform is not None:
            unit.rng = sample_rng(self.seed, sample.id, self.transform_name)
            unit.transform = "+".join(t for t in (row.get("transform", "") if row else "", self.transform_name) if t)
        return sample

    def _decode(self, unit: _Unit) -> None:
        assert unit.sample is not None
        if unit.row:  # ... and its per-pixel maps
            unit.sample = unit.sample.replace(aux_images=read_aux_images(self.reader.root, unit.row))
        if self.transform is None:
            unit.outputs = [(unit.sample, None, encode_aux_images(unit.sample))]
        else:
            unit.image = read_image(unit.sample.image_path)

    def _plan(self, unit: _Unit) -> None:
        assert unit.sample is not None and unit.image is not None and unit.rng is not None
        unit.plans = self.transform.plan(unit.sample, unit.image.shape, unit.rng)  # type: ignore[union-attr]

    def _render(self, unit: _Unit) -> None:
        assert unit.sample is not None and unit.image is not None and unit.rng is not None and self.transform
        image = unit.image
        if unit.plans is not None:
            outputs: Iterable[tuple[Sample, np.ndarray]] = [(out, render(image)) for out, render in unit.plans]
        else:
            outputs = self.transform(unit.sample, image, unit.rng)
        suffix = self.reader.fmt.image_suffix
        unit.outputs = [
            (out.replace(source_id=unit.source_id, transform=unit.transform), encode_image(pixels, suffix),
             encode_aux_images(out))
            for out, pixels in outputs
        ]

    def _claims(self, unit: _Unit) -> set[str]:
        """Every file :meth:`_store` may write for ``unit``."""
        fmt = self.reader.fmt
        return {rel for out_sample, _, aux in unit.outputs for rel in [*fmt.output_files(out_sample), *aux]}

    def _store(self, unit: _Unit) -> None:
        fmt = self.reader.fmt
        rows = []
        for out_sample, data, aux in unit.outputs:
            written = fmt.write(self.out_dir, out_sample, data)
            if not set(written) <= unit.claimed:  # a format whose output_files() forgets a file: a bug
                raise RuntimeError(f"internal error: {fmt.name} wrote {sorted(set(written) - unit.claimed)} "
                                   "without claiming them")
            label = label_row(out_sample, fmt.image_rel(out_sample.id), unit.split,
                              HeadPose(label_matrix(out_sample, self.biwi_labels)))
            for rel, png in aux.items():
                atomic_write_bytes(self.out_dir / rel, png)
                label[f"{rel.split('/', 1)[0]}_path"] = rel
            rows.append(label)
        unit.record["rows"] = rows


@dataclass
class _Unit:
    """One source sample on its way through :meth:`SplitJob.process_chunk`."""

    key: str
    record: dict[str, Any] = field(default_factory=dict)
    sample: Sample | None = None
    row: dict[str, str] | None = None
    split: str = ""
    source_id: str = ""
    transform: str = ""
    rng: np.random.Generator | None = None
    image: np.ndarray | None = None
    plans: list[tuple[Sample, Callable[[np.ndarray], np.ndarray]]] | None = None
    outputs: list[tuple[Sample, bytes | None, dict[str, bytes]]] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.record = {"key": self.key, "rows": [], "error": None, "filtered": None}


def read_journal(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Finished records of earlier runs by source key; incomplete lines (a killed write) are skipped."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / JOURNAL).glob("rows-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record:  # other lines claim files (io.safety)
                records[record["key"]] = record
    return records


def inherited_columns(row: dict[str, str]) -> dict[str, str]:
    """Transform columns of a source row that a derived sample keeps (mask_type, rotation_deg...)."""
    return {k: v for k, v in row.items() if k not in BASE_COLUMNS and not k.endswith("_path")}


def read_aux_images(src_dir: Path, row: dict[str, str]) -> dict[str, np.ndarray]:
    """The per-pixel maps (``<name>_path`` columns) of a source row, decoded as 8-bit grey."""
    import cv2

    aux = {}
    for key, rel in row.items():
        if key.endswith("_path") and rel:
            path = src_dir / safe_relpath(rel)
            data = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
            if data is None:
                raise DatasetError(path, f"{key} map missing or not a PNG")
            aux[key[: -len("_path")]] = data
    return aux


def encode_aux_images(sample: Sample) -> dict[str, bytes]:
    """PNG bytes of each per-pixel map by its path ``<name>/<id>.png`` (the ``<name>_path`` column)."""
    return {f"{name}/{sample.id}.png": encode_map_png(image) for name, image in sorted(sample.aux_images.items())}


_JOB: SplitJob | None = None  # set once per run before forking workers; never changed per image


#: Source samples per unit of work (see :meth:`SplitJob.process_chunk`).
CHUNK_SIZE = 8


def _process_in_worker(keys: list[str]) -> list[dict[str, Any]]:
    assert _JOB is not None
    return _JOB.process_chunk(keys)  # the worker's journal is closed (flushed already) when it exits


def _chunks(keys: list[str], workers: int) -> list[list[str]]:
    """Consecutive chunks of at most :data:`CHUNK_SIZE`, small enough that every worker gets some."""
    size = max(1, min(CHUNK_SIZE, len(keys) // (4 * workers)))
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def write_split(
    reader: DatasetReader,
    out_dir: Path,
    *,
    transform: Transform | None,
    transform_name: str,
    parameters: dict[str, Any],
    seed: int,
    overwrite: bool = False,
    resume: bool = False,
    limit: int | None = None,
    split: SplitRule | None = None,
    only_split: str | None = None,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    count_columns: tuple[str, ...] = (),
    progress: bool = True,
    data_root: Path | None = None,
    biwi_labels: str = DEFAULT_BIWI_LABELS,
    finalize: Callable[[Path, list[dict[str, str]]], None] | None = None,
    finalize_files: tuple[str, ...] = (),
) -> RunSummary:
    """Read every sample of ``reader``, transform it, write ``out_dir`` in the same native layout.

    Derived samples keep the split of their source (``labels.csv`` of a maskbench source, and its
    recorded rule; a ``split`` that disagrees with it is refused), else ``split`` (default
    :data:`~maskbench.splits.DEFAULT_RULE`, independent of the transform's ``seed``) applied to a raw
    tree, so a test face never reaches a training split. The rule goes into the manifest.
    ``only_split`` keeps only the samples of that split (the others are counted as filtered). ``workers`` > 1 uses a
    process pool; ``shard=(k, n)`` processes source samples whose index is ``k-1`` mod ``n``
    (join the parts with ``maskbench merge``). Neither changes a byte of the output.
    ``out_dir`` is guarded by :class:`~maskbench.io.manifest.SplitWriter`: never the source or
    ``data_root`` (or inside/around them), never a folder maskbench did not write; ``overwrite``
    swaps the new output in only once it is complete. ``finalize(folder, rows)`` may add files of its
    own (``synthesize``'s realism report: ``finalize_files``) once every sample is written, before
    the manifest.

    A source maskbench wrote must verify (:func:`maskbench.splits.verify_split`: checksums, labels
    against the manifest and its split rule), and an unfinished run is never a source; the source's
    file listing goes into the job record and the manifest, so ``--resume`` and ``merge`` refuse a
    source that changed in between.
    """
    keys = reader.keys[:limit] if limit is not None else list(reader.keys)
    if shard is not None:
        keys = keys[shard[0] - 1 :: shard[1]]
    src_rows = labels_by_id(reader.root)  # {} for a raw dataset tree (a malformed labels.csv: named here)
    check_source(reader.root)
    rule = resolve_split_rule(reader.root, bool(src_rows), split)
    source = source_reference(reader.root)
    job_parameters = {**parameters, **({"only_split": only_split} if only_split else {})}
    summary = RunSummary()
    labels = check_biwi_labels(biwi_labels) if reader.fmt.name == "BIWI" else None
    job_record = {"parameters": job_parameters, "split": rule.as_dict(), "seed": seed,
                  "shard": list(shard) if shard else None, "biwi_labels": labels, "source": source}
    with SplitWriter(out_dir, overwrite=overwrite, resume=resume, job=job_record, sources=[reader.root],
                     data_root=data_root) as writer:
        job = SplitJob(reader, writer.write_dir, transform, transform_name, seed, rule, src_rows, only_split,
                       labels or DEFAULT_BIWI_LABELS)
        done = read_journal(writer.write_dir) if resume else {}
        records = [done[k] for k in keys if k in done]
        summary.resumed = len(records)
        bar = progress_bar(total=len(keys), initial=len(records), desc=f"{transform_name or 'copy'} {reader.fmt.name}",
                           unit="img", disable=not progress)
        records += _run_job(job, [k for k in keys if k not in done], workers, bar)
        bar.close()
        _collect(records, writer.rows, summary)
        if finalize is not None:
            writer.claim(finalize_files)
            finalize(writer.write_dir, writer.rows)
        for column in count_columns:
            counts: dict[str, int] = {}
            for row in writer.rows:
                counts[row.get(column, "")] = counts.get(row.get(column, ""), 0) + 1
            summary.extra_counts[column] = counts
        summary.manifest = writer.finish(
            name=out_dir.name, fmt=reader.fmt.name, seed=seed, parameters=job_parameters,
            skipped=summary.skipped, filtered=summary.filtered, source=source,
            shard=shard, split=rule.as_dict(), biwi_labels=labels,
        )
    return summary


def _run_job(job: SplitJob, todo: list[str], workers: int, bar: Any) -> list[dict[str, Any]]:
    """Process the source keys ``todo``: in a pool of ``workers`` forked processes, or here."""
    global _JOB
    records: list[dict[str, Any]] = []
    if workers > 1 and len(todo) > 1:
        _JOB = job
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers) as pool:
                for chunk_records in pool.imap_unordered(_process_in_worker, _chunks(todo, workers)):
                    records.extend(chunk_records)
                    bar.update(len(chunk_records))
        finally:
            _JOB = None
    else:
        try:
            for chunk in _chunks(todo, 1):
                records.extend(job.process_chunk(chunk))
                bar.update(len(chunk))
        finally:
            job.close_journal()
    return records


def _collect(records: list[dict[str, Any]], rows: list[dict[str, str]], summary: RunSummary) -> None:
    """The written rows, skipped samples (sorted) and filtered ones of processed source samples."""
    for record in records:
        rows.extend(record["rows"])
        if record["error"]:
            summary.skipped.append(record["error"])
        if record["filtered"]:
            summary.filtered.setdefault(record["filtered"], []).append(record["key"])
    summary.written = len(rows)
    summary.skipped.sort()


def check_source(src_dir: Path) -> None:
    """Refuse to derive from a maskbench folder that does not verify (a file changed or added, a
    hand-edited labels.csv or manifest): its rows could carry test faces into training or lose a
    copy's lineage. A raw tree (no manifest) is read as it is."""
    if not (src_dir / MANIFEST).is_file():
        return
    problems = verify_split(src_dir)
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise ValueError(f"source {src_dir} does not verify ({problems[0]}{more}); maskbench derives only from "
                         f"sources that do: see `maskbench verify {src_dir}`, then re-create it")


def resolve_split_rule(src_dir: Path, labelled: bool, requested: SplitRule | None) -> SplitRule:
    """The split rule of a split written from ``src_dir``: a labelled (maskbench) source's own rule,
    which ``requested`` may not contradict; else ``requested`` or the default."""
    if not labelled:
        return requested or DEFAULT_RULE
    own = recorded_rule(src_dir) or DEFAULT_RULE
    if requested is not None and requested != own:
        raise ValueError(f"{src_dir.name} already has a split ({own.describe()}); a folder derived from it keeps "
                         f"that split, so --split-by/--split-seed {requested.describe()} would mislabel its rows. "
                         "Drop those options, or derive from a raw tree / a re-import with the split you want.")
    return own


def merge_splits(shard_dirs: list[Path], out_dir: Path, overwrite: bool = False,
                 data_root: Path | None = None) -> dict[str, Any]:
    """Join the outputs of ``--shard 1/N .. N/N`` into one split, identical to an unsharded run.

    The shards must come from the same command (format, parameters, seed, source) and cover every
    index 1..N exactly once. Files are copied; a path present in several shards (a BIWI ``rgb.cal``)
    must have the same checksum in each.
    """
    import shutil

    from maskbench.io.manifest import read_manifest

    manifests = []
    for d in shard_dirs:
        problems = verify_split(d)
        if problems:
            raise ValueError(f"{d} does not verify: {problems[0]}")
        manifests.append(read_manifest(d))
    first = manifests[0]
    for d, m in zip(shard_dirs, manifests):
        for key in ("format", "parameters", "seed", "source", "biwi_labels"):
            if m.get(key) != first.get(key):
                if key == "source":
                    raise ValueError(f"{d} and {shard_dirs[0]} were made from different source contents (the source's "
                                     "file listing or manifest changed between the shard runs); run every shard "
                                     "again on the source as it is now")
                raise ValueError(f"{d}: {key} differs from {shard_dirs[0]}; these are not shards of one run")
        if "shard" not in m:
            raise ValueError(f"{d}: not a shard (no 'shard' entry in its manifest)")
    indices = sorted(m["shard"]["index"] for m in manifests)
    count = first["shard"]["count"]
    if indices != list(range(1, count + 1)) or any(m["shard"]["count"] != count for m in manifests):
        raise ValueError(f"shards cover indices {indices}, expected 1..{count} exactly once")
    sources: dict[str, tuple[Path, str]] = {}
    for d, m in zip(shard_dirs, manifests):
        for rel, digest in m["files"].items():
            if rel == LABELS:
                continue
            if rel in sources and sources[rel][1] != digest:
                raise ValueError(f"{rel} differs between {sources[rel][0]} and {d}")
            sources[rel] = (d, digest)
    rows = [row for d in shard_dirs for row in read_labels(d, allow_empty=True)]
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["id"]] = seen.get(row["id"], 0) + 1
    repeated = sorted(i for i, n in seen.items() if n > 1)
    if repeated:
        raise ValueError(f"the shards hold {len(repeated)} ids more than once (e.g. {repeated[0]}); were they made "
                         "from different versions of the source?")
    with SplitWriter(out_dir, overwrite=overwrite, sources=shard_dirs, data_root=data_root) as writer:
        writer.claim(sorted(sources))
        for rel, (d, _) in sorted(sources.items()):
            target = writer.write_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(d / rel, target)
        writer.rows.extend(rows)
        filtered: dict[str, list[str]] = {}
        for m in manifests:
            for reason, ids in m.get("filtered", {}).items():
                filtered.setdefault(reason, []).extend(ids)
        return writer.finish(
            name=out_dir.name, fmt=first["format"], seed=first["seed"], parameters=first["parameters"],
            skipped=sorted(s for m in manifests for s in m.get("skipped", [])), filtered=filtered,
            source=first.get("source"), split=first.get("split"), biwi_labels=first.get("biwi_labels"),
        )
