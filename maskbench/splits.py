"""The one train/val/test split rule, used by every command that writes, trains on or scores a folder.

A folder's split of a sample is, in this order:

1. the ``split`` column of its ``labels.csv`` (every folder maskbench writes has one, and derived
   folders copy their source's, so a masked or rotated copy of a test face is a test row);
2. for a raw dataset tree (no ``labels.csv``), :class:`SplitRule` applied to the sample id, with the
   rule of :data:`DEFAULT_RULE` (the same rule ``maskbench import`` / ``synthesize`` / ``rotate``
   write by default, so raw and written folders agree).

Rule per format: AFLW2000 is all ``test`` and 300W_LP all ``train`` (their published roles); BIWI is
a seeded ``train_fraction`` / rest draw per frame (``by="frame"``, the published masked-HPE
protocol) or per sequence folder (``by="subject"``: no identity in both splits). ``by="id"`` draws
per sample id for every format (how ``maskbench reproduce --preset real`` splits one AFLW2000-format
folder of photos into training and test parts). ``val_fraction`` > 0 turns that share of the drawn
training part into ``val`` rows: the trainer validates on them and never trains on them.

Every manifest records its rule (``"split": {"by", "seed", "train_fraction", "val_fraction"}``), a derived folder
inherits its source's, and the trainer refuses training folders whose rules disagree, and records
them in the checkpoint so that the evaluator refuses to score a suite drawn with a different rule:
otherwise a frame could be a training frame in one folder and a test frame in another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maskbench.io.manifest import labels_by_id
from maskbench.seeding import unit_fraction

SPLIT_BY = ("frame", "subject", "id")
#: Formats whose split is fixed by the dataset's role; the rule's draw applies to the others.
FIXED_SPLIT = {"AFLW2000": "test", "300W_LP": "train"}


@dataclass(frozen=True)
class SplitRule:
    """How original samples are assigned to ``train`` / ``val`` / ``test`` (see the module docstring)."""

    by: str = "frame"
    seed: int = 0
    train_fraction: float = 0.7
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
        u = unit_fraction(self.seed, key)
        return "train" if u < self.train_fraction - self.val_fraction else "val" if u < self.train_fraction else "test"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitRule:
        return cls(str(d.get("by", "frame")), int(d.get("seed", 0)), float(d.get("train_fraction", 0.7)),
                   float(d.get("val_fraction", 0.0)))

    def describe(self) -> str:
        val = f", {self.val_fraction:.0%} val" if self.val_fraction else ""
        return f"by {self.by}, seed {self.seed}, {self.train_fraction - self.val_fraction:.0%} train{val}"


DEFAULT_RULE = SplitRule()


def recorded_rule(folder: Path) -> SplitRule | None:
    """The rule a maskbench folder's manifest records (older manifests: their ``split_by`` /
    ``split_seed`` parameters); None for a raw tree or a manifest that records none."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(manifest.get("split"), dict):
        return SplitRule.from_dict(manifest["split"])
    params = manifest.get("parameters", {})
    if "split_by" in params or "split_seed" in params:
        return SplitRule(params.get("split_by", "frame"), int(params.get("split_seed", 0)))
    if params.get("command") == "sample":  # sample data drew its BIWI split with the render seed
        return SplitRule(seed=int(manifest.get("seed") or 0))
    return None


def rule_of(folder: Path) -> SplitRule:
    """The rule a folder's rows were drawn with: recorded, else :data:`DEFAULT_RULE` (raw trees)."""
    return recorded_rule(folder) or DEFAULT_RULE


def splits_by_id(folder: Path, format_name: str, ids: list[str],
                 rows: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """Split of each id of a folder: its ``labels.csv`` row (``rows``, already read, or read here),
    else the folder's rule applied to the id. The one place that answers "is this a test row"."""
    if rows is None:
        rows = labels_by_id(folder)
    rule = rule_of(folder)
    out = {}
    for sid in ids:
        row = rows.get(sid)
        out[sid] = row["split"] if row and row.get("split") else rule.split_of(format_name, sid)
    return out


def _effective(rule: SplitRule, fmt: str) -> SplitRule | str:
    return rule.fixed_role(fmt) or rule


def check_same_rule(folders: dict[str, tuple[str, SplitRule]]) -> None:
    """Raise ValueError when folders of one format (name -> (format, rule)) were split differently.

    Folders whose format has a fixed role under their rule (300W_LP, AFLW2000 unless split by id)
    agree with each other whatever their seeds.
    """
    seen: dict[str, tuple[str, SplitRule]] = {}
    for name, (fmt, rule) in folders.items():
        if fmt in seen and _effective(seen[fmt][1], fmt) != _effective(rule, fmt):
            other, other_rule = seen[fmt]
            raise ValueError(
                f"{name} and {other} are {fmt} folders split by different rules ({rule.describe()} vs "
                f"{other_rule.describe()}): a frame could be trained on in one and scored in the other. Write them "
                f"with the same --split-by/--split-seed (or `maskbench import --split-by ...` the raw tree first "
                f"and derive every variant from that import)."
            )
        seen.setdefault(fmt, (name, rule))
