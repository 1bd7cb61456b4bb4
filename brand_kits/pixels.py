"""Normalise a decoded image to 8-bit sRGB ``RGB`` pixels, the one form the trainer gets.

Steps: (1) widen/narrow every mode to one of L, LA, RGB, RGBA, CMYK (16-bit data is scaled, never
clipped); (2) convert an embedded RGB/CMYK ICC profile to sRGB; (3) composite any transparency onto
the brand background and drop alpha. Anything done to the pixels that the user may not expect is
reported as a warning, never done silently.
"""

from __future__ import annotations

import functools
import logging
from io import BytesIO

import numpy as np
from PIL import Image, ImageCms

logger = logging.getLogger(__name__)

Rgb = tuple[int, int, int]

# Modes holding more than 8 bits per sample (Pillow decodes 16-bit grayscale PNG to "I;16").
_WIDE_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_GRAY_FAMILY = frozenset({"1", "L"})
_PROFILE_SPACE = {"RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}


def to_rgb(image: Image.Image, background: Rgb) -> tuple[Image.Image, list[str]]:
    """Return the image as 8-bit sRGB ``RGB`` plus warnings about what was done to it.

    An image that is already plain RGB is returned as is (same object, ``info`` untouched).
    """
    warnings: list[str] = []
    expanded = _expand_mode(image, warnings)
    managed = _to_srgb(expanded, image.info.get("icc_profile"), warnings)
    if managed.mode in ("LA", "RGBA"):
        return _composite(managed, background, warnings), warnings
    return managed if managed.mode == "RGB" else managed.convert("RGB"), warnings


def to_rgba(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """8-bit sRGB ``RGBA`` with the original transparency kept (for logos), plus warnings."""
    warnings: list[str] = []
    managed = _to_srgb(_expand_mode(image, warnings), image.info.get("icc_profile"), warnings)
    return managed.convert("RGBA"), warnings


def alpha_mask(image: Image.Image) -> Image.Image | None:
    """The image's alpha as an ``L`` mask, or None when it is fully opaque (or has no alpha)."""
    has_alpha = image.mode in ("LA", "RGBA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return None
    mask = image.convert("RGBA").getchannel("A")
    return None if mask.getextrema() == (255, 255) else mask


def _expand_mode(image: Image.Image, warnings: list[str]) -> Image.Image:
    """Any decoded mode -> one of L, LA, RGB, RGBA, CMYK (8 bits per sample)."""
    if image.mode in _WIDE_GRAY_MODES:
        return _wide_gray_to_l(image)
    if image.mode == "CMYK":
        return image
    transparency = image.info.get("transparency")
    if image.mode == "RGB" and isinstance(transparency, tuple) and max(transparency) > 255:
        # 16-bit RGB PNG with a colour key: Pillow hands us 8-bit samples, the key stays 16-bit.
        warnings.append(
            "the 16-bit PNG's transparent colour key cannot be applied; the image is used fully opaque "
            "(save it with an alpha channel instead)"
        )
        return image.convert("RGB")
    has_alpha = image.mode in _ALPHA_MODES or transparency is not None
    if image.mode in _GRAY_FAMILY:
        return image.convert("LA" if has_alpha else "L")
    target = "RGBA" if has_alpha else "RGB"
    return image if image.mode == target else image.convert(target)


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    """16-bit grayscale -> 8-bit by scaling (x / 257, rounded), keeping a colour-key as alpha."""
    values = np.asarray(image).astype(np.int64)
    clipped = np.clip(values, 0, 65535)
    gray = Image.fromarray(((clipped + 128) // 257).astype(np.uint8))
    key = image.info.get("transparency")
    if not isinstance(key, int):
        return gray
    alpha = Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8))
    return Image.merge("LA", (gray, alpha))


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(image: Image.Image, icc: object, warnings: list[str]) -> Image.Image:
    """Convert RGB(A)/CMYK pixels from an embedded ICC profile to sRGB; alpha is kept as is."""
    expected_space = _PROFILE_SPACE.get(image.mode)
    if not isinstance(icc, bytes) or not icc or expected_space is None:
        return image
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(icc))
        space = source.profile.xcolor_space.strip()
        if space != expected_space:
            warnings.append(
                f"the embedded colour profile is for {space}, not {expected_space}; "
                "colours were used as stored"
            )
            return image
        if expected_space == "RGB" and "srgb" in ImageCms.getProfileDescription(source).lower():
            return image
        colour = image.convert("RGB") if image.mode == "RGBA" else image
        converted = ImageCms.profileToProfile(colour, source, _srgb_profile(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        logger.info("unusable ICC profile: %s", exc)
        fallback = " (CMYK converted without colour management)" if image.mode == "CMYK" else ""
        warnings.append(
            f"the embedded colour profile could not be read; colours were used as stored{fallback}"
        )
        return image
    if converted is None:  # pragma: no cover - only with inPlace=True
        return image
    if image.mode == "RGBA":
        converted.putalpha(image.getchannel("A"))
    return converted


def _composite(image: Image.Image, background: Rgb, warnings: list[str]) -> Image.Image:
    """Alpha-composite onto the opaque background colour; report what happened to transparency."""
    rgba = image.convert("RGBA")
    alpha_low, alpha_high = rgba.getchannel("A").getextrema()
    if alpha_low == 255:
        return rgba.convert("RGB")
    hex_colour = "#{:02x}{:02x}{:02x}".format(*background)
    if alpha_high == 0:
        warnings.append(f"the image is completely transparent; it became a plain {hex_colour} background")
    else:
        warnings.append(f"transparent areas were filled with the background colour {hex_colour}")
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")
