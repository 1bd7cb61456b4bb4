"""Colour names, hex/RGB conversion and CIEDE2000 distance (checked against Sharma et al.'s data)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brand_kits.colors import (
    NAMED_COLORS,
    delta_e,
    delta_e_lab,
    hex_to_rgb,
    nearest_color_name,
    normalize_hex,
    rgb_to_hex,
    rgb_to_lab,
)
from brand_kits.errors import KitError

rgb_values = st.tuples(*[st.integers(0, 255)] * 3)

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", table 1 (selected pairs,
# including the hue-wrap and achromatic cases that naive implementations get wrong).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (50.0, 3.2592, 0.335), 1.0000),
    ((50.0, 2.5, 0.0), (50.0, 0.0, -2.5), 4.3065),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_ciede2000_matches_published_values(
    lab1: tuple[float, float, float], lab2: tuple[float, float, float], expected: float
) -> None:
    assert delta_e_lab(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert delta_e_lab(lab2, lab1) == pytest.approx(expected, abs=1e-4)


def test_srgb_to_lab_reference_points() -> None:
    assert rgb_to_lab((255, 255, 255)) == pytest.approx((100.0, 0.0, 0.0), abs=1e-3)
    assert rgb_to_lab((0, 0, 0)) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    # sRGB red in Lab (D65): L 53.24, a 80.09, b 67.20
    assert rgb_to_lab((255, 0, 0)) == pytest.approx((53.24, 80.09, 67.20), abs=0.02)


@pytest.mark.parametrize(
    ("spelling", "rgb"),
    [
        ("#1F3A93", (31, 58, 147)),
        ("1f3a93", (31, 58, 147)),
        ("#abc", (170, 187, 204)),
        ("FFF", (255, 255, 255)),
    ],
)
def test_hex_to_rgb_accepts_the_usual_spellings(spelling: str, rgb: tuple[int, int, int]) -> None:
    assert hex_to_rgb(spelling) == rgb


@pytest.mark.parametrize("bad", ["", "#", "#12", "#1234", "#12345G", "##123456", "rgb(1,2,3)", "#1234567"])
def test_hex_to_rgb_refuses_with_an_example(bad: str) -> None:
    with pytest.raises(KitError, match="#RRGGBB"):
        hex_to_rgb(bad)


@pytest.mark.parametrize("bad", [(0, 0), (0, 0, 256), (-1, 0, 0), (0.5, 0, 0), (True, 0, 0), "abc"])
def test_rgb_to_hex_refuses_non_8_bit_triples(bad: object) -> None:
    with pytest.raises(KitError, match="0-255"):
        rgb_to_hex(bad)  # type: ignore[arg-type]


@given(rgb_values)
def test_hex_round_trip(rgb: tuple[int, int, int]) -> None:
    text = rgb_to_hex(rgb)
    assert text == text.upper() and len(text) == 7
    assert hex_to_rgb(text) == rgb
    assert normalize_hex(text.lower().lstrip("#")) == text


@given(rgb_values, rgb_values)
def test_delta_e_is_a_symmetric_non_negative_distance(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    assert delta_e(a, a) == pytest.approx(0.0, abs=1e-9)
    assert delta_e(a, b) >= 0.0
    assert delta_e(a, b) == pytest.approx(delta_e(b, a), abs=1e-9)


def test_table_is_lower_case_words_and_unique_colours() -> None:
    assert 130 <= len(NAMED_COLORS) <= 150
    assert all(name == name.lower() and "  " not in name and name.strip() == name for name in NAMED_COLORS)
    assert len(set(NAMED_COLORS.values())) == len(NAMED_COLORS)


@pytest.mark.parametrize(
    ("color", "name"),
    [
        ("#1F3A93", "dark slate blue"),
        ("#000080", "navy"),
        ((100, 150, 240), "cornflower blue"),
        ("#F4C20D", "gold"),
        ("#E3342F", "red"),
        ("#0F7B3E", "sea green"),
    ],
)
def test_nearest_color_name(color: str | tuple[int, int, int], name: str) -> None:
    assert nearest_color_name(color) == name


@given(st.sampled_from(sorted(NAMED_COLORS)))
def test_every_named_colour_names_itself(name: str) -> None:
    assert nearest_color_name(NAMED_COLORS[name]) == name
