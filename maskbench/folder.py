"""One dataset folder, opened once: its format, split rule, ``labels.csv`` rows and samples.

Every question about a folder's rows is answered here, from one read of each file: which split a
sample is in (:mod:`maskbench.splits` keeps the rule), which original it was made from
(``source_id``), which face it shows (:mod:`maskbench.identity`), whether the AFLW2000 protocol keeps
it. ``maskbench.open_dataset`` (records), the trainer, the evaluator and ``baseline:mean`` all read
folders through :class:`VariantFolder`::

    folder = VariantFolder(path)               # a raw BIWI / 300W_LP / AFLW2000 tree or a maskbench split
    folder.samples(split="test")             # Sample objects, in the reader's order
    folder.split_of(sample.id), folder.source_key(sample), folder.face(sample)
    kept, dropped = folder.protocol_filtered(folder.samples())   # AFLW2000: |angle| <= 99 on the original
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from maskbench.datasets.aflw2000 import outside_protocol
from maskbench.datasets.base import DatasetFormat
from maskbench.datasets.registry import open_reader
from maskbench.identity import face_key
from maskbench.io.labels import labels_by_id
from maskbench.splits import SplitRule, rule_of, splits_by_id
from maskbench.types import Sample


class VariantFolder:
    """The rows of one dataset folder with their split, source and face identity (read once)."""

    def __init__(self, path: str | Path, fmt: DatasetFormat | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        reader = open_reader(self.path, fmt=fmt)
        self.format: DatasetFormat = reader.fmt
        #: the split rule the rows were drawn with (recorded in the manifest, else the default)
        self.rule: SplitRule = rule_of(self.path)
        #: ``labels.csv`` rows by sample id (empty for a raw tree)
        self.rows: dict[str, dict[str, str]] = labels_by_id(self.path)
        self._samples: list[Sample] = list(reader)
        self._split = splits_by_id(self.path, self.format.name, [s.id for s in self._samples], self.rows, self.rule)
        #: samples whose files could not be read ("path: problem"); never dropped silently
        self.errors: list[str] = [str(e) for e in reader.errors]

    def __len__(self) -> int:
        return len(self._samples)

    def __repr__(self) -> str:
        return f"VariantFolder({self.path.name!r}, format {self.format.name}, {len(self)} samples)"

    def samples(self, split: str | None = None) -> list[Sample]:
        """The samples of one split (``train``, ``val``, ``test``; None: all), in the reader's order."""
        return [s for s in self._samples if split is None or self._split[s.id] == split]

    def split_of(self, sample_id: str) -> str:
        return self._split[sample_id]

    def source_id(self, sample_id: str) -> str:
        """The original sample a row was made from (itself for an original)."""
        return self.rows.get(sample_id, {}).get("source_id") or sample_id

    def source_key(self, sample: Sample) -> str:
        """``<format>:<source_id>``: shared by an original and its masked and rotated copies."""
        return f"{self.format.name}:{self.source_id(sample.id)}"

    def face(self, sample: Sample) -> str:
        """The identity of the face (:func:`maskbench.identity.face_key`; may hash a raw tree's image)."""
        return face_key(sample, self.rows.get(sample.id))

    def protocol_filtered(self, samples: Sequence[Sample]) -> tuple[list[Sample], list[str]]:
        """AFLW2000 folders: the samples inside the 99-degree protocol (judged on the original photo's
        stored angles, so a copy stays paired with its source) and the ids dropped; other formats
        keep everything."""
        if self.format.name != "AFLW2000":
            return list(samples), []
        kept, dropped = [], []
        for s in samples:
            if outside_protocol(s, self.rows.get(s.id)):
                dropped.append(s.id)
            else:
                kept.append(s)
        return kept, dropped


#: Deprecated name of :class:`VariantFolder` (kept for one release).
SplitFolder = VariantFolder
