"""Deprecated: renamed :mod:`maskbench.torch_dataset` (a module named ``torch`` inside the package
read as if it shadowed the library it wraps). Kept for one release."""

import warnings

from maskbench.torch_dataset import FaceCrop, HeadPoseDataset

warnings.warn("maskbench.torch is deprecated: use maskbench.torch_dataset", DeprecationWarning, stacklevel=2)

__all__ = ["FaceCrop", "HeadPoseDataset"]
