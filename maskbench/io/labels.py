"""``labels.csv``: one row per sample of a split, beside the dataset's native files.

Columns: ``id, image, split, yaw_deg, pitch_deg, roll_deg, x_min, y_min, x_max, y_max, source_id,
transform`` followed by extra columns in sorted order. Angles follow :mod:`maskbench.geometry`;
coordinates are pixels. Paths read from it are validated (relative, no ``..``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from maskbench.errors import DatasetError
from maskbench.types import HeadPose, Sample

LABELS = "labels.csv"


BASE_COLUMNS = [
    "id", "image", "split", "yaw_deg", "pitch_deg", "roll_deg",
    "x_min", "y_min", "x_max", "y_max", "source_id", "transform",
]


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


#: |yaw| bins (degrees, lower edges inclusive) that coverage and realism are counted in.
YAW_BINS_DEG = (0.0, 30.0, 60.0, 181.0)
#: ``landmark_source`` of a face the mask placement's detector missed (written unmasked).
MISSED_SOURCE = "missed"


def yaw_bin(abs_yaw: float) -> str:
    """The :data:`YAW_BINS_DEG` bin of an |yaw|, as ``"0-30"``, ``"30-60"``, ``"60-180"`` (else ``"other"``)."""
    for lo, hi in zip(YAW_BINS_DEG[:-1], YAW_BINS_DEG[1:]):
        if lo <= abs_yaw < hi:
            return f"{lo:g}-{min(hi, 180):g}"
    return "other"


def missed_faces(rows: Iterable[Mapping[str, str]]) -> dict[str, Any] | None:
    """The faces a masked variant's detector missed (written unmasked): count, ids, and faces / missed per
    |yaw| bin (the label's yaw: for counting only). None for rows without a ``landmark_source`` column."""
    rows = [r for r in rows if "landmark_source" in r]
    if not rows:
        return None
    per_bin: dict[str, dict[str, int]] = {}
    for r in rows:
        b = per_bin.setdefault(yaw_bin(abs(float(r["yaw_deg"]))), {"faces": 0, "missed": 0})
        b["faces"] += 1
        b["missed"] += r["landmark_source"] == MISSED_SOURCE
    ids = sorted(r["id"] for r in rows if r["landmark_source"] == MISSED_SOURCE)
    return {"count": len(ids), "by_abs_yaw_deg": dict(sorted(per_bin.items())), "ids": ids}
