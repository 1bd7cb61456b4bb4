"""Overlay layer and safe zones: deterministic bytes, placement, contrast numbers, refusals."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.editing.color import contrast_ratio
from studio.editing.overlay import MIN_FONT_PX, OverlayError, OverlaySpec, render_overlay
from studio.editing.safezones import DEFAULT_ZONE, SAFE_ZONES, safe_box, zone_for
from studio.formats import AD_FORMATS

PALETTE = ("#1F3A93", "#F5A623", "#FAFAFA")
COPY: dict[str, Any] = {
    "headline": "Fresh taste, every single morning",
    "cta": "Shop now",
    "legal": "Terms apply. See site.",
}


def _flat(color: tuple[int, int, int], size: tuple[int, int] = (1080, 1080)) -> Image.Image:
    return Image.new("RGB", size, color)


def _photo_like(size: tuple[int, int] = (1080, 1920)) -> Image.Image:
    """Left half dark navy, right half light grey, with noise: a background no single colour reads on."""
    rng = np.random.default_rng(7)
    pixels = np.full((size[1], size[0], 3), 200, np.int16)
    pixels[:, : size[0] // 2] = (30, 40, 60)
    pixels += rng.integers(-10, 11, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _logo_png() -> bytes:
    """A red disc on a transparent 200x100 canvas."""
    logo = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((0, 0, 199, 99), fill=(220, 30, 40, 255))
    buffer = io.BytesIO()
    logo.save(buffer, "PNG")
    return buffer.getvalue()


def _inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] < inner[2] <= outer[2] and outer[1] <= inner[1] < inner[3] <= outer[3]


# --- safe zones ---------------------------------------------------------------------------------


def test_safe_boxes_follow_the_channel_rules_and_scale_to_the_canvas() -> None:
    assert safe_box("meta_stories", 1080, 1920) == (64, 250, 1016, 1580)  # top 250, bottom 340
    assert safe_box("meta_stories", 540, 960) == (32, 125, 508, 790)  # the same zone, half size
    assert safe_box("meta_feed_square", 1080, 1080) == (64, 64, 1016, 1016)  # Instagram 64 px
    assert safe_box("meta_feed_portrait", 1080, 1350) == (64, 64, 1016, 1286)
    assert safe_box("google_banner_728x90", 728, 90) == (5, 5, 723, 85)  # 6 % of the short side
    assert safe_box("google_banner_320x50", 320, 50) == (4, 4, 316, 46)  # the 4 px floor
    assert safe_box("linkedin_landscape", 1200, 628) == (60, 31, 1140, 597)  # default 5 %
    assert safe_box(None, 100, 100) == (5, 5, 95, 95)
    assert zone_for("x_square") is DEFAULT_ZONE


def test_every_ad_format_has_a_safe_box_inside_its_canvas() -> None:
    assert set(SAFE_ZONES) <= set(AD_FORMATS)
    for key, fmt in AD_FORMATS.items():
        box = safe_box(key, fmt.width, fmt.height)
        assert _inside(box, (0, 0, fmt.width, fmt.height)), key


def test_safe_box_refuses_unknown_formats_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="unknown ad format 'tiktok'; use one of: .*meta_stories"):
        safe_box("tiktok", 100, 100)
    with pytest.raises(ValueError, match="height must be a positive whole number"):
        safe_box("meta_stories", 1080, 0)


# --- overlay: determinism and placement ------------------------------------------------------------


def test_same_inputs_give_byte_identical_png_and_other_copy_differs() -> None:
    spec = OverlaySpec(**COPY, logo_png=_logo_png(), palette=PALETTE, fix_contrast=True)
    box = safe_box("meta_stories", 1080, 1920)
    first = render_overlay(_photo_like(), spec, box)
    second = render_overlay(_photo_like(), spec, box)
    assert first.png_bytes() == second.png_bytes()
    assert first.boxes == second.boxes and first.contrast == second.contrast
    other = render_overlay(
        _photo_like(), OverlaySpec(**{**COPY, "headline": "Fresh taste"}, palette=PALETTE), box
    )
    assert other.png_bytes() != first.png_bytes()
    assert first.font.startswith("Aileron Regular")


def test_overlay_stays_inside_the_safe_box_and_leaves_every_other_pixel_alone() -> None:
    source = _photo_like()
    box = safe_box("meta_stories", *source.size)
    result = render_overlay(source, OverlaySpec(**COPY, logo_png=_logo_png(), palette=PALETTE), box)
    assert set(result.boxes) == {"logo", "headline", "cta", "cta_text", "legal"}
    for name, element in result.boxes.items():
        assert _inside(element, box), name
    changed = np.any(np.asarray(result.image) != np.asarray(source), axis=2)
    rows, cols = np.nonzero(changed)
    assert changed.any()
    assert box[1] <= rows.min() and rows.max() < box[3] and box[0] <= cols.min() and cols.max() < box[2]


def test_position_presets_put_the_text_block_at_the_top_bottom_or_middle() -> None:
    box = safe_box("meta_feed_square", 1080, 1080)
    spec: dict[str, Any] = {"headline": "Hello", "cta": "Buy"}
    top = render_overlay(_flat((255, 255, 255)), OverlaySpec(**spec, position="top"), box).boxes
    bottom = render_overlay(_flat((255, 255, 255)), OverlaySpec(**spec, position="bottom"), box).boxes
    centre = render_overlay(_flat((255, 255, 255)), OverlaySpec(**spec, position="center"), box).boxes
    assert top["headline"][1] - box[1] < 30  # ink starts just below the box top
    assert box[3] - bottom["cta"][3] == 0  # the button sits on the box bottom
    middle = (centre["headline"][1] + centre["cta"][3]) / 2
    assert abs(middle - (box[1] + box[3]) / 2) < 20


def test_the_logo_keeps_its_transparency() -> None:
    source = _flat((10, 120, 60))
    result = render_overlay(source, OverlaySpec(logo_png=_logo_png()), safe_box(None, 1080, 1080))
    left, top, right, bottom = result.boxes["logo"]
    pixels = np.asarray(result.image)
    assert tuple(pixels[top, left]) == (10, 120, 60)  # transparent corner: the background shows
    assert tuple(pixels[(top + bottom) // 2, (left + right) // 2]) == (220, 30, 40)  # the disc itself
    assert (right - left) == 2 * (bottom - top)  # aspect ratio kept


# --- overlay: contrast numbers --------------------------------------------------------------------


def test_black_text_on_white_measures_21_and_grey_777_measures_4_48_with_a_warning() -> None:
    box = safe_box(None, 1080, 1080)
    black = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline="Hello", text_color="#000000"), box)
    assert black.contrast == {"headline": 21.0} and black.contrast_mean == {"headline": 21.0}
    assert black.warnings == ()
    grey = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline="Hello", text_color="#777777"), box)
    assert round(grey.contrast["headline"], 2) == 4.48
    assert any("headline contrast 4.48:1" in w and "below WCAG AA 4.5:1" in w for w in grey.warnings)


def test_cta_contrast_is_text_against_its_button() -> None:
    spec = OverlaySpec(cta="Buy now", cta_color="#000000", cta_text_color="#FFFFFF")
    result = render_overlay(_flat((255, 255, 255)), spec, safe_box(None, 1080, 1080))
    assert result.contrast == {"cta": 21.0}
    left, top, right, bottom = result.boxes["cta"]
    assert tuple(np.asarray(result.image)[(top + bottom) // 2, left + 3]) == (0, 0, 0)  # the button


def test_default_colours_come_from_the_palette_against_the_real_background() -> None:
    box = safe_box(None, 1080, 1080)
    on_dark = render_overlay(_flat((16, 16, 16)), OverlaySpec(**COPY, palette=PALETTE), box)
    on_light = render_overlay(_flat((250, 250, 250)), OverlaySpec(**COPY, palette=PALETTE), box)
    assert on_dark.colors["text"] == "#FAFAFA"  # the lightest kit colour reads on dark
    assert on_light.colors["text"] == "#1F3A93"  # the darkest kit colour reads on light
    assert on_light.colors["cta"] == "#F5A623"  # the most saturated kit colour (Lab chroma)
    assert on_light.contrast["cta"] == pytest.approx(contrast_ratio(on_light.colors["cta_text"], "#F5A623"))
    assert on_light.contrast["cta"] >= 4.5 and on_light.contrast["headline"] >= 4.5
    no_palette = render_overlay(_flat((250, 250, 250)), OverlaySpec(headline="Hi"), box)
    assert no_palette.colors["text"] == "#000000"


def test_contrast_fix_lays_the_lightest_scrim_that_reaches_aa_and_reports_both_numbers() -> None:
    source = _flat((128, 128, 128))  # white on #808080 is 3.95:1, below AA
    spec = OverlaySpec(headline="Summer sale", legal="Terms apply", text_color="#FFFFFF", palette=PALETTE)
    box = safe_box(None, 1080, 1080)
    plain = render_overlay(source, spec, box)
    fixed = render_overlay(source, OverlaySpec(**{**spec.__dict__, "fix_contrast": True}), box)
    assert round(plain.contrast["headline"], 2) == 3.95 and plain.contrast_before_fix == {}
    assert fixed.contrast_before_fix == {
        "headline": plain.contrast["headline"],
        "legal": plain.contrast["legal"],
    }
    assert min(fixed.contrast.values()) >= 4.5
    assert fixed.colors["scrim"] == "#1F3A93"  # the darkest kit colour behind white text
    scrim = fixed.boxes["scrim"]
    assert _inside(fixed.boxes["headline"], scrim) and _inside(fixed.boxes["legal"], scrim)
    corner = tuple(int(v) for v in np.asarray(fixed.image)[scrim[1], scrim[0]])
    assert corner == tuple(round(128 * 0.5 + c * 0.5) for c in (0x1F, 0x3A, 0x93))  # 50 % was enough
    assert not any("below WCAG AA" in w for w in fixed.warnings)
    assert any("scrim at 50% opacity" in w for w in fixed.warnings)


def test_contrast_fix_on_a_mixed_photo_reaches_aa_for_the_worst_pixel() -> None:
    spec = OverlaySpec(**COPY, palette=PALETTE, fix_contrast=True)
    result = render_overlay(_photo_like(), spec, safe_box("meta_stories", 1080, 1920))
    assert result.contrast_before_fix["headline"] < 2.0  # half the text sits on navy
    assert result.contrast["headline"] >= 4.5 and result.contrast["legal"] >= 4.5


# --- overlay: fitting and refusals ------------------------------------------------------------------


def test_long_copy_wraps_within_the_box_and_shrinks_when_too_big() -> None:
    box = safe_box("meta_feed_square", 1080, 1080)
    long_headline = "A headline long enough that it has to wrap onto several lines to fit"
    result = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline=long_headline), box)
    headline = result.boxes["headline"]
    assert headline[3] - headline[1] > 1.5 * result.font_sizes["headline"]  # wrapped onto 2+ lines
    assert (
        result.font_sizes["headline"] == round(0.065 * 952) and result.warnings == ()
    )  # no shrinking needed
    huge = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline=long_headline, font_scale=4), box)
    assert huge.font_sizes["headline"] < round(4 * 0.065 * 952)
    assert any(w.startswith("headline shrunk to") for w in huge.warnings)
    assert _inside(huge.boxes["headline"], box)
    banner = safe_box("google_banner_300x250", 300, 250)
    small = render_overlay(_flat((255, 255, 255), (300, 250)), OverlaySpec(**COPY), banner)
    assert small.font_sizes == {
        "headline": 16,
        "cta": MIN_FONT_PX,
        "legal": MIN_FONT_PX,
    }  # floors, not smaller
    assert all(_inside(b, banner) for b in small.boxes.values())


def test_bigger_font_scale_draws_bigger_text() -> None:
    box = safe_box(None, 1080, 1080)
    normal = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline="Hi"), box)
    big = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline="Hi", font_scale=2.0), box)
    assert big.font_sizes["headline"] == pytest.approx(2 * normal.font_sizes["headline"], abs=1)


def test_copy_that_cannot_fit_even_at_the_minimum_size_is_refused() -> None:
    banner = safe_box("google_banner_320x50", 320, 50)
    with pytest.raises(OverlayError, match="does not fit the 312x42 px text area even at the 10 px minimum"):
        render_overlay(_flat((255, 255, 255), (320, 50)), OverlaySpec(**COPY), banner)
    with pytest.raises(OverlayError, match="a word wider than that"):
        render_overlay(_flat((255, 255, 255), (320, 50)), OverlaySpec(headline="W" * 60), banner)


def test_text_is_drawn_literally_and_control_characters_are_refused() -> None:
    box = safe_box(None, 1080, 1080)
    marked = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline="<b>Sale</b>"), box)
    plain = render_overlay(_flat((255, 255, 255)), OverlaySpec(headline="Sale"), box)
    width = lambda b: b[2] - b[0]  # noqa: E731
    assert width(marked.boxes["headline"]) > 2 * width(plain.boxes["headline"])  # the tags are drawn
    with pytest.raises(OverlayError, match="control character U\\+0007 at position 4"):
        OverlaySpec(headline="Sale\x07")
    with pytest.raises(OverlayError, match="control character U\\+202E"):
        OverlaySpec(cta="Buy \u202enow")
    with pytest.raises(OverlayError, match="headline is 201 characters; the most is 200"):
        OverlaySpec(headline="x" * 201)


def test_bad_spec_values_are_refused_with_the_field_named() -> None:
    with pytest.raises(OverlayError, match="cta_color: 'orange' is not a hex colour"):
        OverlaySpec(cta_color="orange")
    with pytest.raises(OverlayError, match="palette\\[1\\]"):
        OverlaySpec(palette=("#000000", "#12"))
    with pytest.raises(OverlayError, match="font_scale must be a number from 0.25 to 4"):
        OverlaySpec(font_scale=10)
    with pytest.raises(OverlayError, match="position must be"):
        OverlaySpec(position="left")  # type: ignore[arg-type]
    with pytest.raises(OverlayError, match="not a readable PNG"):
        render_overlay(_flat((0, 0, 0)), OverlaySpec(logo_png=b"GIF89a not a png"), (0, 0, 10, 10))
    jpeg = io.BytesIO()
    _flat((1, 2, 3), (20, 20)).save(jpeg, "JPEG")
    with pytest.raises(OverlayError, match="not a readable PNG"):
        render_overlay(_flat((0, 0, 0)), OverlaySpec(logo_png=jpeg.getvalue()), (0, 0, 10, 10))
    huge = io.BytesIO()
    Image.new("1", (5000, 5000)).save(huge, "PNG")  # a few KB that decode to 25 megapixels
    with pytest.raises(OverlayError, match="the logo is 5000x5000; the most is 4096 px a side"):
        render_overlay(_flat((0, 0, 0)), OverlaySpec(logo_png=huge.getvalue()), (0, 0, 10, 10))
    with pytest.raises(
        OverlayError, match="is not \\(left, top, right, bottom\\) inside the 1080x1080 image"
    ):
        render_overlay(_flat((0, 0, 0)), OverlaySpec(headline="Hi"), (0, 0, 2000, 10))
