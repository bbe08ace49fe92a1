"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) therefore sees either the old file, no file, or the complete new
file, never a half-written one. Temporary names start with ``.tmp-`` so that a cleanup pass and
``maskbench verify`` can recognise leftovers of a killed run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from maskbench.errors import DatasetError, require_file
from maskbench.io.safety import TMP_PREFIX  # temporary names, as io.safety recognises them


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path`` (same directory)."""
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        try:
            write(tmp)
        except FileNotFoundError:  # the first file of its folder (maybe made by another worker by now)
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)  # a second FileNotFoundError is a real one (a missing source file)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """:func:`atomic_write` of ``data`` (the common case, with fewer system calls)."""
    atomic_write(path, lambda tmp: _write_all(tmp, data))


def _write_all(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 text with ``\\n`` line ends."""
    atomic_write_bytes(path, text.encode("utf-8"))


#: Encoder parameters; fixed so that the same pixels always give the same bytes.
JPEG_QUALITY = 95
PNG_COMPRESSION = 3


def encode_image(image_bgr: np.ndarray, suffix: str) -> bytes:
    """Encode a BGR uint8 image as ``.jpg`` or ``.png`` bytes (deterministic settings)."""
    suffix = suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    else:
        raise ValueError(f"unsupported image suffix {suffix!r}")
    ok, buf = cv2.imencode(suffix, image_bgr, params)
    if not ok:
        raise ValueError(f"could not encode image as {suffix}")
    return buf.tobytes()


def image_bytes(image: np.ndarray | bytes, suffix: str) -> bytes:
    """Bytes to write for a writer's ``image`` argument: encoded here from pixels, or as handed in
    when the caller encoded them already (``bytes`` in ``suffix``'s format)."""
    return image if isinstance(image, bytes) else encode_image(image, suffix)


def encode_map_png(image: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit single-channel map; a binary (0/255) map as a 1-bit PNG, which encodes
    about 6x faster and is 2x smaller. OpenCV reads it back as 0/255 (``IMREAD_GRAYSCALE``), PIL as
    mode ``"1"`` (``.convert("L")`` gives 0/255)."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    if image.ndim == 2 and image.dtype == np.uint8 and not cv2.countNonZero(cv2.inRange(image, 1, 254)):
        params += [cv2.IMWRITE_PNG_BILEVEL, 1]
    ok, buf = cv2.imencode(".png", image, params)
    if not ok:
        raise ValueError("could not encode map as .png")
    return buf.tobytes()


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8; raises DatasetError naming the file when it cannot, or
    when a JPEG or PNG is cut short (OpenCV would decode the part that is there and pad the rest
    grey, so a truncated photo would be scored, masked or trained on as if whole)."""
    require_file(path, "image")
    data = np.fromfile(str(path), dtype=np.uint8)
    problem = truncation(data[:8].tobytes(), data[-64:].tobytes())
    if problem:
        raise DatasetError(path, problem)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(path, "not a decodable image (truncated or not an image)")
    return image


def truncation(head: bytes, tail: bytes) -> str | None:
    """Why an encoded image with these first and last bytes is cut short, or None: a JPEG must end
    with its end-of-image marker (padding after it allowed), a PNG with its IEND chunk; other
    formats are not checked."""
    if head.startswith(b"\xff\xd8"):
        ok = tail.rstrip(b"\0\r\n \t").endswith(b"\xff\xd9")
    elif head.startswith(b"\x89PNG"):
        ok = tail.endswith(b"IEND\xaeB`\x82")
    else:
        ok = True
    if ok:
        return None
    return "truncated image (the file ends before its end marker; an interrupted download or copy?)"
