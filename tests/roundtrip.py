"""Shared check: a tree read, written back unchanged and read again gives identical samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskbench.datasets import open_reader


def assert_write_read_identical(src: Path, out: Path) -> None:
    reader = open_reader(src)
    first = {s.id: s for s in reader}
    assert first, f"no samples read from {src}"
    for s in first.values():
        reader.fmt.write(out, s, None)
    second = {s.id: s for s in open_reader(out, fmt=reader.fmt)}
    assert second.keys() == first.keys()
    for k, s in first.items():
        assert second[k].pose == s.pose and second[k].bbox == s.bbox
        if s.landmarks_px is not None:
            np.testing.assert_array_equal(second[k].landmarks_px, s.landmarks_px)
        assert second[k].image_path.read_bytes() == s.image_path.read_bytes()
