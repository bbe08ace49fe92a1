"""Deprecated: moved to :mod:`maskbench.pipeline` (``write_split`` is ``write_variant``,
``merge_splits`` is ``merge_variants``, ``SplitJob`` is ``VariantJob``). Kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

from maskbench import pipeline

_RENAMED = {"write_split": "write_variant", "merge_splits": "merge_variants", "SplitJob": "VariantJob"}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name, name)
    if not hasattr(pipeline, new):
        raise AttributeError(f"module 'maskbench.runs' has no attribute {name!r}")
    warnings.warn(f"maskbench.runs.{name} is deprecated: use maskbench.pipeline.{new}", DeprecationWarning, stacklevel=2)
    return getattr(pipeline, new)
