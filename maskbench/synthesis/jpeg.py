"""A source JPEG's quality, and re-encoding mask pixels at it on the source's 8x8 grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                      92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def jpeg_quality_of(path: str | Path) -> int | None:
    """IJG quality (1..100) of a JPEG file from its luminance quantisation table; None if not a JPEG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker, length = head[i + 1], int.from_bytes(head[i + 2 : i + 4], "big")
        if marker == 0xDB:
            body = head[i + 4 : i + 2 + length]
            j = 0
            while j < len(body):
                precision, table_id = body[j] >> 4, body[j] & 15
                size = 128 if precision else 64
                values = np.frombuffer(body[j + 1 : j + 1 + size], dtype=">u2" if precision else np.uint8)
                if table_id == 0 and len(values) == 64:
                    scale = 100.0 * float(values.astype(np.float64).sum()) / float(_IJG_LUMA.sum())
                    q = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
                    return int(np.clip(round(q), 1, 100))
                j += 1 + size
        if marker == 0xDA:
            return None
        i += 2 + length
    return None


def jpeg_like(image_bgr: np.ndarray, patch: np.ndarray, origin: tuple[int, int], drawn: np.ndarray,
               quality: int) -> np.ndarray:
    """Encode/decode the drawn pixels at ``quality`` on the image's own 8x8 grid (into ``patch``)."""
    bx0, by0 = origin
    h, w = patch.shape[:2]
    gx0, gy0 = bx0 - bx0 % 8, by0 - by0 % 8
    gx1, gy1 = min(-(-(bx0 + w) // 8) * 8, image_bgr.shape[1]), min(-(-(by0 + h) // 8) * 8, image_bgr.shape[0])
    canvas = image_bgr[gy0:gy1, gx0:gx1].copy()
    canvas[by0 - gy0 : by0 - gy0 + h, bx0 - gx0 : bx0 - gx0 + w] = patch
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return patch
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)[by0 - gy0 : by0 - gy0 + h, bx0 - gx0 : bx0 - gx0 + w]
    return cv2.copyTo(decoded, drawn.view(np.uint8), patch)
