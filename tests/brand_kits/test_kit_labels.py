"""safe_label: client file names become harmless display labels (bad_inputs.md A11)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brand_kits import safe_label

BIDI_MARKS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@pytest.mark.parametrize(
    ("filename", "label"),
    [
        ("../../app/config.py", "config.py"),
        ("C:\\x.png", "x.png"),
        ("C:x.png", "x.png"),
        ("C:\\Users\\ana\\Pictures\\bottle.jpg", "bottle.jpg"),
        ("\\\\server\\share\\logo.png", "logo.png"),
        ("a.png:evil.exe", "a.png"),
        ("a.png:evil.exe:$DATA", "a.png"),
        ("photo\u202egnp.exe", "photognp.exe"),
        ("\u2066invoice\u2069.png", "invoice.png"),
        ("line1\nline2.png", "line1 line2.png"),
        ("nul\x00byte.png", "nulbyte.png"),
        ("tab\t\t and  spaces .png", "tab and spaces .png"),
        ("bell\x07\x1b[31m.png", "bell[31m.png"),
        ("  Bottle 1.webp  ", "Bottle 1.webp"),
        ("", "image"),
        ("/", "image"),
        ("..", "image"),
        ("dir/", "image"),
        ("\x00\n\u202e", "image"),
        ("Cafe\u0301.png", "Caf\u00e9.png"),  # NFC: one code point, as typed
        ("bad\udc80bytes.png", "badbytes.png"),  # lone surrogate from os.fsdecode
    ],
)
def test_labels(filename: str, label: str) -> None:
    assert safe_label(filename) == label


def test_300_character_name_is_truncated_keeping_the_extension() -> None:
    label = safe_label("x" * 300 + ".jpeg")
    assert len(label) == 120
    assert label.endswith(".jpeg") and label.startswith("xxx")


def test_300_character_name_without_extension_is_truncated() -> None:
    assert safe_label("y" * 300) == "y" * 120


def _forbidden(char: str) -> bool:
    return char in "/\\:\x00" or char in BIDI_MARKS or unicodedata.category(char) in ("Cc", "Cf", "Cs")


@settings(max_examples=400, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.characters(codec="utf-8"),
            st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Zs"]),
            st.sampled_from(sorted(BIDI_MARKS | set("/\\:.\x00\n\r\t C"))),
        ),
        max_size=400,
    )
)
def test_any_name_gives_a_short_single_line_single_component_label(filename: str) -> None:
    label = safe_label(filename)
    assert 1 <= len(label) <= 120
    assert label == label.strip()
    assert not any(_forbidden(char) for char in label)
    assert "\n" not in label and "\r" not in label and "  " not in label
    assert label not in (".", "..")
    assert safe_label(label) == label  # idempotent: a label is its own label
