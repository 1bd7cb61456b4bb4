"""Channel encoding: caps met by encoding, metadata read back from PNG and JPEG, same bytes every time."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from studio.editing.encode import (
    JPEG_QUALITY_MAX,
    USER_COMMENT,
    EncodeError,
    ImageMetadata,
    _jpeg_saver,
    channel_cap_bytes,
    encode_for_channel,
    read_image_metadata,
)
from studio.formats import AD_FORMATS
from studio.generation.imagefile import COMPOSITE_WITH_TRAINED, encode_png, xmp_packet

PARAMETERS = (
    "studio photo of brandx_bottle on wet slate, café ☕ <lora:brandx_v3:0.8>\n"
    "Negative prompt: text, watermark\n"
    'Steps: 30, Sampler: DPM++ 2M, CFG scale: 6.5, Seed: 1234567890, Size: 1024x1024, Lora hashes: "brandx_v3: 6f1a2b3c4d5e"'
)
RECIPE = {
    "seed": 1234567890,
    "prompt": "studio photo of brandx_bottle, café",
    "factor": {"background": "slate"},
}
METADATA = ImageMetadata(xmp=xmp_packet().encode("utf-8"), parameters=PARAMETERS, recipe=RECIPE)
BANNERS = [key for key, fmt in AD_FORMATS.items() if fmt.max_kb == 150]


def noisy_photo(width: int, height: int, sigma: float = 25.0, seed: int = 0) -> Image.Image:
    """Smooth colour waves plus Gaussian sensor-like noise: hard to compress, like a real photo."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 23), 128 + 80 * np.sin((x + y) / 51)], -1
    )
    noisy = base + np.random.default_rng(seed).normal(0, sigma, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def smooth_photo(width: int, height: int) -> Image.Image:
    return noisy_photo(width, height, sigma=0.0)


def assert_metadata_kept(data: bytes, metadata: ImageMetadata = METADATA) -> None:
    read = read_image_metadata(data)
    assert read.parameters == metadata.parameters
    assert read.recipe == metadata.recipe
    assert read.xmp == metadata.xmp
    assert b"trainedAlgorithmicMedia" in (read.xmp or b"")


def test_banner_sizes_meet_the_150_kb_cap_as_jpeg_with_a_noisy_photo() -> None:
    assert len(BANNERS) == 13
    for key in BANNERS:
        fmt = AD_FORMATS[key]
        cap = channel_cap_bytes(fmt)
        assert cap == 150_000
        image = noisy_photo(fmt.width, fmt.height, sigma=40)
        best = _jpeg_saver(image, METADATA)(JPEG_QUALITY_MAX, 0)
        encoded = encode_for_channel(image, "jpeg", cap, METADATA)
        assert encoded.size == len(encoded.data) <= cap, key
        assert encoded.fmt == "jpeg" and encoded.quality is not None and 30 <= encoded.quality <= 95
        with Image.open(BytesIO(encoded.data)) as img:
            assert img.format == "JPEG" and img.size == (fmt.width, fmt.height)
        assert_metadata_kept(encoded.data)
        assert (encoded.quality < JPEG_QUALITY_MAX) == (len(best) > cap), key  # lowered only when needed


def test_the_quality_found_is_the_highest_that_fits() -> None:
    image = noisy_photo(970, 250)
    encoded = encode_for_channel(image, "jpeg", 150_000, METADATA)
    assert (
        encoded.quality is not None and encoded.quality < JPEG_QUALITY_MAX and encoded.subsampling == "4:4:4"
    )
    save = _jpeg_saver(image, METADATA)
    assert save(encoded.quality, 0) == encoded.data
    assert len(save(encoded.quality + 1, 0)) > 150_000


def test_chroma_subsampling_comes_in_when_quality_30_is_not_enough() -> None:
    image = noisy_photo(970, 250)
    save = _jpeg_saver(image, METADATA)
    full, reduced = len(save(30, 0)), len(save(30, 2))
    assert reduced < full
    encoded = encode_for_channel(image, "jpeg", (full + reduced) // 2, METADATA)
    assert encoded.subsampling == "4:2:0" and encoded.size <= (full + reduced) // 2
    assert_metadata_kept(encoded.data)


def test_a_cap_jpeg_cannot_meet_says_by_how_much() -> None:
    with pytest.raises(
        EncodeError, match=r"2000-byte cap as JPEG .* quality 30 with 4:2:0 chroma it is still \d+ bytes"
    ):
        encode_for_channel(noisy_photo(300, 250), "jpeg", 2000, METADATA)


def test_png_meets_a_cap_by_optimizing_then_by_quantizing() -> None:
    image = smooth_photo(300, 250)
    loose = encode_for_channel(image, "png", 10_000_000, METADATA)
    assert not loose.quantized and loose.size <= 10_000_000
    noisy = noisy_photo(300, 250, sigma=10)
    optimized = encode_for_channel(noisy, "png", 10_000_000, METADATA).size
    tight = encode_for_channel(noisy, "png", optimized - 1, METADATA)
    assert tight.quantized and tight.size < optimized
    with Image.open(BytesIO(tight.data)) as img:
        assert img.mode == "P" and len(img.getcolors(maxcolors=257) or []) <= 256  # type: ignore[arg-type]
    assert_metadata_kept(tight.data)


def test_a_cap_png_cannot_meet_is_refused_with_the_numbers_and_the_fix() -> None:
    with pytest.raises(
        EncodeError,
        match=r"150000-byte cap as PNG .* \d+ bytes with 256 colours .* export this format as JPEG",
    ):
        encode_for_channel(noisy_photo(970, 250), "png", 150_000, METADATA)


def test_png_without_a_cap_is_byte_identical_to_the_generation_pngs() -> None:
    image = smooth_photo(96, 64)
    encoded = encode_for_channel(image, "png", None, METADATA)
    assert encoded.data == encode_png(image, PARAMETERS, RECIPE)
    assert_metadata_kept(encoded.data)


def test_jpeg_metadata_is_where_a1111_and_xmp_readers_look() -> None:
    xmp = xmp_packet(COMPOSITE_WITH_TRAINED).encode("utf-8")
    metadata = ImageMetadata(xmp=xmp, parameters=PARAMETERS, recipe=RECIPE)
    data = encode_for_channel(smooth_photo(320, 100), "jpeg", None, metadata).data
    with Image.open(BytesIO(data)) as img:
        assert img.info["exif"][:8] == b"Exif\x00\x00MM"  # big-endian, as piexif.dump writes it
        comment = img.getexif().get_ifd(0x8769)[USER_COMMENT]
        assert comment == b"UNICODE\x00" + PARAMETERS.encode("utf-16-be")
        assert img.info["xmp"] == xmp and b"compositeWithTrainedAlgorithmicMedia" in img.info["xmp"]
        assert img.info["comment"].decode("utf-8") == metadata.recipe_text()
    assert read_image_metadata(data).parameters == PARAMETERS


def test_metadata_is_optional_except_the_disclosure() -> None:
    bare = ImageMetadata(xmp=xmp_packet().encode("utf-8"))
    for fmt in ("png", "jpeg"):
        data = encode_for_channel(smooth_photo(64, 64), fmt, None, bare).data  # type: ignore[arg-type]
        read = read_image_metadata(data)
        assert read.parameters is None and read.recipe is None and read.xmp == bare.xmp


def test_same_inputs_give_the_same_bytes() -> None:
    image = noisy_photo(300, 600)
    for fmt in ("png", "jpeg"):
        first = encode_for_channel(image, fmt, 150_000 if fmt == "jpeg" else None, METADATA)  # type: ignore[arg-type]
        again = encode_for_channel(image.copy(), fmt, 150_000 if fmt == "jpeg" else None, METADATA)  # type: ignore[arg-type]
        assert first == again


def test_transparency_and_odd_modes_are_refused_for_jpeg() -> None:
    rgba = smooth_photo(64, 64).convert("RGBA")
    assert encode_for_channel(rgba, "jpeg", None, METADATA).size > 0  # fully opaque: fine
    rgba.putpixel((3, 3), (0, 0, 0, 10))
    with pytest.raises(EncodeError, match="transparent pixels .* export this format as PNG"):
        encode_for_channel(rgba, "jpeg", None, METADATA)
    assert read_image_metadata(encode_for_channel(rgba, "png", None, METADATA).data).xmp == METADATA.xmp
    with pytest.raises(EncodeError, match="'CMYK' image"):
        encode_for_channel(Image.new("CMYK", (8, 8)), "jpeg", None, METADATA)
    with pytest.raises(EncodeError, match="unknown image format 'webp'"):
        encode_for_channel(rgba, "webp", None, METADATA)  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="positive number of bytes"):
        encode_for_channel(rgba, "png", 0, METADATA)


def test_metadata_too_big_for_a_jpeg_segment_is_refused() -> None:
    image = smooth_photo(64, 64)
    huge = ImageMetadata(xmp=METADATA.xmp, recipe={"notes": "x" * 70_000})
    with pytest.raises(EncodeError, match="recipe JSON is 70013 bytes; a JPEG comment holds at most 65533"):
        encode_for_channel(image, "jpeg", None, huge)
    assert read_image_metadata(encode_for_channel(image, "png", None, huge).data).recipe == huge.recipe
    with pytest.raises(EncodeError, match="parameters text .* does not fit a JPEG's EXIF block"):
        encode_for_channel(image, "jpeg", None, ImageMetadata(xmp=METADATA.xmp, parameters="p" * 40_000))
    with pytest.raises(EncodeError, match="XMP packet is not UTF-8"):
        encode_for_channel(image, "png", None, ImageMetadata(xmp=b"\xff\xfe<x/>"))


def test_pure_noise_still_encodes_when_pillows_optimize_buffer_overflows() -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (250, 300, 3), dtype=np.uint8))
    with pytest.raises(OSError):  # the Pillow limit the encoder works around
        image.save(BytesIO(), format="JPEG", quality=95, subsampling=0, optimize=True)
    encoded = encode_for_channel(image, "jpeg", 150_000, METADATA)
    assert encoded.size <= 150_000 and encoded.quality is not None
    assert_metadata_kept(encoded.data)


def test_a_foreign_jpeg_comment_reads_as_no_recipe() -> None:
    buf = BytesIO()
    smooth_photo(32, 32).save(buf, format="JPEG", comment=b"CREATOR: gd-jpeg v1.0 (using IJG JPEG v62)")
    read = read_image_metadata(buf.getvalue())
    assert read.recipe is None and read.parameters is None and read.xmp is None
