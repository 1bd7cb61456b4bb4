"""Perceptual hash and near-duplicate pairs: robust to re-encoding and resizing, apart for other photos."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kit_images import encode
from PIL import Image, ImageDraw, ImageEnhance

from brand_kits.dedupe import find_near_duplicates, hamming, perceptual_hash
from brand_kits.errors import InvalidImage, KitError, UnsupportedImageFormat

hashes = st.integers(0, 2**64 - 1).map(lambda value: f"{value:016x}")


def scene(seed: int, width: int = 480, height: int = 360) -> Image.Image:
    """A photo-like picture: lit background, a few soft shapes, sensor noise (different per seed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    light = rng.uniform(0.3, 1.0, 3)
    background = 60 + 120 * (np.sin(xx / rng.uniform(40, 120)) * 0.5 + 0.5)[..., None] * light
    image = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        size = int(rng.integers(40, 160))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + size, y + size), fill=colour)
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def test_hash_is_16_hex_digits_and_deterministic() -> None:
    data = encode(scene(1), "PNG")
    first = perceptual_hash(data)
    assert len(first) == 16 and int(first, 16) >= 0
    assert perceptual_hash(data) == first


def test_reencoded_and_resized_copy_is_a_near_duplicate() -> None:
    original = scene(1)
    copy = original.resize((int(original.width * 0.9), int(original.height * 0.9)), Image.Resampling.LANCZOS)
    original_hash = perceptual_hash(encode(original, "PNG"))
    copy_hash = perceptual_hash(encode(copy, "JPEG", quality=85))
    assert hamming(original_hash, copy_hash) <= 6
    brighter = ImageEnhance.Brightness(original).enhance(1.1)
    assert hamming(original_hash, perceptual_hash(encode(brighter, "WEBP", quality=80))) <= 6


def test_different_photos_are_far_apart() -> None:
    hashes_by_seed = [perceptual_hash(encode(scene(seed), "PNG")) for seed in range(1, 6)]
    for index, first in enumerate(hashes_by_seed):
        for second in hashes_by_seed[index + 1 :]:
            assert hamming(first, second) > 12


def test_exif_rotation_is_applied_before_hashing() -> None:
    upright = scene(3)
    rotated = upright.transpose(Image.Transpose.ROTATE_90)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with "rotate 90 CW to display"
    tagged = encode(rotated, "JPEG", quality=92, exif=exif.tobytes())
    assert hamming(perceptual_hash(encode(upright, "PNG")), perceptual_hash(tagged)) <= 6


def test_find_near_duplicates_reports_pairs_in_first_seen_order() -> None:
    a, b = scene(1), scene(2)
    items = [
        ("a.png", perceptual_hash(encode(a, "PNG"))),
        ("b.png", perceptual_hash(encode(b, "PNG"))),
        ("a-copy.jpg", perceptual_hash(encode(a.resize((432, 324)), "JPEG", quality=85))),
        ("a-again.webp", perceptual_hash(encode(a, "WEBP", quality=90))),
    ]
    pairs = find_near_duplicates(items)
    assert [(first, second) for first, second, _ in pairs] == [
        ("a.png", "a-copy.jpg"),
        ("a.png", "a-again.webp"),
        ("a-copy.jpg", "a-again.webp"),
    ]
    assert all(0 <= distance <= 6 for _, _, distance in pairs)
    assert find_near_duplicates(items, max_distance=0) == [pair for pair in pairs if pair[2] == 0]
    assert find_near_duplicates([]) == []


def test_keys_may_be_any_objects() -> None:
    same = "00000000000000ff"
    assert find_near_duplicates([(1, same), (2, "00000000000000fe"), (3, "ffffffffffffffff")]) == [(1, 2, 1)]
    assert find_near_duplicates([((1, "x"), same), ((2, "y"), same)]) == [((1, "x"), (2, "y"), 0)]


@given(hashes, hashes, hashes)
def test_hamming_is_a_metric(a: str, b: str, c: str) -> None:
    assert hamming(a, a) == 0
    assert hamming(a, b) == hamming(b, a)
    assert 0 <= hamming(a, b) <= 64
    assert hamming(a, c) <= hamming(a, b) + hamming(b, c)
    assert hamming(a, b.upper()) == hamming(a, b)


@pytest.mark.parametrize(
    "bad", ["", "abc", "0" * 15, "0" * 17, "g" * 16, "0x" + "0" * 14, "0_" + "0" * 14, " " + "0" * 15]
)
def test_malformed_hashes_are_refused(bad: str) -> None:
    with pytest.raises(KitError, match="16 hex digits"):
        hamming(bad, "0" * 16)


@pytest.mark.parametrize("bad", [-1, 65, True])
def test_max_distance_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(KitError, match="0 to 64"):
        find_near_duplicates([], max_distance=bad)  # type: ignore[arg-type]


def test_bad_uploads_are_refused_like_at_ingest() -> None:
    with pytest.raises(InvalidImage):
        perceptual_hash(b"not an image at all")
    with pytest.raises(UnsupportedImageFormat):
        perceptual_hash(encode(scene(1), "BMP"))
