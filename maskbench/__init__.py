"""maskbench: masked and rotated head-pose datasets plus a benchmark.

The pose convention used everywhere is documented in :mod:`maskbench.geometry`. Public API:

* :class:`HeadPose`, :class:`BBox`, :class:`Sample` (:mod:`maskbench.types`);
* :func:`open_dataset`: records of a dataset folder for your own loader (:mod:`maskbench.records`);
* :class:`RandomMask`, :class:`RandomInPlaneRotation`, :class:`Compose`: transforms on records
  (:mod:`maskbench.transforms`);
* ``maskbench.torch_dataset.HeadPoseDataset``: the ``torch.utils.data`` wrapper (imports torch).

Everything else (``maskbench.datasets``, ``maskbench.pipeline``, ``maskbench.models``, ...) serves the
command line and may change without notice.
"""

from typing import Any

from maskbench.types import BBox, HeadPose, Sample
from maskbench.version import __version__

__all__ = ["BBox", "Compose", "HeadPose", "RandomInPlaneRotation", "RandomMask", "Sample", "__version__",
           "open_dataset"]

_LAZY = {"open_dataset": "maskbench.records", "RandomMask": "maskbench.transforms",
         "RandomInPlaneRotation": "maskbench.transforms", "Compose": "maskbench.transforms"}


def __getattr__(name: str) -> Any:  # imported on first use: `import maskbench` stays light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskbench' has no attribute {name!r}")
