"""Encode a channel image as PNG or JPEG under the channel's file-size cap, metadata kept.

Three pieces of metadata travel with every exported image (formats.md §1 and "AI-disclosure metadata"):

- ``parameters``: the A1111 text. PNG: a ``tEXt`` chunk (``iTXt`` when not Latin-1). JPEG: EXIF
  ``UserComment`` in the Exif IFD, as A1111 writes it with piexif: ``b"UNICODE\\0"`` + UTF-16-BE text
  in a big-endian (``MM``) EXIF block, so A1111, Civitai and exiftool read it back.
- ``brand_studio``: our JSON recipe. PNG: ``iTXt`` (UTF-8). JPEG: a ``COM`` segment holding the JSON
  as UTF-8 (Pillow reads it back as ``info["comment"]``); the XMP packet is left untouched.
- the XMP packet with the IPTC ``DigitalSourceType``. PNG: ``iTXt`` keyword ``XML:com.adobe.xmp``;
  JPEG: the APP1 XMP segment (Pillow ``save(xmp=...)``). The packet arrives as bytes, built by the
  caller (``studio.generation.imagefile.xmp_packet``); this module never builds it.

Caps are met by encoding, not by failing: JPEG searches quality 95 down to 30 (binary search for the
highest that fits) with 4:4:4 chroma, then again with 4:2:0; PNG is saved with ``optimize``, then
quantized to 256 colours. Only when even that is over the cap does :class:`EncodeError` say by how
much, and what to do. The same inputs always give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Literal

from PIL import Image, ImageFile
from PIL.PngImagePlugin import PngInfo

from studio.formats import AdFormat

ImageFormat = Literal["png", "jpeg"]
RECIPE_KEY = "brand_studio"
XMP_KEY = "XML:com.adobe.xmp"
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
UNICODE_PREFIX = b"UNICODE\x00"
JPEG_QUALITY_MAX, JPEG_QUALITY_MIN = 95, 30
#: (Pillow's ``subsampling`` value, its name), in the order they are tried.
SUBSAMPLINGS = ((0, "4:4:4"), (2, "4:2:0"))
#: A JPEG marker segment holds at most 65 533 payload bytes; XMP loses 29 to its namespace header.
SEGMENT_MAX = 65533
XMP_MAX = SEGMENT_MAX - 29
PNG_COLOURS = 256
#: Bytes kept free in Pillow's JPEG buffer before optimizing (headers, EXIF, XMP, comment).
OPTIMIZE_SLACK = 4096


class EncodeError(ValueError):
    """An image that cannot be encoded as asked."""


@dataclass(frozen=True)
class ImageMetadata:
    """What every exported file carries: the XMP disclosure packet, the A1111 text, our recipe."""

    xmp: bytes
    parameters: str | None = None
    recipe: Mapping[str, Any] | None = field(default=None, hash=False)

    def recipe_text(self) -> str | None:
        """The recipe as stored: ``json.dumps(sort_keys=True, ensure_ascii=False)``, like the PNGs."""
        return None if self.recipe is None else json.dumps(self.recipe, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class EncodedImage:
    """``size``: len(data) in bytes. ``quality``/``subsampling``: the JPEG settings used (None for
    PNG). ``quantized``: the PNG was reduced to 256 colours to meet the cap."""

    data: bytes = field(repr=False)
    fmt: ImageFormat
    quality: int | None
    size: int
    subsampling: str | None = None
    quantized: bool = False


@dataclass(frozen=True)
class ReadMetadata:
    parameters: str | None
    recipe: dict[str, Any] | None
    xmp: bytes | None


def channel_cap_bytes(fmt: AdFormat) -> int | None:
    """The format's size cap in bytes, reading "KB" as 1000 bytes (the stricter reading of 150 KB)."""
    return None if fmt.max_kb is None else fmt.max_kb * 1000


def encode_for_channel(
    image: Image.Image, fmt: ImageFormat, max_bytes: int | None, metadata: ImageMetadata
) -> EncodedImage:
    """``image`` as ``fmt`` bytes of at most ``max_bytes`` (None: no cap), with ``metadata`` embedded."""
    if max_bytes is not None and max_bytes < 1:
        raise EncodeError(f"max_bytes must be a positive number of bytes, got {max_bytes}")
    if fmt == "jpeg":
        return _encode_jpeg(_jpeg_ready(image), max_bytes, metadata)
    if fmt == "png":
        return _encode_png(_png_ready(image), max_bytes, metadata)
    raise EncodeError(f"unknown image format {fmt!r}; use 'png' or 'jpeg'")


def read_image_metadata(data: bytes) -> ReadMetadata:
    """The three pieces of metadata read back from PNG or JPEG bytes written here (or by A1111)."""
    with Image.open(BytesIO(data), formats=["PNG", "JPEG"]) as img:
        if img.format == "PNG":
            text = dict(getattr(img, "text", {}))
            recipe_text, parameters = text.get(RECIPE_KEY), text.get("parameters")
            xmp = text[XMP_KEY].encode("utf-8") if XMP_KEY in text else None
        else:
            comment = img.info.get("comment")
            recipe_text = comment.decode("utf-8", errors="replace") if comment else None
            parameters = _user_comment_text(img.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT))
            xmp = img.info.get("xmp")
    return ReadMetadata(parameters=parameters, recipe=_recipe(recipe_text), xmp=xmp)


def _recipe(text: str | None) -> dict[str, Any] | None:
    """Our JSON recipe, or None when absent or (a comment another tool wrote) not a JSON object."""
    try:
        recipe = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return recipe if isinstance(recipe, dict) else None


# ------------------------------------------------------------------------------------------------ JPEG


def _encode_jpeg(image: Image.Image, max_bytes: int | None, metadata: ImageMetadata) -> EncodedImage:
    save = _jpeg_saver(image, metadata)
    if max_bytes is None:
        data = save(JPEG_QUALITY_MAX, 0)
        return EncodedImage(data, "jpeg", JPEG_QUALITY_MAX, len(data), "4:4:4")
    smallest = 0
    for subsampling, name in SUBSAMPLINGS:
        found = _highest_quality_under(save, subsampling, max_bytes)
        if isinstance(found, tuple):
            quality, data = found
            return EncodedImage(data, "jpeg", quality, len(data), name)
        smallest = found
    raise EncodeError(
        f"cannot meet the {max_bytes}-byte cap as JPEG for this {image.width}x{image.height} image: at quality "
        f"{JPEG_QUALITY_MIN} with 4:2:0 chroma it is still {smallest} bytes "
        f"(metadata: {_metadata_bytes(metadata)} bytes); use a simpler background or a smaller size"
    )


def _highest_quality_under(
    save: Callable[[int, int], bytes], subsampling: int, max_bytes: int
) -> tuple[int, bytes] | int:
    """(quality, bytes) for the highest quality in 30..95 under the cap, or the size at 30 if none."""
    top = save(JPEG_QUALITY_MAX, subsampling)
    if len(top) <= max_bytes:
        return JPEG_QUALITY_MAX, top
    floor = save(JPEG_QUALITY_MIN, subsampling)
    if len(floor) > max_bytes:
        return len(floor)
    best, low, high = (JPEG_QUALITY_MIN, floor), JPEG_QUALITY_MIN + 1, JPEG_QUALITY_MAX - 1
    while low <= high:  # invariant: best fits; everything above high was tried or is over the cap
        mid = (low + high) // 2
        data = save(mid, subsampling)
        if len(data) <= max_bytes:
            best, low = (mid, data), mid + 1
        else:
            high = mid - 1
    return best


def _jpeg_saver(image: Image.Image, metadata: ImageMetadata) -> Callable[[int, int], bytes]:
    extra: dict[str, Any] = {"xmp": metadata.xmp}
    if len(metadata.xmp) > XMP_MAX:
        raise EncodeError(f"the XMP packet is {len(metadata.xmp)} bytes; a JPEG holds at most {XMP_MAX}")
    if metadata.parameters is not None:
        extra["exif"] = _user_comment_exif(metadata.parameters)
    recipe = metadata.recipe_text()
    if recipe is not None:
        comment = recipe.encode("utf-8")
        if len(comment) > SEGMENT_MAX:
            raise EncodeError(
                f"the recipe JSON is {len(comment)} bytes; a JPEG comment holds at most {SEGMENT_MAX}: "
                "export this format as PNG, which has no such limit"
            )
        extra["comment"] = comment

    def save(quality: int, subsampling: int) -> bytes:
        # Optimized Huffman tables must fit Pillow's one output buffer (about 1 byte per pixel, 2 at
        # quality >= 95): near-random pixels overflow it and libjpeg fails ("Suspension not allowed
        # here"). So encode plainly first and optimize only when the result has room to spare.
        plain = _save_jpeg(image, quality, subsampling, False, extra)
        room = max(ImageFile.MAXBLOCK, image.width * image.height * (2 if quality >= 95 else 1))
        if len(plain) + OPTIMIZE_SLACK > room:
            return plain
        try:
            return _save_jpeg(image, quality, subsampling, True, extra)
        except OSError:  # should Pillow's buffer rule change: the plain encoding is still valid
            return plain

    return save


def _save_jpeg(
    image: Image.Image, quality: int, subsampling: int, optimize: bool, extra: dict[str, Any]
) -> bytes:
    buf = BytesIO()
    image.save(buf, format="JPEG", quality=quality, subsampling=subsampling, optimize=optimize, **extra)
    return buf.getvalue()


def _user_comment_exif(parameters: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = UNICODE_PREFIX + parameters.encode("utf-16-be")
    data = exif.tobytes()
    if len(data) > SEGMENT_MAX:
        raise EncodeError(
            f"the A1111 parameters text ({len(parameters)} characters) does not fit a JPEG's EXIF block "
            f"({len(data)} of at most {SEGMENT_MAX} bytes): export this format as PNG"
        )
    return data


def _user_comment_text(raw: object) -> str | None:
    """Decode an EXIF UserComment the way A1111 does (piexif's ``UserComment.load``)."""
    if not isinstance(raw, bytes):
        return raw if isinstance(raw, str) else None
    prefix, body = raw[:8], raw[8:]
    if prefix == UNICODE_PREFIX:
        return body.decode("utf-16-be", errors="replace")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("utf-8", errors="replace").rstrip("\x00")
    return raw.decode("utf-8", errors="ignore")


def _jpeg_ready(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "RGBA":
        lowest_alpha, _ = image.getchannel("A").getextrema()
        if lowest_alpha == 255:
            return image.convert("RGB")
        raise EncodeError(
            "the image has transparent pixels and JPEG has no transparency: flatten it onto a background "
            "first or export this format as PNG"
        )
    raise EncodeError(f"cannot encode a {image.mode!r} image; convert it to RGB first")


# ------------------------------------------------------------------------------------------------- PNG


def _encode_png(image: Image.Image, max_bytes: int | None, metadata: ImageMetadata) -> EncodedImage:
    info = _png_info(metadata)
    if max_bytes is None:
        data = _save_png(image, info, optimize=False)
        return EncodedImage(data, "png", None, len(data))
    data = _save_png(image, info, optimize=True)
    if len(data) <= max_bytes:
        return EncodedImage(data, "png", None, len(data))
    if image.mode == "L":
        quantized_size = len(data)
    else:
        method = Image.Quantize.FASTOCTREE if image.mode == "RGBA" else Image.Quantize.MEDIANCUT
        paletted = image.quantize(PNG_COLOURS, method=method, dither=Image.Dither.NONE)
        small = _save_png(paletted, info, optimize=True)
        if len(small) <= max_bytes:
            return EncodedImage(small, "png", None, len(small), quantized=True)
        quantized_size = len(small)
    raise EncodeError(
        f"cannot meet the {max_bytes}-byte cap as PNG for this {image.width}x{image.height} image: "
        f"{len(data)} bytes optimized, {quantized_size} bytes with {PNG_COLOURS} colours (metadata: "
        f"{_metadata_bytes(metadata)} bytes); export this format as JPEG, which meets the cap by lowering quality"
    )


def _png_info(metadata: ImageMetadata) -> PngInfo:
    """The chunks in the order ``imagefile.encode_png`` writes them, so the bytes agree."""
    info = PngInfo()
    if metadata.parameters is not None:
        info.add_text("parameters", metadata.parameters)
    recipe = metadata.recipe_text()
    if recipe is not None:
        info.add_itxt(RECIPE_KEY, recipe)
    try:
        info.add_itxt(XMP_KEY, metadata.xmp.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise EncodeError(f"the XMP packet is not UTF-8 text ({exc}); build it with xmp_packet()") from exc
    return info


def _save_png(image: Image.Image, info: PngInfo, optimize: bool) -> bytes:
    buf = BytesIO()
    image.save(buf, format="PNG", pnginfo=info, optimize=optimize)
    return buf.getvalue()


def _png_ready(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "RGBA", "L"):
        return image
    raise EncodeError(f"cannot encode a {image.mode!r} image; convert it to RGB or RGBA first")


def _metadata_bytes(metadata: ImageMetadata) -> int:
    recipe = metadata.recipe_text() or ""
    return len(metadata.xmp) + len((metadata.parameters or "").encode("utf-8")) + len(recipe.encode("utf-8"))
