"""Progress bars for long work: tqdm, redrawn sparingly when not shown on a terminal.

On a terminal the bar updates as usual. When its stream is not a terminal (a log file, CI, the
per-stage logs of ``make reproduce``) every redraw would be appended to the log, so the bar is
redrawn at most every :data:`LOG_INTERVAL_S` seconds (plus the final state).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:  # type: ignore[type-arg]
    """``tqdm(iterable, **kwargs)``; ``mininterval`` defaults to :data:`LOG_INTERVAL_S` off a terminal."""
    stream = kwargs.get("file") or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
    return tqdm(iterable, **kwargs)
