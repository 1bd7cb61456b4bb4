"""Caption editing: bulk edits over many captions, strict validation, and a token-aware linter.

``apply_bulk_edit`` is all or nothing: it returns a new mapping or raises :class:`InvalidKitField`
before anything is returned, so a caller never stores half of an edit.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from brand_kits.errors import InvalidKitField

logger = logging.getLogger(__name__)

CAPTION_MAX = 1000
DEFAULT_MAX_TOKENS = 77

K = TypeVar("K", bound=Hashable)

# Controls (incl. NUL, tab, CR/LF), lone surrogates, line/paragraph separators and the bidi
# embeddings/overrides/isolates and marks: none belongs in a one-line caption.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_SPACE_RUNS = re.compile(r"\s{2,}")
_ATTACHING = frozenset(",.;:!?)")


def _forbidden_char(text: str) -> str | None:
    for char in text:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES or char in _BIDI_CONTROLS:
            return char
    return None


def _describe(char: str) -> str:
    if char in "\n\r\u2028\u2029\x85":
        return "a line break"
    return f"the control character U+{ord(char):04X}"


def validate_caption(text: str) -> str:
    """Return ``text`` stripped; refuse empty, over-long or multi-line captions and control characters."""
    if not isinstance(text, str):
        raise InvalidKitField("caption", f"caption must be text, got {type(text).__name__}")
    caption = text.strip()
    if not caption:
        raise InvalidKitField("caption", "caption is empty; describe the image and include the trigger token")
    if len(caption) > CAPTION_MAX:
        raise InvalidKitField(
            "caption", f"caption is {len(caption)} characters; shorten it to at most {CAPTION_MAX}"
        )
    bad = _forbidden_char(caption)
    if bad is not None:
        raise InvalidKitField(
            "caption", f"caption contains {_describe(bad)}; write it as a single line of plain text"
        )
    return caption


def _join(prefix: str, text: str, suffix: str) -> str:
    joined = " ".join(piece for piece in (prefix, text) if piece)
    if not suffix:
        return joined
    # A suffix like ", studio light" attaches to the caption; a plain one gets a space.
    glue = "" if not joined or suffix[0] in _ATTACHING else " "
    return f"{joined}{glue}{suffix}"


def _collapse_spaces(text: str) -> str:
    # Line breaks and controls are refused, never collapsed away with the other whitespace.
    bad = _forbidden_char(text)
    if bad is not None:
        raise InvalidKitField("caption", f"it contains {_describe(bad)}; write it as a single line")
    return _SPACE_RUNS.sub(" ", text).strip()


def _check_edit_text(field: str, value: str) -> str:
    if not isinstance(value, str):
        raise InvalidKitField(field, f"{field} must be text, got {type(value).__name__}")
    bad = _forbidden_char(value)
    if bad is not None:
        raise InvalidKitField(
            field, f"{field} contains {_describe(bad)}; retype it as plain text on one line"
        )
    if len(value) > CAPTION_MAX:
        raise InvalidKitField(
            field, f"{field} is {len(value)} characters; shorten it to at most {CAPTION_MAX}"
        )
    return value


def apply_bulk_edit(
    captions: Mapping[K, str],
    *,
    prefix: str = "",
    suffix: str = "",
    find: str = "",
    replace: str = "",
) -> dict[K, str]:
    """Edit every caption: literal find/replace first, then add ``prefix``/``suffix``.

    Pieces are joined with single spaces (none before a suffix starting with ``, . ; : ! ? )``), runs
    of whitespace are collapsed to one space and the result is stripped. Keys and their order are preserved. Each result must pass :func:`validate_caption`;
    otherwise :class:`InvalidKitField` (``field="caption"``, naming the key) is raised and nothing is
    returned. An empty ``find`` with a non-empty ``replace`` is refused (``field="find"``).
    """
    for field, value in (("prefix", prefix), ("suffix", suffix), ("find", find), ("replace", replace)):
        _check_edit_text(field, value)
    if not find and replace:
        raise InvalidKitField(
            "find", "find is empty but replace is not; enter the text to find, or clear replace"
        )
    edited: dict[K, str] = {}
    for key, caption in captions.items():
        if not isinstance(caption, str):
            raise InvalidKitField(
                "caption", f"caption for {key!r:.80} must be text, got {type(caption).__name__}"
            )
        text = caption.replace(find, replace) if find else caption
        joined = _join(prefix.strip(), text.strip(), suffix.strip())
        try:
            edited[key] = validate_caption(_collapse_spaces(joined))
        except InvalidKitField as exc:
            raise InvalidKitField("caption", f"after the edit, the caption for {key!r:.80}: {exc}") from exc
    logger.debug("bulk-edited %d captions", len(edited))
    return edited


def _word_pattern(phrase: str) -> re.Pattern[str]:
    words = [re.escape(word) for word in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", flags=re.IGNORECASE)


def lint_caption(
    caption: str,
    trigger_token: str,
    *,
    banned_terms: Sequence[str] = (),
    token_count: Callable[[str], int] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[str]:
    """Warnings (not errors) about one caption; an empty list means it looks fine.

    The trigger token and banned terms match case-insensitively (CLIP lowercases its input) and only
    as whole words or phrases. ``token_count`` must count what the text encoder reads, start and end
    markers included (``len(tokenizer(caption).input_ids)`` for a CLIP tokenizer).
    """
    if not caption.strip():
        return [f"caption is empty; describe the image and include the trigger token '{trigger_token}'"]
    warnings: list[str] = []
    if trigger_token.strip() and not _word_pattern(trigger_token).search(caption):
        warnings.append(
            f"caption does not contain the trigger token '{trigger_token}'; add it so the LoRA "
            "learns to associate it with this image"
        )
    found: dict[str, str] = {}  # casefolded -> as first given
    for term in banned_terms:
        name = " ".join(term.split())
        if name and name.casefold() not in found and _word_pattern(name).search(caption):
            found[name.casefold()] = name
    if found:
        names = ", ".join(f"'{name}'" for name in found.values())
        warnings.append(f"caption contains banned terms: {names}; remove or reword them")
    if _forbidden_char(caption) is not None:
        warnings.append("caption contains line breaks or control characters; write it as a single line")
    if token_count is not None:
        count = token_count(caption)
        if count > max_tokens:
            warnings.append(
                f"caption is {count} tokens; the base model reads only {max_tokens}, so the end is "
                "ignored: shorten it"
            )
    return warnings
