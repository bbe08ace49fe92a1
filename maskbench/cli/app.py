"""The ``maskbench`` command group; the commands register themselves on it (:mod:`maskbench.cli`)."""

from __future__ import annotations

import click

from maskbench import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="maskbench")
def main() -> None:
    """maskbench: masked and rotated head-pose datasets (BIWI, 300W_LP, AFLW2000) and a benchmark.

    Datasets are found under the data root (--data-root, $MASKBENCH_DATA or ./data) by name, so
    `--src BIWI` means <data-root>/BIWI; a path works too. No real data at hand? Run
    `maskbench sample --dataset BIWI` to render a small synthetic tree in the native layout.
    """
