"""The one-direction data flow: read a tree, transform each sample, write a split.

``write_split`` is what every command that produces a split runs (``import`` with no transform;
``rotate`` and ``synthesize`` with theirs). A transform is a pure function
``(sample, image_bgr, rng) -> (sample, image_bgr)``; its randomness comes only from the per-sample
generator it is handed, so outputs do not depend on order or worker count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from maskbench.datasets.base import DatasetError, DatasetReader, ReadError
from maskbench.io.atomic import read_image
from maskbench.io.manifest import LABELS, SplitWriter, read_labels, source_reference
from maskbench.seeding import default_split, sample_rng
from maskbench.types import Sample

Transform = Callable[[Sample, np.ndarray, np.random.Generator], Iterable[tuple[Sample, np.ndarray]]]


@dataclass
class RunSummary:
    """What a run did: written / skipped (with reasons) / filtered counts."""

    written: int = 0
    skipped: list[ReadError] = field(default_factory=list)
    filtered: dict[str, list[str]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"written: {self.written}", f"skipped: {len(self.skipped)}"]
        out += [f"  {e}" for e in self.skipped[:20]]
        if len(self.skipped) > 20:
            out.append(f"  ... and {len(self.skipped) - 20} more (all listed in manifest.json)")
        for reason, ids in self.filtered.items():
            out.append(f"filtered ({reason}): {len(ids)}")
        return out


def source_splits(src_dir: Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` rows by id for a maskbench-written source ({} for a raw dataset tree)."""
    if not (src_dir / LABELS).is_file():
        return {}
    return {row["id"]: row for row in read_labels(src_dir)}


def write_split(
    reader: DatasetReader,
    out_dir: Path,
    *,
    transform: Transform | None,
    transform_name: str,
    parameters: dict[str, Any],
    seed: int,
    overwrite: bool = False,
    limit: int | None = None,
    split_by: str = "frame",
    split_seed: int = 0,
    progress: bool = True,
) -> RunSummary:
    """Read every sample of ``reader``, transform it, write ``out_dir`` in the same native layout.

    Derived samples keep the split of their source (``labels.csv`` of a maskbench source, else
    the default split of the dataset drawn with ``split_seed``, which is independent of the
    transform's ``seed``), so a test face never reaches a training split.
    """
    fmt = reader.fmt
    src_rows = source_splits(reader.root)
    summary = RunSummary()
    keys = reader.keys[:limit] if limit is not None else reader.keys
    with SplitWriter(out_dir, overwrite=overwrite) as writer:
        for key in tqdm(keys, desc=f"{transform_name or 'copy'} {fmt.name}", unit="img", disable=not progress):
            sample = reader.read(key)
            if sample is None:
                continue
            row = src_rows.get(sample.id)
            split = row["split"] if row else default_split(fmt.name, sample.id, split_seed, by=split_by)
            source_id = (row.get("source_id") if row else "") or sample.id
            try:
                if transform is None:
                    outputs: Iterable[tuple[Sample, np.ndarray | None]] = [(sample, None)]
                else:
                    image = read_image(sample.image_path)
                    outputs = transform(sample, image, sample_rng(seed, sample.id, transform_name))
                for out_sample, out_image in outputs:
                    if transform is not None:
                        out_sample = out_sample.replace(source_id=source_id, transform=transform_name)
                    fmt.write(out_dir, out_sample, out_image)
                    writer.add(out_sample, fmt.image_rel(out_sample.id), split)
                    summary.written += 1
            except DatasetError as exc:
                reader.errors.append(ReadError(exc.path, exc.problem))
        summary.skipped = list(reader.errors)
        summary.filtered = dict(reader.filtered)
        summary.manifest = writer.finish(
            name=out_dir.name, fmt=fmt.name, seed=seed,
            parameters={**parameters, "split_by": split_by, "split_seed": split_seed},
            skipped=summary.skipped, filtered=summary.filtered, source=source_reference(reader.root),
        )
    return summary
