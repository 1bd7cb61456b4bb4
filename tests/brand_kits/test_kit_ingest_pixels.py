"""validate_image output pixels: upright (A5), CMYK (A6), 16-bit (A7), transparency (A8), colour
profiles, and deterministic metadata-free PNG bytes."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from kit_images import (
    chunk_types,
    decode,
    encode,
    linear_rgb_icc,
    photo,
    png_16bit_rgb,
    png_chunk,
    raw_png,
)
from PIL import Image, ImageCms

from brand_kits import IngestLimits, KitError, ValidatedImage, validate_image

RED, BLUE = (255, 0, 0), (0, 0, 255)
BRAND_BG = (12, 34, 200)


def _close(actual: np.ndarray, expected: tuple[int, ...], tolerance: int) -> bool:
    return bool(np.all(np.abs(actual.astype(int) - np.array(expected)) <= tolerance))


# --- A5: EXIF orientation ------------------------------------------------------------------------------


def _marked(width: int, height: int) -> Image.Image:
    """Blue picture with a red block in the STORED top-left corner."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, 40, 40))
    return image


def _with_orientation(fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    params = {"quality": 95} if fmt == "JPEG" else {}
    return encode(_marked(600, 520), fmt, exif=exif, **params)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(
    ("orientation", "corner"),
    [
        (6, "top-right"),  # "rotate 90 CW to view": stored top-left shows at the top right
        (8, "bottom-left"),  # "rotate 90 CCW to view": stored top-left shows at the bottom left
        (1, "top-left"),
    ],
)
def test_exif_orientation_is_applied_once(fmt: str, orientation: int, corner: str) -> None:
    result = validate_image(_with_orientation(fmt, orientation), f"phone.{fmt.lower()}")
    pixels = decode(result.png_bytes)
    upright = orientation in (6, 8)
    assert (result.width, result.height) == ((520, 600) if upright else (600, 520))
    assert pixels.shape[:2] == (result.height, result.width)
    h, w = pixels.shape[:2]
    corners = {
        "top-left": pixels[5:30, 5:30],
        "top-right": pixels[5:30, w - 30 : w - 5],
        "bottom-left": pixels[h - 30 : h - 5, 5:30],
        "bottom-right": pixels[h - 30 : h - 5, w - 30 : w - 5],
    }
    for name, block in corners.items():
        assert _close(block, RED if name == corner else BLUE, 12), name
    # Output carries no EXIF, so validating it again keeps it exactly as it is (never rotated twice).
    again = validate_image(result.png_bytes, "again.png")
    assert again.png_bytes == result.png_bytes


def test_damaged_exif_is_reported_not_fatal() -> None:
    broken_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12"
    result = validate_image(encode(photo(), "JPEG", exif=broken_exif), "odd.jpg")
    assert (result.width, result.height) == (640, 480)
    assert any("EXIF metadata is damaged" in note for note in result.warnings)


# --- A6: CMYK JPEG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [
        ((0, 255, 255, 0), (255, 0, 0)),
        ((255, 0, 255, 0), (0, 255, 0)),
        ((0, 128, 255, 0), (255, 127, 0)),
        ((0, 0, 0, 128), (127, 127, 127)),
        ((0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_adobe_cmyk_jpeg_keeps_its_colour(cmyk: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> None:
    data = encode(Image.new("CMYK", (128, 128), cmyk), "JPEG", quality=95)
    assert b"Adobe" in data[:200]  # libjpeg writes the APP14 marker, with inverted CMYK samples
    result = validate_image(data, "print.jpg")
    assert result.source_format == "JPEG"
    assert _close(decode(result.png_bytes)[32:96, 32:96], rgb, 6)


def test_cmyk_with_an_unreadable_profile_falls_back_with_a_warning() -> None:
    data = encode(
        Image.new("CMYK", (128, 128), (0, 255, 255, 0)), "JPEG", quality=95, icc_profile=b"junk" * 40
    )
    result = validate_image(data, "print.jpg")
    assert _close(decode(result.png_bytes)[32:96, 32:96], RED, 6)
    assert any("colour profile could not be read" in note for note in result.warnings)


# --- ICC profiles on RGB ------------------------------------------------------------------------------


def test_embedded_rgb_profile_is_converted_to_srgb() -> None:
    grey = Image.new("RGB", (96, 96), (128, 128, 128))
    plain = validate_image(encode(grey, "PNG"), "plain.png")
    linear = validate_image(encode(grey, "PNG", icc_profile=linear_rgb_icc()), "linear.png")
    assert _close(decode(plain.png_bytes), (128, 128, 128), 0)
    # 0.502 in linear light is 0.735 in sRGB encoding -> 188.
    assert _close(decode(linear.png_bytes), (188, 188, 188), 2)
    assert linear.warnings == plain.warnings


def test_srgb_profile_leaves_pixels_exactly_as_stored() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = photo(96, 96)
    result = validate_image(encode(image, "PNG", icc_profile=srgb, dpi=(300, 300)), "srgb.png")
    assert np.array_equal(decode(result.png_bytes), np.asarray(image))
    assert set(chunk_types(result.png_bytes)) == {b"IHDR", b"IDAT", b"IEND"}  # the profile is not copied


# --- A7: 16-bit -----------------------------------------------------------------------------------------


def test_16bit_grayscale_ramp_keeps_its_tonal_range() -> None:
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    data = encode(Image.fromarray(ramp), "PNG")
    result = validate_image(data, "ramp16.png")
    pixels = decode(result.png_bytes)
    assert len(np.unique(pixels[..., 0])) >= 200
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert _close(pixels[128:129, 0:1], (128, 128, 128), 1)  # mid-grey stays mid-grey, not white


def test_16bit_grayscale_colour_key_becomes_background() -> None:
    values = np.full((80, 80), 1000, dtype=np.uint16)
    values[:40] = 60000
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    data = raw_png(80, 80, 16, 0, rows, extra=png_chunk(b"tRNS", (1000).to_bytes(2, "big")))
    pixels = decode(validate_image(data, "key16.png", background=BRAND_BG).png_bytes)
    assert _close(pixels[:40], (233, 233, 233), 1)
    assert _close(pixels[40:], BRAND_BG, 0)


def test_16bit_rgb_ramp_keeps_its_tonal_range() -> None:
    ramp = np.arange(0, 65536, 64, dtype=np.uint16)  # 1024 levels
    array = np.stack([np.tile(ramp, (64, 1))] * 3, axis=-1)
    array[..., 1] = array[..., 1][:, ::-1]
    result = validate_image(png_16bit_rgb(array), "ramp48.png")
    pixels = decode(result.png_bytes)
    assert (result.width, result.height) == (1024, 64)
    for channel in range(3):
        assert len(np.unique(pixels[..., channel])) >= 200
    assert _close(pixels[0, 512], (128, 127, 128), 1)


# --- A8: transparency --------------------------------------------------------------------------------------


def _half_transparent(mode: str) -> bytes:
    """Left half opaque red (or white for grey modes), right half fully transparent."""
    if mode == "P":
        image = Image.new("P", (128, 96), 0)
        image.putpalette([0, 0, 0, 255, 0, 0])
        image.paste(1, (0, 0, 64, 96))
        return encode(image, "PNG", transparency=0)
    opaque = (255, 255) if mode == "LA" else (*RED, 255)
    clear = (0, 0) if mode == "LA" else (0, 0, 0, 0)
    image = Image.new(mode, (128, 96), clear)
    image.paste(opaque, (0, 0, 64, 96))
    return encode(image, "PNG")


@pytest.mark.parametrize(("mode", "opaque"), [("P", RED), ("LA", (255, 255, 255)), ("RGBA", RED)])
def test_transparent_areas_get_the_brand_background_not_black(
    mode: str, opaque: tuple[int, int, int]
) -> None:
    result = validate_image(_half_transparent(mode), "logo.png", background=BRAND_BG)
    pixels = decode(result.png_bytes)
    assert _close(pixels[:, :64], opaque, 0)
    assert _close(pixels[:, 64:], BRAND_BG, 0)
    assert any("#0c22c8" in note for note in result.warnings)


def test_default_background_is_white() -> None:
    pixels = decode(validate_image(_half_transparent("RGBA"), "logo.png").png_bytes)
    assert _close(pixels[:, 64:], (255, 255, 255), 0)


def test_partial_alpha_blends_with_the_background() -> None:
    data = encode(Image.new("RGBA", (96, 96), (255, 0, 0, 128)), "PNG")
    pixels = decode(validate_image(data, "glass.png", background=(0, 0, 255)).png_bytes)
    assert _close(pixels, (128, 0, 127), 1)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_colour_key_transparency_is_honoured(mode: str) -> None:
    key = 7 if mode == "L" else (1, 2, 3)
    image = Image.new(mode, (96, 96), key)
    image.paste(200 if mode == "L" else (200, 10, 10), (0, 0, 48, 96))
    pixels = decode(
        validate_image(encode(image, "PNG", transparency=key), "key.png", background=BRAND_BG).png_bytes
    )
    assert _close(pixels[:, 48:], BRAND_BG, 0)
    assert _close(pixels[:, :48], (200, 200, 200) if mode == "L" else (200, 10, 10), 0)


def test_lossless_webp_with_alpha_is_composited() -> None:
    data = encode(Image.open(BytesIO(_half_transparent("RGBA"))).convert("RGBA"), "WEBP", lossless=True)
    result = validate_image(data, "logo.webp", background=BRAND_BG)
    assert result.source_format == "WebP"
    assert _close(decode(result.png_bytes)[:, 70:], BRAND_BG, 0)


def test_fully_transparent_image_is_flagged() -> None:
    data = encode(Image.new("RGBA", (96, 96), (0, 0, 0, 0)), "PNG")
    result = validate_image(data, "blank.png", background=BRAND_BG)
    assert _close(decode(result.png_bytes), BRAND_BG, 0)
    assert any("completely transparent" in note for note in result.warnings)


# --- other modes, output format, warnings -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["1", "L", "P"])
def test_grey_bilevel_and_palette_images_become_rgb(mode: str) -> None:
    source = photo(96, 96).convert(mode)
    expected = np.asarray(source.convert("RGB"))
    assert np.array_equal(decode(validate_image(encode(source, "PNG"), "x.png").png_bytes), expected)


def test_output_is_deterministic_rgb_png_without_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    data = encode(photo(), "JPEG", quality=90, exif=exif, icc_profile=linear_rgb_icc(), dpi=(300, 300))
    first = validate_image(data, "a.jpg")
    second = validate_image(bytes(data), "b.jpg")
    assert first.png_bytes == second.png_bytes
    kinds = chunk_types(first.png_bytes)
    assert set(kinds) == {b"IHDR", b"IDAT", b"IEND"} and kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    with Image.open(BytesIO(first.png_bytes)) as image:
        assert image.mode == "RGB" and image.info == {}


def test_result_fields_and_small_image_warning() -> None:
    result = validate_image(encode(photo(300, 700), "WEBP", quality=90), "../../shots/Bottle 1.webp")
    assert isinstance(result, ValidatedImage)
    assert (result.width, result.height, result.source_format) == (300, 700, "WebP")
    assert result.label == "Bottle 1.webp"
    assert any("smaller than 512 px, the size the base model trains at" in n for n in result.warnings)
    big = validate_image(encode(photo(640, 512), "PNG"), "big.png")
    assert big.warnings == ()
    sdxl = validate_image(encode(photo(640, 512), "PNG"), "big.png", IngestLimits(recommended_side=1024))
    assert any("smaller than 1024 px" in n for n in sdxl.warnings)


def test_alpha_is_kept_as_a_mask_for_photos_and_in_place_for_logos() -> None:
    rgba = Image.new("RGBA", (96, 96), (200, 30, 30, 0))
    rgba.paste((200, 30, 30, 255), (24, 24, 72, 72))
    photo_result = validate_image(encode(rgba, "PNG"), "product.png", background=(0, 0, 255))
    assert photo_result.mask_png is not None
    mask = Image.open(BytesIO(photo_result.mask_png))
    assert mask.mode == "L" and mask.getpixel((0, 0)) == 0 and mask.getpixel((48, 48)) == 255
    assert tuple(decode(photo_result.png_bytes)[0, 0]) == (0, 0, 255)
    logo = validate_image(encode(rgba, "PNG"), "logo.png", keep_alpha=True)
    logo_img = Image.open(BytesIO(logo.png_bytes))
    assert logo_img.mode == "RGBA" and logo_img.getpixel((0, 0))[3] == 0
    assert logo_img.getpixel((48, 48)) == (200, 30, 30, 255) and logo.mask_png is None
    opaque = validate_image(encode(photo(96, 96), "PNG"), "opaque.png")
    assert opaque.mask_png is None


def test_animated_png_uses_the_first_frame_and_says_so() -> None:
    frames = [Image.new("RGB", (96, 96), RED), Image.new("RGB", (96, 96), BLUE)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    result = validate_image(data, "anim.png")
    assert _close(decode(result.png_bytes), RED, 0)
    assert any("animated" in note for note in result.warnings)


def test_background_must_be_an_rgb_triple() -> None:
    with pytest.raises(KitError, match="background must be three integers"):
        validate_image(encode(photo(), "PNG"), "x.png", background=(0, 0, 256))
