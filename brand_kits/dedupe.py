"""Near-duplicate photos: a 64-bit perceptual hash (DCT pHash) and pairwise Hamming distance.

The hash survives re-encoding, mild resizing and small colour changes; near-duplicates in a training
set over-weight one shot, so the kit flags pairs within a few bits of each other.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from io import BytesIO
from typing import TypeVar

import numpy as np
from PIL import Image

from brand_kits.errors import KitError
from brand_kits.ingest import IngestLimits, validate_image

logger = logging.getLogger(__name__)

K = TypeVar("K")

HASH_SIDE = 32
LOW_FREQUENCIES = 8
HASH_HEX_LENGTH = 16
DEFAULT_MAX_DISTANCE = 6
_HASH_TEXT = re.compile(f"[0-9a-fA-F]{{{HASH_HEX_LENGTH}}}")
# Any size is fine for a hash; every other limit (bytes, pixels, formats) stays the upload default.
_HASH_LIMITS = IngestLimits(min_side=1)


@functools.cache
def _dct_matrix(size: int) -> np.ndarray:
    """Orthonormal DCT-II basis: ``C @ x`` transforms a column vector ``x`` of length ``size``."""
    n = np.arange(size)
    basis = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * np.sqrt(2.0 / size)
    basis[0] /= np.sqrt(2.0)
    return basis


def perceptual_hash(image_bytes: bytes) -> str:
    """64-bit DCT perceptual hash of an uploaded image as 16 lower-case hex digits.

    The image is decoded by :func:`brand_kits.ingest.validate_image` (PNG/JPEG/WebP only, size
    limits, EXIF upright), so a refused upload raises the same :class:`KitError` it would at ingest.
    """
    validated = validate_image(image_bytes, "image", _HASH_LIMITS)
    with Image.open(BytesIO(validated.png_bytes), formats=["PNG"]) as decoded:
        gray = decoded.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    basis = _dct_matrix(HASH_SIDE)
    low = (basis @ pixels @ basis.T)[:LOW_FREQUENCIES, :LOW_FREQUENCIES].reshape(-1)
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:0{HASH_HEX_LENGTH}x}"


def _hash_value(text: str) -> int:
    if not isinstance(text, str) or _HASH_TEXT.fullmatch(text) is None:
        raise KitError(
            f"a perceptual hash must be {HASH_HEX_LENGTH} hex digits, got {str(text)[:40]!r}; "
            "compute it with perceptual_hash()"
        )
    return int(text, 16)


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hashes from :func:`perceptual_hash` (0 to 64)."""
    return (_hash_value(a) ^ _hash_value(b)).bit_count()


def find_near_duplicates(
    items: Sequence[tuple[K, str]], max_distance: int = DEFAULT_MAX_DISTANCE
) -> list[tuple[K, K, int]]:
    """Pairs ``(earlier key, later key, distance)`` whose hashes differ in at most ``max_distance`` bits.

    Pairs come in input order: by the earlier item, then by the later one.
    """
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or not 0 <= max_distance <= 64:
        raise KitError(f"max_distance must be a whole number of bits from 0 to 64, got {max_distance!r}")
    values = [(key, _hash_value(text)) for key, text in items]
    pairs: list[tuple[K, K, int]] = []
    for index, (first_key, first) in enumerate(values):
        for second_key, second in values[index + 1 :]:
            distance = (first ^ second).bit_count()
            if distance <= max_distance:
                pairs.append((first_key, second_key, distance))
    logger.debug("%d near-duplicate pairs among %d images", len(pairs), len(values))
    return pairs
