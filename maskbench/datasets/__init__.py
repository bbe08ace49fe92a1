"""Readers and writers for BIWI, 300W_LP and AFLW2000 in their native layouts."""

from maskbench.datasets.base import DatasetError, DatasetReader, resolve_dataset
from maskbench.datasets.registry import detect_format, get_format, open_reader

__all__ = ["DatasetError", "DatasetReader", "detect_format", "get_format", "open_reader", "resolve_dataset"]
