"""Style guides: validation with field-specific errors, JSON round trip, prompt text and term checks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brand_kits.errors import InvalidKitField, KitError
from brand_kits.style import (
    PaletteColor,
    StyleGuide,
    find_banned_terms,
    make_style_guide,
    missing_required_terms,
    negative_prompt,
    style_fragment,
)


def brand_guide() -> StyleGuide:
    return make_style_guide(
        palette=[("#1f3a93", "navy blue"), {"hex": "F4C20D", "name": "sunflower yellow"}],
        fonts=["Helvetica Neue", "Georgia"],
        tone_words=["clean", "minimal", "premium"],
        dos=["show the product upright"],
        donts=["clip art", "watermark"],
        required_terms=["Acme"],
        banned_terms=["cheap", "best ever", "watermark"],
    )


# --- PaletteColor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["#abc", "abc", "#AABBCC", "aabbcc", "  #aAbBcC  "])
def test_palette_color_normalises_hex(spelling: str) -> None:
    assert PaletteColor(spelling, "brand").hex == "#AABBCC"


def test_palette_color_without_name_gets_the_nearest_colour_name() -> None:
    color = PaletteColor("#1F3A93", "  ")
    assert color.name == "dark slate blue"
    assert PaletteColor("#FF0000").name == "red"


@pytest.mark.parametrize(
    ("hex_code", "name", "field"),
    [
        ("#12345", "x", "hex"),
        ("#GGGGGG", "x", "hex"),
        ("", "x", "hex"),
        ("#123456", "x" * 41, "name"),
        ("#123456", "navy\nblue", "name"),
        ("#123456", "navy\u202eblue", "name"),
    ],
)
def test_palette_color_refuses_bad_fields(hex_code: str, name: str, field: str) -> None:
    with pytest.raises(InvalidKitField) as caught:
        PaletteColor(hex_code, name)
    assert caught.value.field == field
    assert (
        "#RRGGBB" in str(caught.value) or "at most 40" in str(caught.value) or "retype" in str(caught.value)
    )


# --- make_style_guide -------------------------------------------------------------------------------


def test_make_style_guide_strips_drops_empty_and_dedupes_case_insensitively() -> None:
    guide = make_style_guide(
        palette=["#1F3A93", ("#1f3a93", "duplicate"), PaletteColor("#F4C20D", "sunflower")],
        tone_words=["  Clean ", "clean", "", "   ", "MINIMAL", "minimal"],
        banned_terms=["Cheap", "cheap "],
    )
    assert guide.tone_words == ("Clean", "MINIMAL")
    assert guide.banned_terms == ("Cheap",)
    assert [c.hex for c in guide.palette] == ["#1F3A93", "#F4C20D"]
    assert guide.palette[0].name == "dark slate blue"
    assert guide.fonts == guide.dos == guide.donts == guide.required_terms == ()


@pytest.mark.parametrize(
    ("kwargs", "field", "hint"),
    [
        ({"palette": [("#1F3A93", "a"), ("#000", "b"), ("zzz", "c")]}, "palette[2].hex", "#RRGGBB"),
        ({"palette": [{"hex": "#123456", "name": "n" * 50}]}, "palette[0].name", "at most 40"),
        ({"palette": [{"name": "navy"}]}, "palette[0].hex", "add one"),
        ({"palette": [{"hex": "#123456", "shade": 1}]}, "palette[0].shade", "hex and name"),
        ({"palette": [42]}, "palette[0]", "must be a colour"),
        ({"palette": [f"#{i:06X}" for i in range(17)]}, "palette", "keep the 16"),
        ({"banned_terms": ["fine", "bad\tterm"]}, "banned_terms[1]", "plain text"),
        ({"banned_terms": [3]}, "banned_terms[0]", "must be text"),
        ({"fonts": ["x" * 201]}, "fonts[0]", "at most 200"),
        ({"dos": [f"do {i}" for i in range(51)]}, "dos", "keep the 50"),
        ({"donts": "no clip art"}, "donts", "list of items"),
    ],
)
def test_make_style_guide_names_the_bad_item_and_how_to_fix_it(
    kwargs: dict[str, object], field: str, hint: str
) -> None:
    with pytest.raises(InvalidKitField) as caught:
        make_style_guide(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert hint in str(caught.value)


def test_limits_count_distinct_items() -> None:
    guide = make_style_guide(palette=["#000"] * 40, dos=["same"] * 500)
    assert len(guide.palette) == 1 and guide.dos == ("same",)


# --- to_dict / from_dict ----------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    guide = brand_guide()
    data = json.loads(json.dumps(guide.to_dict()))
    assert data["palette"] == [
        {"hex": "#1F3A93", "name": "navy blue"},
        {"hex": "#F4C20D", "name": "sunflower yellow"},
    ]
    assert StyleGuide.from_dict(data) == guide


def test_from_dict_treats_missing_keys_as_empty_and_validates() -> None:
    assert StyleGuide.from_dict({}) == StyleGuide()
    assert StyleGuide.from_dict({"tone_words": [" bold "]}).tone_words == ("bold",)
    with pytest.raises(InvalidKitField) as caught:
        StyleGuide.from_dict({"palette": [{"hex": "#12"}]})
    assert caught.value.field == "palette[0].hex"


def test_from_dict_refuses_unknown_keys_and_non_objects() -> None:
    with pytest.raises(InvalidKitField) as caught:
        StyleGuide.from_dict({"tone_words": [], "colours": []})
    assert caught.value.field == "colours"
    assert "palette" in str(caught.value)
    with pytest.raises(KitError):
        StyleGuide.from_dict(["palette"])  # type: ignore[arg-type]


@settings(max_examples=50)
@given(
    st.lists(st.text(max_size=30), max_size=8),
    st.lists(st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True), max_size=8),
)
def test_from_dict_of_to_dict_is_identity(words: list[str], hex_codes: list[str]) -> None:
    try:
        guide = make_style_guide(tone_words=words, banned_terms=words[::-1], palette=hex_codes)
    except InvalidKitField:
        return  # control characters: refused, which other tests cover
    assert StyleGuide.from_dict(guide.to_dict()) == guide


# --- prompt text ------------------------------------------------------------------------------------


def test_style_fragment_lists_tone_words_then_brand_colours() -> None:
    assert (
        style_fragment(brand_guide())
        == "clean, minimal, premium, brand colours navy blue and sunflower yellow"
    )
    assert style_fragment(StyleGuide()) == ""
    one = make_style_guide(palette=[("#1F3A93", "navy blue")])
    assert style_fragment(one) == "brand colour navy blue"
    three = make_style_guide(palette=["#FF0000", "#00FF00", "#0000FF"])
    assert style_fragment(three) == "brand colours red, lime and blue"


def test_style_fragment_never_contains_a_banned_term() -> None:
    guide = make_style_guide(
        tone_words=["cheap chic", "bold", "Cheapskate"],
        palette=[("#FFD700", "cheap gold"), ("#1F3A93", "navy")],
        banned_terms=["cheap"],
    )
    fragment = style_fragment(guide)
    assert fragment == "bold, Cheapskate, brand colour navy"
    assert find_banned_terms(fragment, guide) == []


@pytest.mark.parametrize(
    ("banned", "expected"),
    [
        (["brand colours"], "clean, minimal"),
        (["clean, minimal"], "clean"),
        (["minimal, brand"], "clean, minimal"),
    ],
)
def test_style_fragment_avoids_banned_terms_spanning_items(banned: list[str], expected: str) -> None:
    guide = make_style_guide(
        tone_words=["clean", "minimal"], palette=["#1F3A93", "#F4C20D"], banned_terms=banned
    )
    assert style_fragment(guide) == expected


def test_negative_prompt_joins_donts_and_banned_terms_once_in_order() -> None:
    assert negative_prompt(brand_guide()) == "clip art, watermark, cheap, best ever"
    assert negative_prompt(StyleGuide()) == ""


# --- term checks ------------------------------------------------------------------------------------


def test_find_banned_terms_matches_whole_words_and_phrases_case_insensitively() -> None:
    guide = brand_guide()
    assert find_banned_terms("The BEST   ever bottle, not cheap!", guide) == ["cheap", "best ever"]
    assert find_banned_terms("cheapest, bestever, watermarked", guide) == []
    assert find_banned_terms("", guide) == []


def test_missing_required_terms() -> None:
    guide = make_style_guide(required_terms=["Acme", "since 1920", "C++"])
    assert missing_required_terms("acme bottles since  1920 with c++", guide) == []
    assert missing_required_terms("Acmeish bottles", guide) == ["Acme", "since 1920", "C++"]
