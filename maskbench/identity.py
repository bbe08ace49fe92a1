"""Which face a sample shows, whatever folder, copy or split rule it comes through.

A face is known by the sha256 of its original image file: every split maskbench writes carries it
per row (``source_sha256``: computed when an original is first written, inherited by masked and
rotated copies and copies of copies), and a raw tree's image is hashed when asked. Two folders
written by different rules, or a copy of a folder under new ids, are compared face by face: a
checkpoint records the faces it was trained and validated on, and the evaluator marks exactly the
scored faces among them (:func:`maskbench.evaluation.evaluator.evaluate_suite`).
"""

from __future__ import annotations

from collections.abc import Mapping

from maskbench.errors import DatasetError
from maskbench.io.manifest import sha256_file
from maskbench.types import Sample

#: labels.csv column: sha256 of the original image a row comes from.
SOURCE_SHA_COLUMN = "source_sha256"
#: Hex digits of the sha256 that name a face in checkpoints (80 bits: no collision in any dataset).
FACE_KEY_HEX = 20


def source_sha256(sample: Sample) -> str:
    """The sha256 of an original sample's image file (what its copies will carry); a file the
    system will not let us read raises :class:`~maskbench.errors.DatasetError` naming it."""
    try:
        return sha256_file(sample.image_path)
    except OSError as exc:
        raise DatasetError(sample.image_path, f"image cannot be read ({exc.strerror or exc})") from None


def face_key(sample: Sample, row: Mapping[str, str] | None) -> str:
    """The identity of the face a sample shows: its row's ``source_sha256`` (a maskbench split), else
    the hash of its own image (a raw tree, or an original row written before the column existed);
    a copy written before the column existed is known only by its source id (``id:<source_id>``)."""
    row = row or {}
    carried = row.get(SOURCE_SHA_COLUMN, "")
    if carried:
        return carried[:FACE_KEY_HEX]
    if row.get("transform"):
        return f"id:{row.get('source_id') or sample.id}"
    return source_sha256(sample)[:FACE_KEY_HEX]
