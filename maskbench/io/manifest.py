"""The output contract: ``manifest.json`` beside the native layout and ``labels.csv``
(:mod:`maskbench.io.labels`); reading a manifest, and :func:`verify`.

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

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from maskbench.errors import DatasetError
from maskbench.io import safety
from maskbench.io.labels import LABELS, read_labels
from maskbench.io.safety import JOURNAL, MANIFEST, files_under

MANIFEST_VERSION = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    problem = safety.manifest_problem(data)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    return data


def listed_files(split_dir: Path) -> list[str]:
    """All files under ``split_dir`` except the manifest, the lock and the journal, as sorted posix paths."""
    return files_under(split_dir)


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
    parents = {p for rel in files for p in safety.parents_of(rel)}
    for rel in inventory.dirs:
        if rel != JOURNAL and rel not in parents:
            problems.append(f"{rel}/: folder holding no listed file")
    if JOURNAL in inventory.dirs:
        problems.append(f"{JOURNAL}/: journal of a run is present (an unfinished run, or one killed just after "
                        "writing its manifest)")
    if safety.kind_of(manifest) != safety.DATASET:
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
