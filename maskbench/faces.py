"""Deprecated: renamed :mod:`maskbench.identity` (which face a sample shows; this module never
detected faces). Kept for one release."""

import warnings

from maskbench.identity import FACE_KEY_HEX, SOURCE_SHA_COLUMN, face_key, source_sha256

warnings.warn("maskbench.faces is deprecated: use maskbench.identity", DeprecationWarning, stacklevel=2)

__all__ = ["FACE_KEY_HEX", "SOURCE_SHA_COLUMN", "face_key", "source_sha256"]
