"""Typed, user-readable errors of the brand-kit domain.

Every message says what was wrong and how to fix it. Each error carries its complete message as its
only argument (plus ``field`` for :class:`InvalidKitField`), so errors pickle cleanly across processes.
The ``for_*``/``because`` constructors build the standard wording.
"""

from __future__ import annotations

ALLOWED_FORMATS_TEXT = "PNG, JPEG, WebP"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


class KitError(ValueError):
    """A brand-kit input was refused; the message says what was wrong and how to fix it."""


class InvalidImage(KitError):
    """The bytes are not a decodable image (empty, random, truncated or corrupt)."""

    @classmethod
    def because(cls, reason: str) -> InvalidImage:
        return cls(
            f"not a valid image ({reason}); export or download the file again and upload it "
            "as PNG, JPEG or WebP"
        )


class UnsupportedImageFormat(KitError):
    """The bytes are an image, but in a format we do not accept."""

    @classmethod
    def detected(cls, format_name: str | None) -> UnsupportedImageFormat:
        found = f": the file is {format_name}" if format_name else ""
        return cls(
            f"unsupported image format (allowed: {ALLOWED_FORMATS_TEXT}){found}; "
            "convert it to PNG or JPEG and upload it again"
        )


class ImageTooLarge(KitError):
    """Too many pixels (possible decompression bomb) or too many bytes."""

    @classmethod
    def for_pixels(
        cls, max_pixels: int, width: int | None = None, height: int | None = None
    ) -> ImageTooLarge:
        found = ""
        if width is not None and height is not None:
            found = f": {width}x{height} is {_megapixels(width * height)} MP"
        return cls(
            f"image too large (max {_megapixels(max_pixels)} MP){found}; downscale it and upload it again"
        )

    @classmethod
    def for_bytes(cls, max_bytes: int, size: int | None = None) -> ImageTooLarge:
        found = f": the file is {_megabytes(size)} MB" if size is not None else ""
        return cls(
            f"image too large (max {_megabytes(max_bytes)} MB){found}; "
            "save it with stronger compression or at a smaller size and upload it again"
        )


class ImageTooSmall(KitError):
    """The short side is below the minimum the trainer can use."""

    @classmethod
    def for_side(cls, min_side: int, width: int, height: int) -> ImageTooSmall:
        return cls(
            f"image too small (min {min_side} px on the short side): {width}x{height}; "
            "upload a larger original (512 px or more on the short side works best)"
        )


class InvalidKitField(KitError):
    """A kit identity field was refused; ``field`` names it (for the UI to highlight)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[type[InvalidKitField], tuple[str, str]]:
        return (type(self), (self.field, str(self)))
