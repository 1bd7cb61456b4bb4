"""Default captions and caption linting."""

from __future__ import annotations

from brand_kits import default_caption, lint_caption


def test_default_caption() -> None:
    assert default_caption("sks", "water bottle") == "a photo of sks water bottle"


def test_good_caption_has_no_warnings() -> None:
    assert lint_caption("a photo of sks bottle on a marble table", "sks") == []
    assert lint_caption("SKS bottle, studio light", "sks") == []  # CLIP lowercases
    assert lint_caption(default_caption("acm3", "t-shirt"), "acm3") == []


def test_missing_trigger_is_reported_as_a_whole_word() -> None:
    for caption in ("a photo of a bottle", "a photo of sksx bottle", "a photo of my_sks bottle"):
        [warning] = lint_caption(caption, "sks")
        assert "does not contain the trigger token 'sks'" in warning


def test_empty_caption() -> None:
    for caption in ("", "   \n"):
        [warning] = lint_caption(caption, "sks")
        assert warning.startswith("caption is empty")


def test_long_caption_is_measured_in_the_base_models_tokens() -> None:
    def words_plus_markers(text: str) -> int:  # a whitespace tokenizer: one token per word + start/end
        return len(text.split()) + 2

    caption = "a photo of sks bottle " + "on a table " * 40
    [warning] = lint_caption(caption, "sks", token_count=words_plus_markers)
    assert f"caption is {len(caption.split()) + 2} tokens; the base model reads only 77" in warning
    assert lint_caption("sks " + "x " * 70, "sks", token_count=words_plus_markers) == []
    assert lint_caption(caption, "sks") == []  # without a tokenizer there is no length to judge


def test_multiline_caption() -> None:
    assert lint_caption("sks bottle\nsecond line", "sks") == [
        "caption contains line breaks or control characters; write it as a single line"
    ]
