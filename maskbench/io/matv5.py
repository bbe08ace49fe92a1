"""MAT v5 files of plain numeric matrices, read and written without scipy's general machinery.

The 3DDFA releases (AFLW2000-3D, 300W_LP) keep each sample's labels in a small MAT v5 file of
real numeric matrices (``Pose_Para``, ``pt2d``, ``Shape_Para``...). scipy reads and writes those in
about 0.1-0.2 ms each, which is most of the per-sample cost of ``maskbench rotate`` besides the
image itself. The two functions here handle exactly that case and hand anything else (structs,
cells, strings, sparse, complex, logical, big-endian files, anything malformed) to scipy, so the
results are always scipy's:

- :func:`mat_bytes` gives the bytes ``scipy.io.savemat(f, data, do_compression=False,
  oned_as="row")`` writes, byte for byte, after a fixed 116-byte text header;
- :func:`load_mat_bytes` gives the arrays ``scipy.io.loadmat`` returns (same shapes, dtypes and
  values; without the ``__header__``/``__version__``/``__globals__`` keys).

Both are tested for equality with scipy on the real fixture files and on edge cases.

Layout (MathWorks "MAT-File Format", level 5): a 128-byte header (116 text, 8 subsystem offset,
version 0x0100, endian indicator ``IM`` for little-endian), then data elements. An element is a tag
(uint32 type, uint32 byte count) and its data padded to 8 bytes, or the "small" form where both
counts share the first 4 bytes and up to 4 data bytes follow. A variable is an ``miMATRIX``
element holding array flags, dimensions, name and the real part; ``miCOMPRESSED`` wraps one
element in zlib.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from typing import Any

import numpy as np
import scipy.io

#: Fixed text for the descriptive header. scipy writes the creation time there, which would make
#: identical inputs give different bytes.
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: maskbench".ljust(116, b" ")

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
#: Data-type code (miINT8...) <-> little-endian numpy dtype.
MI_DTYPE = {1: "<i1", 2: "<u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8", 12: "<i8", 13: "<u8"}
_MI_CODE = {np.dtype(v).str[1:]: k for k, v in MI_DTYPE.items()}
_MI_NATIVE = {k: (np.dtype(v), np.dtype(v).newbyteorder("=")) for k, v in MI_DTYPE.items()}
#: Array class (mxDOUBLE_CLASS...) by numpy dtype; the numeric classes are 6..15.
MX_CLASS = {"f8": 6, "f4": 7, "i1": 8, "u1": 9, "i2": 10, "u2": 11, "i4": 12, "u4": 13, "i8": 14, "u8": 15}
_NUMERIC_CLASSES = frozenset(MX_CLASS.values())


class _NotPlain(Exception):
    """The file holds something only scipy handles."""


# ---------------------------------------------------------------------------------------- writing
def _element(mi_type: int, data: bytes) -> bytes:
    n = len(data)
    if n <= 4:
        return struct.pack("<I", (n << 16) + mi_type) + data.ljust(4, b"\0")
    return struct.pack("<II", mi_type, n) + data + b"\0" * (-n % 8)


def _matrix_element(name: str, value: Any) -> bytes | None:
    """A real numeric matrix (2+ dims, not empty) as an ``miMATRIX`` element, else None."""
    if not (isinstance(value, np.ndarray) and value.ndim >= 2 and value.size > 0 and name.isidentifier()
            and not name.startswith("_") and name.isascii()):
        return None
    code = value.dtype.str[1:]
    if code not in MX_CLASS:
        return None
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    body = (
        _element(MI_UINT32, struct.pack("<II", MX_CLASS[code], 0))
        + _element(MI_INT32, struct.pack(f"<{value.ndim}i", *value.shape))
        + _element(MI_INT8, name.encode("ascii"))
        + _element(_MI_CODE[code], value.tobytes(order="F"))
    )
    return struct.pack("<II", MI_MATRIX, len(body)) + body


def mat_bytes(data: dict[str, Any]) -> bytes:
    """MAT v5 bytes of ``data`` (uncompressed, 1-D arrays as rows) with :data:`MAT_HEADER`."""
    parts = [_matrix_element(k, v) for k, v in data.items()]
    if any(p is None for p in parts):
        buf = io.BytesIO()
        scipy.io.savemat(buf, data, do_compression=False, oned_as="row")
        return MAT_HEADER + buf.getvalue()[116:]
    return MAT_HEADER + bytes(8) + b"\x00\x01IM" + b"".join(parts)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- reading
def _read_element(buf: bytes, pos: int) -> tuple[int, bytes, int]:
    """(type, data, next position) of the element at ``pos``."""
    if pos + 8 > len(buf):
        raise _NotPlain
    first, second = struct.unpack_from("<II", buf, pos)
    if first >> 16:  # small element: byte count in the high half, data in the next 4 bytes
        n = first >> 16
        if n > 4:
            raise _NotPlain
        return first & 0xFFFF, buf[pos + 4 : pos + 4 + n], pos + 8
    end = pos + 8 + second
    if end > len(buf):
        raise _NotPlain
    return first, buf[pos + 8 : end], end + (-second % 8 if first != MI_COMPRESSED else 0)


def _parse_matrix(body: bytes) -> tuple[str, np.ndarray]:
    mi, flags, pos = _read_element(body, 0)
    if mi != MI_UINT32 or len(flags) != 8:
        raise _NotPlain
    flags_class = struct.unpack_from("<I", flags)[0]
    if flags_class & 0xE00 or (flags_class & 0xFF) not in _NUMERIC_CLASSES:  # complex/global/logical
        raise _NotPlain
    mi, dims_raw, pos = _read_element(body, pos)
    if mi != MI_INT32 or len(dims_raw) < 8:
        raise _NotPlain
    dims = struct.unpack(f"<{len(dims_raw) // 4}i", dims_raw)
    mi, name, pos = _read_element(body, pos)
    if mi != MI_INT8 or not name:
        raise _NotPlain
    mi, real, pos = _read_element(body, pos)
    if mi not in MI_DTYPE or pos < len(body):  # an imaginary part or anything after it
        raise _NotPlain
    dtype, native = _MI_NATIVE[mi]
    if len(real) != dtype.itemsize * math.prod(dims):
        raise _NotPlain
    array = np.frombuffer(real, dtype).reshape(dims, order="F").astype(native, order="F")
    return name.decode("ascii"), array


def _plain_variables(raw: bytes) -> dict[str, np.ndarray]:
    if len(raw) < 128 or raw[126:128] != b"IM" or raw[124:126] != b"\x00\x01":
        raise _NotPlain
    out: dict[str, np.ndarray] = {}
    pos = 128
    while pos < len(raw):
        mi, data, pos = _read_element(raw, pos)
        if mi == MI_COMPRESSED:
            try:
                inner = zlib.decompress(data)
            except zlib.error:
                raise _NotPlain from None
            mi, data, _ = _read_element(inner, 0)
        if mi != MI_MATRIX:
            raise _NotPlain
        name, array = _parse_matrix(data)
        if name in out:
            raise _NotPlain
        out[name] = array
    return out


def load_mat_bytes(raw: bytes) -> dict[str, Any]:
    """Variables of a MAT v5 file as ``scipy.io.loadmat`` returns them, minus the ``__*__`` keys.

    Raises what scipy raises for a file that is not a MAT file."""
    try:
        return _plain_variables(raw)
    except (_NotPlain, struct.error, ValueError):
        data = scipy.io.loadmat(io.BytesIO(raw))
        return {k: v for k, v in data.items() if not k.startswith("__")}


def load_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`load_mat_bytes` of a file."""
    with open(path, "rb") as f:
        return load_mat_bytes(f.read())
