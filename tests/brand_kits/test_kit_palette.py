"""extract_palette: dominant colours with shares, deterministic, through the upload validator."""

from __future__ import annotations

import numpy as np
import pytest
from kit_images import encode, header_only_png
from PIL import Image

from brand_kits.colors import delta_e
from brand_kits.errors import ImageTooLarge, InvalidImage, KitError, UnsupportedImageFormat
from brand_kits.palette import Swatch, extract_palette

NAVY = (0x1F, 0x3A, 0x93)
SUNFLOWER = (0xF4, 0xC2, 0x0D)


def two_colour_image(width: int = 400, height: int = 300, split: float = 0.7) -> Image.Image:
    array = np.empty((height, width, 3), dtype=np.uint8)
    array[: int(height * split)] = NAVY
    array[int(height * split) :] = SUNFLOWER
    return Image.fromarray(array)


@pytest.mark.parametrize(
    ("fmt", "params"), [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"quality": 90})]
)
def test_two_brand_colours_with_their_shares(fmt: str, params: dict[str, object]) -> None:
    swatches = extract_palette(encode(two_colour_image(), fmt, **params))
    assert len(swatches) == 2
    first, second = swatches
    assert delta_e(first.hex, NAVY) < 5 and delta_e(second.hex, SUNFLOWER) < 5
    assert first.share == pytest.approx(0.7, abs=0.02) and second.share == pytest.approx(0.3, abs=0.02)
    assert first.name == "dark slate blue" and second.name == "gold"
    assert sum(s.share for s in swatches) == pytest.approx(1.0)


def test_png_colours_are_exact() -> None:
    first, second = extract_palette(encode(two_colour_image(), "PNG"))
    assert (first.hex, second.hex) == ("#1F3A93", "#F4C20D")


def test_noisy_photo_clusters_to_at_most_k_sorted_swatches_deterministically() -> None:
    rng = np.random.default_rng(7)
    base = np.zeros((240, 320, 3), dtype=np.float64)
    base[:, :160] = (200, 30, 40)
    base[:, 160:] = (20, 120, 60)
    base[80:160, 100:220] = (240, 240, 235)
    noisy = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    data = encode(Image.fromarray(noisy), "JPEG", quality=88)
    swatches = extract_palette(data, k=4)
    assert 3 <= len(swatches) <= 4
    assert [s.share for s in swatches] == sorted((s.share for s in swatches), reverse=True)
    assert sum(s.share for s in swatches) == pytest.approx(1.0)
    for expected in ((200, 30, 40), (20, 120, 60), (240, 240, 235)):
        assert min(delta_e(s.hex, expected) for s in swatches) < 5
    assert extract_palette(data, k=4) == swatches
    assert all(isinstance(s, Swatch) and s.hex.startswith("#") and len(s.hex) == 7 for s in swatches)


def test_near_identical_shades_merge_into_one_swatch() -> None:
    array = np.empty((100, 100, 3), dtype=np.uint8)
    array[:50] = (100, 100, 200)
    array[50:] = (102, 101, 203)  # delta E about 1: the same colour to the eye
    (only,) = extract_palette(encode(Image.fromarray(array), "PNG"))
    assert only.share == pytest.approx(1.0)
    assert delta_e(only.hex, (101, 100, 201)) < 2


def test_tiny_specks_fold_into_the_main_colours() -> None:
    array = np.full((200, 200, 3), 255, dtype=np.uint8)
    array[:100] = NAVY
    array[5, 5] = (255, 0, 0)  # a single red pixel
    swatches = extract_palette(encode(Image.fromarray(array), "PNG"))
    assert [s.hex for s in swatches] in (["#1F3A93", "#FFFFFF"], ["#FFFFFF", "#1F3A93"])


def test_single_colour_and_k_one() -> None:
    solid = encode(Image.new("RGB", (10, 10), SUNFLOWER), "PNG")
    assert extract_palette(solid) == (Swatch("#F4C20D", "gold", 1.0),)
    (only,) = extract_palette(encode(two_colour_image(), "PNG"), k=1)
    assert only.share == 1.0


def test_transparent_logo_is_read_on_white() -> None:
    logo = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    logo.paste((*NAVY, 255), (0, 0, 50, 100))
    swatches = extract_palette(encode(logo, "PNG"))
    assert {s.hex for s in swatches} == {"#1F3A93", "#FFFFFF"}


@pytest.mark.parametrize("k", [0, 17, -1, True, 2.0])
def test_k_out_of_range_is_refused(k: object) -> None:
    with pytest.raises(KitError, match="1 to 16"):
        extract_palette(encode(two_colour_image(), "PNG"), k=k)  # type: ignore[arg-type]


def test_bad_uploads_are_refused_like_at_ingest() -> None:
    with pytest.raises(InvalidImage):
        extract_palette(b"")
    with pytest.raises(InvalidImage):
        extract_palette(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ImageTooLarge):
        extract_palette(header_only_png(30_000, 30_000))
    with pytest.raises(UnsupportedImageFormat):
        extract_palette(encode(two_colour_image(), "TIFF"))
