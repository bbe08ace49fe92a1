"""Records from the datasets: ``maskbench.open_dataset(path)`` for your own data loader.

``open_dataset(path)`` reads a BIWI, 300W_LP or AFLW2000 tree (raw, or any split maskbench wrote)
and gives a sized, indexable sequence of records (:mod:`maskbench.transforms` describes the
fields): the labels are read once, up front; an image is decoded only when its record is asked for.
Each record also says its ``split`` (see :mod:`maskbench.splits`) and ``source_id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from maskbench.datasets.aflw2000 import PROTOCOL_MAX_ABS_ANGLE_DEG
from maskbench.datasets.base import DatasetFormat
from maskbench.folder import VariantFolder
from maskbench.io.atomic import read_image
from maskbench.types import Sample

__all__ = ["Records", "open_dataset", "record_of"]


def record_of(sample: Sample, fmt: DatasetFormat, image_bgr: Any, split: str = "", source_id: str = "") -> dict[str, Any]:
    """The record of a dataset sample (BGR image)."""
    rec: dict[str, Any] = {"id": sample.id, "image": image_bgr, "color": "BGR", "pose": sample.pose, "box": sample.bbox,
                           "split": split, "source_id": source_id or sample.id, "_sample": sample, "_format": fmt}
    if sample.landmarks_px is not None:
        rec["landmarks"] = sample.landmarks_px
    if sample.camera_matrix is not None:
        rec["camera"] = sample.camera_matrix
    if sample.head_center_mm is not None:
        rec["head_center_mm"] = sample.head_center_mm
    return rec


class Records(Sequence[dict[str, Any]]):
    """The samples of one dataset folder as records (see the module docstring).

    ``split`` keeps only ``"train"`` or ``"test"`` rows; ``protocol_filter`` applies the AFLW2000
    99-degree protocol. Unreadable files are listed in ``errors`` (path: problem), never dropped silently.
    """

    def __init__(self, path: str | Path, split: str | None = None, protocol_filter: bool = False) -> None:
        folder = VariantFolder(path)
        self.root = folder.path
        self.format = folder.format
        samples = folder.samples()
        self.filtered: dict[str, list[str]] = {}
        if protocol_filter:  # AFLW2000: on the original photo's angles (copies too)
            samples, dropped = folder.protocol_filtered(samples)
            if dropped:
                self.filtered[f"|angle| > {PROTOCOL_MAX_ABS_ANGLE_DEG:g} deg"] = dropped
        self.samples = [s for s in samples if split is None or folder.split_of(s.id) == split]
        self._split = {s.id: folder.split_of(s.id) for s in self.samples}
        self._source = {s.id: folder.source_id(s.id) for s in self.samples}
        self.errors = folder.errors

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        s = self.samples[i]
        return record_of(s, self.format, read_image(s.image_path), self._split[s.id], self._source[s.id])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"Records({self.root.name!r}, format {self.format.name}, {len(self)} samples)"


def open_dataset(path: str | Path, split: str | None = None, protocol_filter: bool = False) -> Records:
    """Records of a dataset folder (raw BIWI / 300W_LP / AFLW2000 tree or a maskbench split)."""
    return Records(path, split=split, protocol_filter=protocol_filter)
