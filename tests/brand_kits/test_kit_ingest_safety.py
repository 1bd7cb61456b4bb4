"""validate_image refuses hostile or broken uploads (bad_inputs.md A1-A4) with typed, readable errors."""

from __future__ import annotations

import random
import struct
import warnings
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kit_images import encode, header_only_png, linear_rgb_icc, photo, png_chunk
from PIL import Image, ImageFile

from brand_kits import (
    ImageTooLarge,
    ImageTooSmall,
    IngestLimits,
    InvalidImage,
    KitError,
    UnsupportedImageFormat,
    validate_image,
)


@pytest.fixture(autouse=True)
def pillow_globals_untouched() -> Iterator[None]:
    """Every test here also checks that validation leaves Pillow's process-wide settings alone."""
    max_pixels = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    yield
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS == max_pixels
    assert list(warnings.filters) == filters


# --- A1 / A2: decompression bombs and our own pixel limit -------------------------------------------


def test_png_header_declaring_30000x30000_is_too_large() -> None:
    bomb = header_only_png(30_000, 30_000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge, match=r"image too large \(max 40 MP\)"):
        validate_image(bomb, "bomb.png")


def test_header_between_our_limit_and_pillows_is_refused_before_decoding() -> None:
    # 8000x6000 = 48 MP: over our 40 MP, under Pillow's 89 MP warning threshold.
    with pytest.raises(ImageTooLarge, match=r"max 40 MP\): 8000x6000 is 48 MP"):
        validate_image(header_only_png(8000, 6000), "big.png")


def test_pillow_warning_zone_is_escalated_even_when_our_limit_is_higher() -> None:
    # 10000x10000 is in Pillow's warning zone (> MAX_IMAGE_PIXELS, < 2x). Our own limit is set above it,
    # so only the escalated DecompressionBombWarning can stop it.
    assert Image.MAX_IMAGE_PIXELS < 100_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    limits = IngestLimits(max_pixels=500_000_000)
    with pytest.raises(ImageTooLarge, match="image too large"):
        validate_image(header_only_png(10_000, 10_000), "zone.png", limits)


def test_normal_image_over_a_small_pixel_limit_is_rejected() -> None:
    data = encode(photo(640, 480), "PNG")
    with pytest.raises(ImageTooLarge, match=r"image too large \(max 0.1 MP\): 640x480 is 0.3072 MP"):
        validate_image(data, "photo.png", IngestLimits(max_pixels=100_000))
    assert validate_image(data, "photo.png", IngestLimits(max_pixels=640 * 480)).width == 640


def test_file_over_the_byte_limit_is_rejected_before_parsing() -> None:
    data = encode(photo(640, 480), "PNG")
    with pytest.raises(ImageTooLarge, match=r"image too large \(max [\d.]+ MB\): the file is"):
        validate_image(data, "photo.png", IngestLimits(max_bytes=len(data) - 1))
    assert validate_image(data, "photo.png", IngestLimits(max_bytes=len(data))).width == 640


def test_image_with_a_short_side_under_min_side_is_too_small() -> None:
    with pytest.raises(ImageTooSmall, match=r"image too small \(min 64 px on the short side\): 300x40"):
        validate_image(encode(photo(300, 40), "PNG"), "strip.png")


# --- A3: truncated, empty, random ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_file_is_not_a_valid_image(fmt: str) -> None:
    data = encode(photo(640, 480), fmt)
    with pytest.raises(InvalidImage, match=r"not a valid image \(file is truncated or corrupt\)"):
        validate_image(data[: len(data) * 2 // 3], f"cut.{fmt.lower()}")


def test_zero_byte_file_is_not_a_valid_image() -> None:
    with pytest.raises(InvalidImage, match=r"not a valid image \(the file is empty\)"):
        validate_image(b"", "empty.png")


def test_random_bytes_named_png_are_not_a_valid_image() -> None:
    noise = random.Random(1234).randbytes(4096)
    with pytest.raises(InvalidImage, match="not a valid image") as caught:
        validate_image(noise, "noise.png")
    assert not isinstance(caught.value, UnsupportedImageFormat)


def test_png_signature_with_a_broken_header_is_corrupt_not_unsupported() -> None:
    broken = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">II", 64, 64))  # IHDR too short
    with pytest.raises(InvalidImage, match="not a valid image"):
        validate_image(broken, "broken.png")


def test_bad_png_crc_is_not_a_valid_image() -> None:
    data = bytearray(encode(photo(100, 100), "PNG"))
    data[30] ^= 0xFF  # inside IHDR's CRC-protected payload
    with pytest.raises(InvalidImage, match="not a valid image"):
        validate_image(bytes(data), "crc.png")


# --- A4: other formats under an allowed extension ------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("TIFF", "TIFF"), ("BMP", "BMP"), ("GIF", "GIF"), ("ICO", "ICO")])
def test_other_image_formats_renamed_jpg_are_unsupported(fmt: str, name: str) -> None:
    data = encode(photo(128, 128), fmt)
    with pytest.raises(UnsupportedImageFormat) as caught:
        validate_image(data, "disguised.jpg")
    message = str(caught.value)
    assert "unsupported image format (allowed: PNG, JPEG, WebP)" in message
    assert f"the file is {name}" in message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"8BPS\x00\x01" + b"\x00" * 64, "PSD"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "EPS"),
        (b"SIMPLE  =                    T" + b" " * 50, "FITS"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF"),
    ],
)
def test_header_only_foreign_formats_are_unsupported(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedImageFormat, match=f"the file is {name}"):
        validate_image(data, "upload.png")


def test_refused_format_never_reaches_other_pillow_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    Image.init()
    calls: list[str] = []
    for fmt in ("TIFF", "GIF", "BMP", "EPS", "PSD"):

        def spy(*args: object, _fmt: str = fmt) -> object:
            calls.append(_fmt)
            raise AssertionError(f"{_fmt} plugin was reached")

        monkeypatch.setitem(Image.OPEN, fmt, (spy, None))
    for fmt in ("TIFF", "GIF", "BMP"):
        with pytest.raises(UnsupportedImageFormat):
            validate_image(encode(photo(96, 96), fmt), "x.jpg")
    assert calls == []


# --- whatever the bytes, only KitError (or a result) comes out ------------------------------------------


def _fuzz_seeds() -> dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6
    rgba = photo(80, 72).convert("RGBA")
    palette = photo(80, 72).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return {
        "png": encode(photo(80, 72), "PNG"),
        "jpeg": encode(photo(80, 72), "JPEG", quality=80),
        "webp": encode(photo(80, 72), "WEBP", quality=80),
        "jpeg-exif-icc": encode(photo(80, 72), "JPEG", exif=exif, icc_profile=linear_rgb_icc()),
        "png-rgba-icc-exif": encode(rgba, "PNG", exif=exif, icc_profile=linear_rgb_icc()),
        "png-p-trns": encode(palette, "PNG", transparency=3),
        "webp-rgba": encode(rgba, "WEBP", lossless=True),
    }


_SEEDS = _fuzz_seeds()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(min_value=0),
)
def test_mutated_images_give_a_result_or_a_kit_error(
    seed: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(_SEEDS[seed])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        del data[cut % len(data) :]
    try:
        result = validate_image(bytes(data), "fuzz.png")
    except KitError:
        return
    assert result.png_bytes.startswith(b"\x89PNG")


def test_hand_built_png_is_accepted() -> None:
    # Sanity check of the crafted-PNG approach used for the bomb headers above.
    rows = b"".join(b"\x00" + bytes([y % 256]) * 64 * 3 for y in range(64))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )
    assert validate_image(data, "hand.png").height == 64
