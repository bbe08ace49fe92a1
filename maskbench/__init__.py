"""maskbench: masked and rotated head-pose datasets plus a benchmark.

The pose convention used everywhere is documented in :mod:`maskbench.geometry`.
"""

__version__ = "0.1.0"

from maskbench.types import BBox, HeadPose, Sample  # noqa: E402

__all__ = ["BBox", "HeadPose", "Sample", "__version__"]
