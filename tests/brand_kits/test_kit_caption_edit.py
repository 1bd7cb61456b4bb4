"""caption_edit: bulk edits (all or nothing), strict caption validation, and the token-aware linter."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brand_kits.caption_edit import CAPTION_MAX, apply_bulk_edit, lint_caption, validate_caption
from brand_kits.errors import InvalidKitField

# Printable text without control characters: what a user can type into a caption box.
_PRINTABLE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=0, max_size=60
)
_WORDS = st.text(alphabet="abcdefgh xyz,.", min_size=0, max_size=40)


def _normal(text: str) -> str:
    return re.sub(r"\s{2,}", " ", text).strip()


# ------------------------------------------------------------------------------------ apply_bulk_edit


def test_find_replace_then_prefix_and_suffix() -> None:
    captions = {"b": "a photo of a bottle", "a": "a bottle on a table"}
    edited = apply_bulk_edit(
        captions, prefix="acm3,", suffix=", studio light", find="bottle", replace="acm3 bottle"
    )
    assert list(edited) == ["b", "a"]  # keys and their order preserved
    assert edited == {
        "b": "acm3, a photo of a acm3 bottle, studio light",
        "a": "acm3, a acm3 bottle on a table, studio light",
    }
    assert captions["b"] == "a photo of a bottle"  # input untouched


def test_find_is_literal_not_a_regex() -> None:
    assert apply_bulk_edit({1: "abc a.c"}, find="a.c", replace="X") == {1: "abc X"}
    assert apply_bulk_edit({1: "price (USD) [x]"}, find="(USD)", replace="$") == {1: "price $ [x]"}


def test_removing_a_word_leaves_no_double_space() -> None:
    assert apply_bulk_edit({"k": "a sks  red bottle"}, find="red", replace="") == {"k": "a sks bottle"}


def test_prefix_with_its_own_trailing_space_is_not_doubled() -> None:
    assert apply_bulk_edit({"k": " sks bottle "}, prefix="photo of ", suffix=" , hd") == {
        "k": "photo of sks bottle, hd"
    }
    assert apply_bulk_edit({"k": "sks bottle"}, suffix="hd") == {"k": "sks bottle hd"}


def test_empty_find_with_replace_is_refused() -> None:
    with pytest.raises(InvalidKitField) as caught:
        apply_bulk_edit({"k": "sks"}, replace="x")
    assert caught.value.field == "find"


@pytest.mark.parametrize("field", ["prefix", "suffix", "find", "replace"])
def test_edit_text_with_a_line_break_names_its_field(field: str) -> None:
    kwargs = {field: "a\nb"}
    if field == "replace":
        kwargs["find"] = "sks"
    with pytest.raises(InvalidKitField) as caught:
        apply_bulk_edit({"k": "sks bottle"}, **kwargs)
    assert caught.value.field == field
    assert "line break" in str(caught.value)


@pytest.mark.parametrize(
    ("caption", "find", "words"),
    [
        ("sks\nbottle", "", "line break"),
        ("sks \n\n bottle", "", "line break"),  # never collapsed away with the spaces
        ("sks\x00bottle", "", "control character U+0000"),
        ("sks bottle", "sks bottle", "empty"),
        ("x" * 990, "", f"at most {CAPTION_MAX}"),
    ],
)
def test_bad_results_are_refused_naming_the_key(caption: str, find: str, words: str) -> None:
    captions = {"good": "a photo of sks", "photo-7": caption}
    with pytest.raises(InvalidKitField) as caught:
        apply_bulk_edit(captions, find=find, suffix="studio light, soft shadow" if not find else "")
    assert caught.value.field == "caption"
    assert "'photo-7'" in str(caught.value) and words in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(
    captions=st.dictionaries(st.integers(), _PRINTABLE, max_size=6),
    prefix=_PRINTABLE,
    suffix=_PRINTABLE,
)
def test_property_shape_of_results(captions: dict[int, str], prefix: str, suffix: str) -> None:
    try:
        edited = apply_bulk_edit(captions, prefix=prefix, suffix=suffix)
    except InvalidKitField as exc:  # the only documented failure: a result that is empty or too long
        assert exc.field == "caption"
        return
    assert list(edited) == list(captions)
    for key, result in edited.items():
        assert "  " not in result and result == result.strip() and result
        assert result.startswith(_normal(prefix))
        assert result.endswith(_normal(suffix))
        assert _normal(captions[key]) in result


@settings(max_examples=150, deadline=None)
@given(captions=st.dictionaries(st.text(max_size=4), _WORDS, max_size=6), find=_WORDS, replace=_WORDS)
def test_property_find_absent_changes_nothing_but_spacing(
    captions: dict[str, str], find: str, replace: str
) -> None:
    if (
        not find
        or any(find in text for text in captions.values())
        or any(not text.strip() for text in captions.values())
    ):
        return
    assert apply_bulk_edit(captions, find=find, replace=replace) == {
        k: _normal(v) for k, v in captions.items()
    }


@settings(max_examples=200, deadline=None)
@given(
    captions=st.dictionaries(st.text(max_size=4), st.text(max_size=80), max_size=5),
    prefix=st.text(max_size=20),
    suffix=st.text(max_size=20),
    find=st.text(max_size=5),
    replace=st.text(max_size=20),
)
def test_property_arbitrary_text_never_raises_anything_else(
    captions: dict[str, str], prefix: str, suffix: str, find: str, replace: str
) -> None:
    try:
        edited = apply_bulk_edit(captions, prefix=prefix, suffix=suffix, find=find, replace=replace)
    except InvalidKitField as exc:
        assert exc.field in {"caption", "prefix", "suffix", "find", "replace"}
        return
    for result in edited.values():
        assert validate_caption(result) == result


# ------------------------------------------------------------------------------------ validate_caption


def test_validate_caption_strips_and_accepts_unicode() -> None:
    assert validate_caption("  une photo de sks, crème 👍  ") == "une photo de sks, crème 👍"
    assert validate_caption("x" * CAPTION_MAX) == "x" * CAPTION_MAX


@pytest.mark.parametrize(
    "text", ["", "   ", "x" * (CAPTION_MAX + 1), "a\nb", "a\rb", "a\tb", "a\u2028b", "a\x00b", "a\u202eb"]
)
def test_validate_caption_refuses(text: str) -> None:
    with pytest.raises(InvalidKitField) as caught:
        validate_caption(text)
    assert caught.value.field == "caption"


# ---------------------------------------------------------------------------------------- lint_caption


def _clip_like_count(text: str) -> int:
    """Words and commas, plus the start and end markers a CLIP tokenizer adds."""
    return len(re.findall(r"\w+|[^\w\s]", text)) + 2


def test_clean_caption_has_no_warnings() -> None:
    assert lint_caption("a photo of ACM3 bottle, studio light", "acm3", banned_terms=["nike"]) == []


def test_missing_trigger_is_a_whole_word_check() -> None:
    for caption in ("a photo of a bottle", "acm3x bottle", "my_acm3 bottle"):
        [warning] = lint_caption(caption, "acm3")
        assert "does not contain the trigger token 'acm3'" in warning


def test_empty_caption_warns_once() -> None:
    assert lint_caption("  ", "acm3") == [
        "caption is empty; describe the image and include the trigger token 'acm3'"
    ]


def test_banned_terms_are_named_case_insensitively_as_whole_words_or_phrases() -> None:
    caption = "acm3 bottle, Nike style, like COCA   cola, concatenate"
    [warning] = lint_caption(
        caption, "acm3", banned_terms=["nike", "coca cola", "cat", "adidas", "NIKE", " "]
    )
    assert warning == "caption contains banned terms: 'nike', 'coca cola'; remove or reword them"


def test_token_count_warning_includes_the_counts() -> None:
    at_limit = "acm3 " + "x " * 74  # 75 words + 2 markers = 77
    assert _clip_like_count(at_limit) == 77
    assert lint_caption(at_limit, "acm3", token_count=_clip_like_count) == []
    [warning] = lint_caption(at_limit + "y", "acm3", token_count=_clip_like_count)
    assert warning.startswith("caption is 78 tokens; the base model reads only 77")
    [warning] = lint_caption("acm3 bottle on a table", "acm3", token_count=_clip_like_count, max_tokens=5)
    assert "7 tokens; the base model reads only 5" in warning


def test_several_warnings_together() -> None:
    warnings = lint_caption("a nike\nbottle", "acm3", banned_terms=["nike"])
    assert len(warnings) == 3
