"""The fast MAT v5 reader/writer gives exactly what scipy gives, and falls back to scipy otherwise."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io

from maskbench.io import matv5


def scipy_bytes(data: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, data, do_compression=False, oned_as="row")
    return matv5.MAT_HEADER + buf.getvalue()[116:]


def scipy_load(raw: bytes) -> dict[str, Any]:
    return {k: v for k, v in scipy.io.loadmat(io.BytesIO(raw)).items() if not k.startswith("__")}


def assert_same_variables(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert type(a[k]) is type(b[k]), k
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert a[k].dtype.isnative and a[k].flags.writeable, k
        if isinstance(a[k], np.ndarray) and a[k].dtype.hasobject:  # a struct: compare what it holds
            assert repr(a[k]) == repr(b[k]), k
        else:
            np.testing.assert_array_equal(a[k], b[k])


def edge_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    return [
        {"Pose_Para": rng.normal(size=(1, 7)).astype(np.float32), "roi": np.array([[1, 2, 3, 4]], np.int16)},
        {"big_endian": np.arange(6, dtype=">f8").reshape(2, 3), "x": np.ones((1, 1), np.uint8)},
        {"cube": rng.integers(-9, 9, (2, 3, 4)).astype(np.int64), "u": np.arange(5, dtype=np.uint64)[None]},
        {"strided": np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2], "f": np.asfortranarray(rng.normal(size=(3, 5)))},
        {"abcd": np.array([[7]], np.int8), "ab": np.array([[1, 2]], np.int16), "abcde": np.array([[3.5]], np.float32)},
        # only scipy handles these; the fast path must hand them over unchanged
        {"one_d": np.arange(3.0), "s": "text"},
        {"c": np.array([[1 + 2j]]), "b": np.array([[True, False]])},
        {"st": {"a": np.ones((2, 2))}, "empty": np.zeros((0, 3))},
    ]


@pytest.mark.parametrize("data", edge_cases(), ids=lambda d: ",".join(d))
def test_written_bytes_and_read_values_equal_scipys(data: dict[str, Any]) -> None:
    raw = matv5.mat_bytes(data)
    assert raw == scipy_bytes(data)
    assert_same_variables(matv5.load_mat_bytes(raw), scipy_load(raw))


def test_compressed_files_read_like_scipy() -> None:
    data = edge_cases()[0] | {"Shape_Para": np.linspace(0, 1, 199)[:, None]}
    buf = io.BytesIO()
    scipy.io.savemat(buf, data, do_compression=True)
    assert_same_variables(matv5.load_mat_bytes(buf.getvalue()), scipy_load(buf.getvalue()))


def test_garbage_raises_what_scipy_raises() -> None:
    raw = matv5.mat_bytes(edge_cases()[0])
    for bad in (b"not a mat file at all" * 10, raw[:150]):
        with pytest.raises(Exception) as ours:
            matv5.load_mat_bytes(bad)
        with pytest.raises(Exception) as theirs:
            scipy_load(bad)
        assert type(ours.value) is type(theirs.value)


def test_real_3ddfa_files_read_and_rewrite_like_scipy(real_dir: Path) -> None:
    paths = sorted(real_dir.rglob("*.mat"))
    assert len(paths) >= 9
    for path in paths:
        raw = path.read_bytes()
        ours = matv5.load_mat_bytes(raw)
        assert_same_variables(ours, scipy_load(raw))
        assert matv5.mat_bytes(ours) == scipy_bytes(ours)
