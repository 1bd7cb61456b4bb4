"""Builders of REAL image files (Pillow, or raw PNG/ICC bytes via struct+zlib) for the brand_kits tests."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def raw_png(
    width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, extra: bytes = b""
) -> bytes:
    """A PNG built by hand: IHDR (+ extra chunks) + one IDAT of ``rows`` (filter bytes included)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def header_only_png(width: int, height: int) -> bytes:
    """A few dozen bytes declaring a huge RGB image (a decompression bomb's header)."""
    return raw_png(width, height, 8, 2, b"\x00" * 16)


def png_16bit_rgb(array: np.ndarray) -> bytes:
    """16-bit RGB PNG (Pillow cannot write one) from an (h, w, 3) uint16 array."""
    height, width, _ = array.shape
    big_endian = array.astype(">u2").tobytes()
    stride = width * 6
    rows = b"".join(b"\x00" + big_endian[y * stride : (y + 1) * stride] for y in range(height))
    return raw_png(width, height, 16, 2, rows)


def chunk_types(png: bytes) -> list[bytes]:
    assert png.startswith(PNG_SIGNATURE)
    kinds, offset = [], len(PNG_SIGNATURE)
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kinds.append(png[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


def decode(png: bytes) -> np.ndarray:
    with Image.open(BytesIO(png)) as image:
        assert image.mode == "RGB"
        return np.asarray(image).copy()


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)


def linear_rgb_icc(description: str = "Linear RGB test profile") -> bytes:
    """An ICC v2 matrix/TRC display profile: sRGB primaries with gamma 1.0 (linear light)."""
    text = description.encode("ascii") + b"\x00"
    desc = (
        b"desc\x00\x00\x00\x00"
        + struct.pack(">I", len(text))
        + text
        + b"\x00" * 8
        + b"\x00\x00\x00"
        + b"\x00" * 67
    )
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">I", 1) + struct.pack(">H", 0x0100) + b"\x00\x00"
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = struct.pack(">I", len(tags)), b""
    for signature, payload in tags:
        padded = payload + b"\x00" * (-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += padded
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + b"\x00" * 12
        + b"acsp"
        + b"\x00" * 24
        + b"\x00\x00\x00\x00"
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\x00" * 48
    )
    assert len(header) == 128
    return header + table + body


def photo(width: int = 640, height: int = 480) -> Image.Image:
    """An RGB test picture: red ramps left to right, green top to bottom (orientation is visible)."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    array[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    array[..., 2] = 90
    return Image.fromarray(array)
