"""Read a PNG's text chunks (``tEXt``, ``zTXt``, ``iTXt``) without decoding pixels, refusing hostile files.

A PNG is an 8-byte signature and then chunks: 4-byte big-endian length, 4-byte type, data, CRC-32 of
type + data (PNG spec, ISO/IEC 15948 §5.3). This walks them with hard limits before anything is kept:
file size, pixel count from ``IHDR`` (a 30000x30000 "bomb" is refused though its pixels are never
decoded), bytes per text chunk *after* decompression (a few KB of zlib can inflate to gigabytes), all
text together, and the number of chunks. Every CRC is checked, so a damaged file is refused instead of
half-read. Pillow is not involved: no image decoder ever sees the bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_HEADER = struct.Struct(">I4s")


class PngTextError(ValueError):
    """The bytes are not a PNG we will read; the message says why."""


class PngTooManyPixels(PngTextError):
    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(f"image too large: {width}x{height} pixels (max {max_pixels})")
        self.width, self.height, self.max_pixels = width, height, max_pixels


@dataclass(frozen=True)
class PngTextLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    #: one text chunk, after decompression (a generation recipe is a few KB)
    max_text_bytes: int = 1024 * 1024
    max_total_text_bytes: int = 4 * 1024 * 1024
    max_text_chunks: int = 64
    max_chunks: int = 100_000


@dataclass(frozen=True)
class PngText:
    width: int
    height: int
    #: keyword -> text; a repeated keyword keeps its last value (as Pillow does)
    text: dict[str, str] = field(default_factory=dict)


def read_png_text(data: bytes, limits: PngTextLimits = PngTextLimits()) -> PngText:  # noqa: B008 - frozen
    """The image size and text chunks of PNG ``data``; raises :class:`PngTextError` when refused."""
    if len(data) > limits.max_bytes:
        raise PngTextError(f"file too large: {len(data)} bytes (max {limits.max_bytes})")
    if not data.startswith(PNG_SIGNATURE):
        raise PngTextError("not a PNG file (its first bytes are not the PNG signature)")
    width = height = 0
    text: dict[str, str] = {}
    text_bytes = text_chunks = 0
    for number, (kind, body) in enumerate(_chunks(data, limits.max_chunks)):
        if number == 0:
            width, height = _header(kind, body, limits.max_pixels)
        elif kind == b"IEND":
            return PngText(width=width, height=height, text=text)
        elif kind in TEXT_CHUNKS:
            text_chunks += 1
            if text_chunks > limits.max_text_chunks:
                raise PngTextError(f"more than {limits.max_text_chunks} text chunks")
            keyword, value = _text_chunk(kind, body, limits.max_text_bytes)
            text_bytes += len(value)
            if text_bytes > limits.max_total_text_bytes:
                raise PngTextError(f"its text chunks hold more than {limits.max_total_text_bytes} bytes")
            text[keyword] = value
    raise PngTextError("the file is truncated (no IEND chunk)")


def _chunks(data: bytes, max_chunks: int) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of each chunk, CRC-checked; stops at the end of the bytes."""
    pos = len(PNG_SIGNATURE)
    count = 0
    while pos < len(data):
        count += 1
        if count > max_chunks:
            raise PngTextError(f"more than {max_chunks} chunks")
        if pos + 12 > len(data):
            raise PngTextError("the file is truncated (a chunk header is cut off)")
        length, kind = _HEADER.unpack_from(data, pos)
        end = pos + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data):
            raise PngTextError("the file is truncated (a chunk is longer than the rest of the file)")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[pos + 4 : end]) != crc:
            raise PngTextError(f"the file is corrupt (checksum of chunk {kind!r} does not match)")
        yield kind, data[pos + 8 : end]
        pos = end + 4


def _header(kind: bytes, body: bytes, max_pixels: int) -> tuple[int, int]:
    if kind != b"IHDR" or len(body) != 13:
        raise PngTextError("the file is corrupt (it does not start with an IHDR chunk)")
    width, height = struct.unpack_from(">II", body)
    if width == 0 or height == 0:
        raise PngTextError(f"the file is corrupt (image size {width}x{height})")
    if width * height > max_pixels:
        raise PngTooManyPixels(width, height, max_pixels)
    return width, height


def _text_chunk(kind: bytes, body: bytes, max_bytes: int) -> tuple[str, str]:
    """(keyword, text) of one text chunk (PNG spec §11.3.4)."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        raise PngTextError(f"the file is corrupt (a {kind.decode()} chunk has no valid keyword)")
    name = keyword.decode("latin-1")
    if kind == b"tEXt":
        raw, encoding = rest, "latin-1"
    elif kind == b"zTXt":
        raw = _inflate(rest[1:], name, max_bytes) if rest[:1] == b"\0" else _bad(name)
        encoding = "latin-1"
    else:
        if len(rest) < 2:
            raise PngTextError(f"the file is corrupt (iTXt chunk {name!r} is cut short)")
        compressed, method = rest[0], rest[1]
        _language, _, rest = rest[2:].partition(b"\0")
        _translated, _, raw = rest.partition(b"\0")
        if compressed:
            raw = _inflate(raw, name, max_bytes) if method == 0 else _bad(name)
        encoding = "utf-8"
    if len(raw) > max_bytes:
        raise PngTextError(f"text chunk {name!r} is {len(raw)} bytes (max {max_bytes})")
    try:
        return name, raw.decode(encoding)
    except UnicodeDecodeError:
        raise PngTextError(f"text chunk {name!r} is not valid UTF-8") from None


def _inflate(raw: bytes, name: str, max_bytes: int) -> bytes:
    """Decompress at most ``max_bytes`` (+1 to notice more): a zlib bomb stops here, never in memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise PngTextError(f"the file is corrupt (text chunk {name!r} does not decompress)") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PngTextError(f"text chunk {name!r} decompresses to more than {max_bytes} bytes")
    if not inflater.eof:
        raise PngTextError(f"the file is corrupt (text chunk {name!r} is cut short)")
    return out


def _bad(name: str) -> bytes:
    raise PngTextError(f"text chunk {name!r} uses an unknown compression method")
