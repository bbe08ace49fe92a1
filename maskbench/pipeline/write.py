"""Writing a variant: read a tree, transform each sample, write the native layout, labels and manifest.

:func:`write_variant` is what every command that produces a dataset folder runs (``import`` with no
transform; ``rotate`` and ``synthesize`` with theirs); the split rule of its rows, the source checks
and the manifest are decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskbench.datasets.base import DatasetReader
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, check_biwi_labels
from maskbench.io.labels import labels_by_id
from maskbench.io.manifest import MANIFEST, source_reference
from maskbench.io.writer import VariantWriter
from maskbench.pipeline.job import Transform, VariantJob
from maskbench.pipeline.journal import read_journal
from maskbench.pipeline.workers import run_job
from maskbench.progress import progress_bar
from maskbench.splits import DEFAULT_RULE, SplitRule, recorded_rule, verify_split


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
        missed = self.manifest.get("missed_faces")
        if missed is not None:
            out.append(f"faces the detector missed (written unmasked, listed in manifest.json): {missed['count']}; "
                       "by |yaw| " + ", ".join(f"{b} {v['missed']} of {v['faces']}"
                                             for b, v in missed["by_abs_yaw_deg"].items()))
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


def write_variant(
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
    ``out_dir`` is guarded by :class:`~maskbench.io.manifest.VariantWriter`: never the source or
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
    with VariantWriter(out_dir, overwrite=overwrite, resume=resume, job=job_record, sources=[reader.root],
                     data_root=data_root) as writer:
        job = VariantJob(reader, writer.write_dir, transform, transform_name, seed, rule, src_rows, only_split,
                       labels or DEFAULT_BIWI_LABELS)
        done = read_journal(writer.write_dir) if resume else {}
        records = [done[k] for k in keys if k in done]
        summary.resumed = len(records)
        bar = progress_bar(total=len(keys), initial=len(records), desc=f"{transform_name or 'copy'} {reader.fmt.name}",
                           unit="img", disable=not progress)
        records += run_job(job, [k for k in keys if k not in done], workers, bar)
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
