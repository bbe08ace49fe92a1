"""The one train/val/test split rule, used by every command that writes, trains on or scores a folder.

A folder's split of a sample is, in this order:

1. the ``split`` column of its ``labels.csv`` (every folder maskbench writes has one, and derived
   folders copy their source's, so a masked or rotated copy of a test face is a test row);
2. for a raw dataset tree (no ``labels.csv``), :class:`SplitRule` applied to the sample id, with the
   rule of :data:`DEFAULT_RULE` (the same rule ``maskbench import`` / ``synthesize`` / ``rotate``
   write by default, so raw and written folders agree).

Rule per format: AFLW2000 is all ``test`` and 300W_LP all ``train`` (their published roles); BIWI is
split by sequence (``by="subject"``, the default): a seeded draw of 16 of its 24 sequence folders
for training and 8 for testing, the literature's BIWI 70/30 protocol (FSA-Net's
``TYY_create_db_biwi_70_30.py``, used by 6DRepNet, TriNet and others), so no person is on both
sides. The draw ranks the 24 sequence names ``01``..``24``, not the folders present, so any subset
of BIWI (or the sample data) is split as the whole would be. ``by="frame"`` draws per frame
(``train_fraction``, 0.7 by default): consecutive, near-identical frames of every person land on both
sides, and a report of a model trained on such a split says so. ``by="id"`` draws
per sample id for every format (how ``maskbench reproduce --preset real`` splits one AFLW2000-format
folder of photos into training and test parts). ``val_fraction`` > 0 turns that share of the drawn
training part into ``val`` rows: the trainer validates on them and never trains on them.

Every manifest records its rule (``"split": {"by", "seed", "train_fraction", "val_fraction"}``), and a derived
folder inherits its source's. Whether a face was trained on is decided face by face, not rule by rule:
:mod:`maskbench.identity` (a checkpoint records the identities of its training and validation faces, and
the evaluator marks the scored faces among them, whatever folders or rules they come through).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maskbench.io.labels import labels_by_id
from maskbench.io.manifest import verify as verify_files
from maskbench.seeding import unit_fraction

SPLIT_BY = ("frame", "subject", "id")
#: BIWI's sequence folders; the published 70/30 protocol trains on 16 of them.
BIWI_SEQUENCES = tuple(f"{k:02d}" for k in range(1, 25))
BIWI_TRAIN_SEQUENCES = 16
#: Default training share of a per-frame or per-id draw.
FRAME_TRAIN_FRACTION = 0.7
#: What a report says of a model trained on (or a suite of) a per-frame BIWI split.
FRAME_SPLIT_WARNING = ("BIWI split by frame: frames of the test people were trained on (consecutive frames are "
                       "near-identical), so this is not the published 16/8-sequence protocol")
#: Formats whose split is fixed by the dataset's role; the rule's draw applies to the others.
FIXED_SPLIT = {"AFLW2000": "test", "300W_LP": "train"}


@dataclass(frozen=True)
class SplitRule:
    """How original samples are assigned to ``train`` / ``val`` / ``test`` (see the module docstring)."""

    by: str = "subject"
    seed: int = 0
    train_fraction: float = BIWI_TRAIN_SEQUENCES / len(BIWI_SEQUENCES)
    val_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.by not in SPLIT_BY:
            raise ValueError(f"split 'by' must be one of {', '.join(SPLIT_BY)}, got {self.by!r}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if not 0.0 <= self.val_fraction < self.train_fraction:
            raise ValueError(f"val_fraction must be in [0, train_fraction), got {self.val_fraction}")

    def fixed_role(self, format_name: str) -> str | None:
        """The split every sample of a format gets regardless of the draw (AFLW2000 test, 300W_LP
        train), or None when the rule draws (BIWI; every format with ``by="id"``)."""
        return None if self.by == "id" else FIXED_SPLIT.get(format_name.upper())

    def split_of(self, format_name: str, sample_id: str) -> str:
        """``train``, ``val`` or ``test`` for an original sample of a format."""
        name = format_name.upper()
        role = self.fixed_role(name)
        if role is not None:
            return role
        if name not in ("BIWI", *FIXED_SPLIT):
            raise ValueError(f"unknown format {format_name!r}")
        key = sample_id.split("/")[0] if self.by == "subject" else sample_id
        if self.by == "subject" and key in BIWI_SEQUENCES:  # exactly round(fraction x 24) sequences
            rank = _sequence_rank(self.seed)[key]
            n_train = round(self.train_fraction * len(BIWI_SEQUENCES))
            n_val = round(self.val_fraction * len(BIWI_SEQUENCES))
            return "train" if rank < n_train - n_val else "val" if rank < n_train else "test"
        u = unit_fraction(self.seed, key)  # a per-frame draw, or a sequence name BIWI does not have
        return "train" if u < self.train_fraction - self.val_fraction else "val" if u < self.train_fraction else "test"

    def sequences(self, split: str) -> list[str]:
        """BIWI sequence names of ``split`` under a per-subject rule (sorted)."""
        return sorted(s for s in BIWI_SEQUENCES if self.split_of("BIWI", f"{s}/frame_00000") == split)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitRule:
        """A recorded rule; a record without ``by`` predates the per-subject default (per frame, 0.7)."""
        if "by" not in d:
            return cls("frame", int(d.get("seed", 0)), float(d.get("train_fraction", FRAME_TRAIN_FRACTION)),
                       float(d.get("val_fraction", 0.0)))
        return cls(str(d["by"]), int(d.get("seed", 0)), float(d["train_fraction"]), float(d.get("val_fraction", 0.0)))

    def describe(self) -> str:
        if self.by == "subject":
            n = len(BIWI_SEQUENCES)
            n_train, n_val = round(self.train_fraction * n), round(self.val_fraction * n)
            val = f" ({n_val} of them val)" if n_val else ""
            return f"by subject, seed {self.seed}, {n_train} of {n} BIWI sequences train{val}"
        val = f", {self.val_fraction:.0%} val" if self.val_fraction else ""
        return f"by {self.by}, seed {self.seed}, {self.train_fraction - self.val_fraction:.0%} train{val}"


def default_train_fraction(by: str) -> float:
    """The training share a rule gets when none is given: 16/24 sequences by subject, else 0.7."""
    return BIWI_TRAIN_SEQUENCES / len(BIWI_SEQUENCES) if by == "subject" else FRAME_TRAIN_FRACTION


@functools.lru_cache(maxsize=64)
def _sequence_rank(seed: int) -> dict[str, int]:
    """Rank (0..23) of each BIWI sequence in the seeded draw; the first ones are training."""
    order = sorted(BIWI_SEQUENCES, key=lambda s: (unit_fraction(seed, f"sequence\0{s}"), s))
    return {s: k for k, s in enumerate(order)}


DEFAULT_RULE = SplitRule()


def recorded_rule(folder: Path) -> SplitRule | None:
    """The rule a maskbench folder's manifest records (older manifests: their ``split_by`` /
    ``split_seed`` parameters); None for a raw tree or a manifest that records none."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    if isinstance(manifest.get("split"), dict):
        return SplitRule.from_dict(manifest["split"])
    params = manifest.get("parameters", {})
    if not isinstance(params, dict):
        return None
    if "split_by" in params or "split_seed" in params:
        by = params.get("split_by", "frame")
        return SplitRule(by, int(params.get("split_seed", 0)), default_train_fraction(by))
    if params.get("command") == "sample":  # old sample data drew its BIWI split per frame with the render seed
        return SplitRule("frame", int(manifest.get("seed") or 0), FRAME_TRAIN_FRACTION)
    return None


def rule_of(folder: Path) -> SplitRule:
    """The rule a folder's rows were drawn with: recorded, else :data:`DEFAULT_RULE` (raw trees)."""
    return recorded_rule(folder) or DEFAULT_RULE


def splits_by_id(folder: Path, format_name: str, ids: list[str],
                 rows: dict[str, dict[str, str]] | None = None, rule: SplitRule | None = None) -> dict[str, str]:
    """Split of each id of a folder: its ``labels.csv`` row (``rows``, already read, or read here),
    else the folder's rule (``rule``, already read, or read here) applied to the id. The one place
    that answers "is this a test row"."""
    if rows is None:
        rows = labels_by_id(folder)
    if rule is None:
        rule = rule_of(folder)
    out = {}
    for sid in ids:
        row = rows.get(sid)
        out[sid] = row["split"] if row and row.get("split") else rule.split_of(format_name, sid)
    return out


def split_column_problems(manifest: Mapping[str, Any], rows: list[dict[str, str]]) -> list[str]:
    """Rows of a split whose ``split`` is not what its manifest's recorded rule gives their original
    sample (``source_id``): a hand-edited ``labels.csv`` that would move test faces into training."""
    rule, fmt = manifest.get("split"), manifest.get("format")
    if not isinstance(rule, dict) or not isinstance(fmt, str):
        return []
    try:
        split_rule = SplitRule.from_dict(rule)
        wrong = [r["id"] for r in rows if r["split"] != split_rule.split_of(fmt, r.get("source_id") or r["id"])]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"manifest.json: unreadable split rule ({exc})"]
    if not wrong:
        return []
    return [f"labels.csv: {len(wrong)} rows whose split is not what the recorded rule ({split_rule.describe()}) "
            f"gives their original sample (e.g. {wrong[0]})"]


def verify_split(split_dir: Path, checksums: bool = True) -> list[str]:
    """Every problem of a maskbench folder (:func:`maskbench.io.manifest.verify`) and, for a split,
    rows whose split contradicts its recorded rule (:func:`split_column_problems`). What
    ``maskbench verify`` prints and what a command checks before deriving from a source."""
    return verify_files(split_dir, checksums=checksums, row_check=split_column_problems)
