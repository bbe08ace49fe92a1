"""The ``maskbench`` command line: :mod:`~maskbench.cli.app` (the group), :mod:`~maskbench.cli.options`
(what commands share), and the commands, which only parse options and call the library:
:mod:`~maskbench.cli.data` (sample, import, rotate, synthesize, merge, verify, info),
:mod:`~maskbench.cli.scoring` (evaluate, judge, compare), :mod:`~maskbench.cli.models` (train, export,
reproduce)."""

from maskbench.cli import data, leaderboard, models, scoring  # noqa: F401 (importing a module registers its commands)
from maskbench.cli.app import main

__all__ = ["main"]
