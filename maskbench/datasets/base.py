"""Reader/writer protocol shared by the dataset formats, discovery and clear errors.

A *format* module (``biwi``, ``w300lp``, ``aflw2000``) provides a :class:`DatasetFormat` object:

* ``discover(root)`` lists the sample units of a tree (cheap: directory listing only);
* ``read(root, key)`` turns one unit into a :class:`~maskbench.types.Sample` or raises
  :class:`DatasetError` with a one-line message naming the file;
* ``write(out_root, sample, image)`` writes one sample in the native layout and returns the
  relative paths it wrote; ``image`` is BGR pixels, bytes already encoded in the format's
  ``image_suffix``, or None (copy the source image file).

:class:`DatasetReader` runs ``discover`` + ``read`` over a tree, yields the good samples and
keeps the bad ones (path and reason) in ``errors`` so that nothing is dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from maskbench.errors import DatasetError, require_file  # noqa: F401 (re-exported; their home is maskbench.errors)
from maskbench.types import BBox, Sample

DATA_ROOT_ENV = "MASKBENCH_DATA"


class DatasetFormat(Protocol):
    """What a dataset format module exposes (see the module docstring)."""

    name: str
    image_suffix: str

    def image_rel(self, sample_id: str) -> str: ...

    def looks_like(self, root: Path) -> bool: ...

    def discover(self, root: Path) -> list[str]: ...

    def read(self, root: Path, key: str) -> Sample: ...

    def write(self, out_root: Path, sample: Sample, image: np.ndarray | bytes | None) -> list[str]: ...

    def output_files(self, sample: Sample) -> list[str]:
        """Every path :meth:`write` may write for ``sample`` (a writer claims them first)."""
        ...

    def keep_sample(self, sample: Sample, options: dict[str, Any]) -> str | None: ...

    def box_for(self, sample: Sample) -> BBox: ...

    def move_native(self, sample: Sample, affine: np.ndarray, camera_rotation: np.ndarray) -> dict[str, Any]: ...


@dataclass
class ReadError:
    """A sample that could not be read: the file and what was wrong with it."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class DatasetReader:
    """Iterate the good samples of a tree; collect the bad ones.

    ``options`` are format options such as ``{"max_abs_angle_deg": 99}`` for the AFLW2000
    protocol; samples a filter removes are counted in ``filtered`` (reason -> ids), never silently.
    """

    root: Path
    fmt: DatasetFormat
    options: dict[str, Any] = field(default_factory=dict)
    errors: list[ReadError] = field(default_factory=list)
    filtered: dict[str, list[str]] = field(default_factory=dict)
    _keys: list[str] | None = None

    @property
    def keys(self) -> list[str]:
        if self._keys is None:
            self._keys = self.fmt.discover(self.root)
        return self._keys

    def read_checked(self, key: str) -> tuple[Sample | None, ReadError | None, str | None]:
        """Read one unit without recording anything: (sample, error, filter reason)."""
        try:
            sample = self.fmt.read(self.root, key)
        except DatasetError as exc:
            return None, self.error_for(exc), None
        reason = self.fmt.keep_sample(sample, self.options)
        return (None, None, reason) if reason is not None else (sample, None, None)

    def error_for(self, exc: DatasetError) -> ReadError:
        """The error record of a failed sample, its path relative to the tree (manifests are portable
        and name no machine's folders)."""
        try:
            path = Path(exc.path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:  # outside the tree (an output folder): the name is enough
            path = Path(exc.path).name
        return ReadError(path, exc.problem)

    def read(self, key: str) -> Sample | None:
        """Read one unit; None (and an entry in ``errors`` or ``filtered``) if it is not usable."""
        sample, error, reason = self.read_checked(key)
        if error is not None:
            self.errors.append(error)
        if reason is not None:
            self.filtered.setdefault(reason, []).append(key)
        return sample

    def __iter__(self) -> Iterator[Sample]:
        for key in self.keys:
            sample = self.read(key)
            if sample is not None:
                yield sample

    def __len__(self) -> int:
        return len(self.keys)


# ------------------------------------------------------------------------------------------
# Resolution of names under the data root (the format registry is maskbench.datasets.registry)
# ------------------------------------------------------------------------------------------
def default_data_root() -> Path:
    """``$MASKBENCH_DATA`` if set, else ``./data``, made absolute once, here."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "data").expanduser().resolve()


def resolve_dataset(name_or_path: str, data_root: Path | None = None) -> Path:
    """Turn ``BIWI`` into ``<data-root>/BIWI``; an existing path is taken as it is.

    Raises FileNotFoundError with a message that says how to get data when nothing is there.
    """
    root = (data_root or default_data_root()).resolve()
    candidate = Path(name_or_path).expanduser()
    if candidate.is_absolute() or candidate.exists() or os.sep in name_or_path:
        path = candidate.resolve()
    else:
        path = root / name_or_path
    if not path.is_dir():
        raise FileNotFoundError(
            f"dataset {name_or_path!r} not found at {path}. Point --data-root (or ${DATA_ROOT_ENV}) at the "
            f"folder that holds your copy of it, pass --src /path/to/it, or create sample data with "
            f"`maskbench sample --dataset <BIWI|300W_LP|AFLW2000> --out {path}`."
        )
    return path


def resolve_output(name_or_path: str, data_root: Path | None = None) -> Path:
    """Where an output split goes, by one rule: a relative path is taken under the data root
    (``BIWI_masked`` and ``variants/BIWI_masked`` both land under it), an absolute one (``~``
    expanded) as given. Whether maskbench may write there is :mod:`maskbench.io.safety`'s call."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_absolute():
        return candidate.resolve()
    return ((data_root or default_data_root()).resolve() / candidate).resolve()


def list_files(root: Path, pattern: str) -> list[Path]:
    """Sorted ``root.glob(pattern)``; sorting makes every run see the same order."""
    return sorted(root.glob(pattern))


def guarded(path: Path, what: str, fn: Callable[[], Any]) -> Any:
    """Run a parser and turn any low-level exception into a one-line DatasetError."""
    try:
        return fn()
    except DatasetError:
        raise
    except Exception as exc:  # parsers raise many types on garbage input
        raise DatasetError(path, f"cannot read {what}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
