"""One source sample's way through a run: read, label, transform, encode, claim, write, journal.

A transform is a pure function ``(sample, image_bgr, rng) -> iterable of (sample, image_bgr)``; its
randomness comes only from the per-sample generator it is handed, so outputs do not depend on
order, worker count or sharding. A transform whose labels need only the image's shape may also
offer ``plan(sample, image_shape, rng) -> [(sample, warp), ...]`` with ``warp(image_bgr) ->
image_bgr`` (the albumentations split of parameters and pixels); the label halves of a chunk then
run back to back (see :meth:`VariantJob.process_chunk`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.datasets.aflw2000 import SOURCE_ANGLE_COLUMN, max_abs_stored_angle_deg
from maskbench.datasets.base import DatasetError, DatasetReader
from maskbench.datasets.biwi import DEFAULT_BIWI_LABELS, label_matrix
from maskbench.identity import SOURCE_SHA_COLUMN, source_sha256
from maskbench.io.atomic import atomic_write_bytes, encode_image, encode_map_png, read_image
from maskbench.io.labels import BASE_COLUMNS, label_row, safe_relpath
from maskbench.io.manifest import JOURNAL
from maskbench.seeding import sample_rng
from maskbench.splits import SplitRule
from maskbench.types import HeadPose, Sample

Transform = Callable[[Sample, np.ndarray, np.random.Generator], Iterable[tuple[Sample, np.ndarray]]]


@dataclass
class VariantJob:
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
                self._guard(unit, self._pixels)
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
            if SOURCE_SHA_COLUMN not in extra:  # its identity (maskbench.identity); hashed only when not carried
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

    def _pixels(self, unit: _Unit) -> None:
        assert unit.sample is not None and unit.image is not None and unit.rng is not None and self.transform
        image = unit.image
        if unit.plans is not None:
            outputs: Iterable[tuple[Sample, np.ndarray]] = [(out, warp(image)) for out, warp in unit.plans]
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
    """One source sample on its way through :meth:`VariantJob.process_chunk`."""

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
