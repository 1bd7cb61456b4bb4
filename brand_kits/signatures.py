"""Name an image format from its first bytes, to word the refusal of a file Pillow could not open.

Used only AFTER ``Image.open(..., formats=ALLOWED)`` failed, and only to choose between "unsupported
image format" (it is an image, just not one we take) and "not a valid image". Sniffing the magic bytes
ourselves means a refused file never reaches any other Pillow plugin.
"""

from __future__ import annotations

# (offset, magic, name). Order matters only where one magic is a prefix of another.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),
    (0, b"MM\x00+", "TIFF"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"8BPS", "PSD"),
    (0, b"%!PS", "EPS"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS"),
    (0, b"%PDF-", "PDF"),
    (0, b"SIMPLE  =", "FITS"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"icns", "ICNS"),
    (0, b"DDS ", "DDS"),
    (0, b"qoif", "QOI"),
    (0, b"gimp xcf", "XCF"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (0, b"\x76\x2f\x31\x01", "OpenEXR"),
    (0, b"#?RADIANCE", "HDR"),
)

_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

_HEIF_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}


def sniff_format(data: bytes) -> str | None:
    """The format the bytes look like, e.g. ``"TIFF"``; ``None`` if they match no known image magic."""
    head = bytes(data[:64])
    if head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head.lstrip()[:5].lower() in (b"<svg ", b"<?xml"):
        return "SVG" if b"<svg" in bytes(data[:4096]).lower() else None
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:1] == b"P" and head[1:2] in b"123456" and head[2:3] in (b" ", b"\t", b"\n", b"\r"):
        return "PNM"
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None
