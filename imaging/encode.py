"""Pixels to PNG bytes.

zlib level 1 instead of Pillow's default 6: on a 12 MP RGBA cut-out it is several times faster for
files a little larger (figures in BENCHMARKS.md), and the encoder is on every job's critical path.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

PNG = "image/png"


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """HxW (grey) or HxWx4 (RGBA) or HxWx3 (RGB) uint8 to PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format="PNG", compress_level=compress_level)
    return out.getvalue()
