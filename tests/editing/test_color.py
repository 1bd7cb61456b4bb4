"""Colour maths against published numbers: WCAG contrast, CIE Lab, CIEDE2000 (Sharma et al. 2005)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.editing.color import (
    DominantColor,
    ciede2000,
    contrast_ratio,
    delta_e,
    dominant_colors,
    linear_to_srgb,
    parse_hex,
    relative_luminance,
    srgb_to_lab,
    srgb_to_linear,
    to_hex,
)

# Sharma, Wu and Dalal (2005), Table 1: all 34 pairs (L1, a1, b1, L2, a2, b2, ΔE00).
SHARMA_PAIRS = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_matches_all_34_published_pairs_to_4_decimals_both_ways() -> None:
    table = np.array(SHARMA_PAIRS)
    lab1, lab2, expected = table[:, 0:3], table[:, 3:6], table[:, 6]
    assert np.round(ciede2000(lab1, lab2), 4).tolist() == expected.tolist()
    assert np.round(ciede2000(lab2, lab1), 4).tolist() == expected.tolist()


def test_ciede2000_of_a_colour_with_itself_is_zero() -> None:
    labs = srgb_to_lab(np.random.default_rng(3).integers(0, 256, (500, 3)))
    assert np.abs(ciede2000(labs, labs)).max() == 0.0
    assert delta_e("#1F3A93", (31, 58, 147)) == 0.0


def test_wcag_contrast_known_answers() -> None:
    assert contrast_ratio("#000000", "#FFFFFF") == 21.0
    assert contrast_ratio("#FFF", "#000") == 21.0  # order does not matter
    assert round(contrast_ratio("#777777", "#FFFFFF"), 2) == 4.48  # just fails AA
    assert round(contrast_ratio("#767676", "#FFFFFF"), 2) == 4.54  # the lightest grey passing AA
    assert contrast_ratio((10, 20, 30), (10, 20, 30)) == 1.0
    assert relative_luminance("#FFFFFF") == 1.0
    assert relative_luminance("#000000") == 0.0


def test_linearisation_uses_the_0_04045_threshold_and_round_trips() -> None:
    assert float(srgb_to_linear(0.04045)) == pytest.approx(0.04045 / 12.92)
    assert float(srgb_to_linear(0.5)) == pytest.approx(((0.5 + 0.055) / 1.055) ** 2.4)
    values = np.linspace(0, 1, 256)
    assert np.allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-12)


def test_lab_of_primaries_and_white() -> None:
    # Published D65 Lab of sRGB red and white (e.g. Lindbloom's calculator).
    assert np.allclose(srgb_to_lab(np.array([255, 0, 0])), [53.2408, 80.0925, 67.2032], atol=1e-3)
    assert np.allclose(srgb_to_lab(np.array([255, 255, 255])), [100.0, 0.0, 0.0], atol=1e-3)
    assert np.allclose(srgb_to_lab(np.array([0, 0, 0])), [0.0, 0.0, 0.0])


def test_hex_parsing_and_refusals() -> None:
    assert parse_hex("#1f3a93") == (31, 58, 147)
    assert parse_hex(" abc ") == (0xAA, 0xBB, 0xCC)
    assert to_hex((31, 58, 147)) == "#1F3A93"
    for bad in ("#12345", "red", "#GGGGGG", ""):
        with pytest.raises(ValueError, match="not a hex colour"):
            parse_hex(bad)
    with pytest.raises(ValueError, match="three integers 0-255"):
        contrast_ratio((0, 0, 256), "#000")


def _quadrants() -> Image.Image:
    """Half red, a quarter navy, a quarter white: known shares."""
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, :32] = (220, 30, 40)
    pixels[:32, 32:] = (20, 30, 90)
    pixels[32:, 32:] = (255, 255, 255)
    return Image.fromarray(pixels)


def test_dominant_colours_of_flat_regions_are_exact_with_exact_shares() -> None:
    found = dominant_colors(_quadrants(), k=3)
    assert found == (
        DominantColor("#DC1E28", 0.5),
        DominantColor("#141E5A", 0.25),
        DominantColor("#FFFFFF", 0.25),
    )


def test_dominant_colours_are_deterministic_on_a_noisy_photo_like_image() -> None:
    rng = np.random.default_rng(11)
    base = np.asarray(_quadrants()).astype(np.int16)
    noisy = Image.fromarray(np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8))
    first, second = dominant_colors(noisy, k=3), dominant_colors(noisy.copy(), k=3)
    assert first == second
    assert [round(c.share, 2) for c in first] == [0.5, 0.25, 0.25]
    assert sum(c.share for c in first) == pytest.approx(1.0)
    # The noise averages out: each cluster sits within a just-noticeable difference of its region.
    assert delta_e(first[0].hex, "#DC1E28") < 1.5


def test_dominant_colours_ignore_pixels_outside_the_mask() -> None:
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True  # only the navy and white half
    found = dominant_colors(_quadrants(), k=3, mask=mask)
    assert {c.hex for c in found} == {"#141E5A", "#FFFFFF"}
    assert [c.share for c in found] == [0.5, 0.5]
    with pytest.raises(ValueError, match="selects no pixels"):
        dominant_colors(_quadrants(), mask=np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="the mask is 10x10 but the image is 64x64"):
        dominant_colors(_quadrants(), mask=Image.new("L", (10, 10), 255))
