"""A brand's structured style guide: palette, fonts, tone words, do's and don'ts, required/banned terms.

:func:`make_style_guide` is the validating constructor (the UI and ``StyleGuide.from_dict`` use it);
every refusal is an :class:`InvalidKitField` whose ``field`` names the item, e.g. ``palette[2].hex``
or ``banned_terms[0]``. The guide feeds prompts: :func:`style_fragment` (positive text) and
:func:`negative_prompt`; :func:`find_banned_terms` and :func:`missing_required_terms` check copy.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from brand_kits.colors import nearest_color_name, normalize_hex
from brand_kits.errors import InvalidKitField, KitError

PALETTE_MAX = 16
LIST_MAX = 50
ITEM_MAX = 200
COLOR_NAME_MAX = 40
TEXT_FIELDS = ("fonts", "tone_words", "dos", "donts", "required_terms", "banned_terms")
_FIELD_HINTS = {
    "fonts": "font names",
    "tone_words": "tone words",
    "dos": "do's",
    "donts": "don'ts",
    "required_terms": "required terms",
    "banned_terms": "banned terms",
}
# Bidi embeddings/overrides/isolates and LRM/RLM: they make text display differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS for char in text)


@dataclass(frozen=True)
class PaletteColor:
    """One brand colour: ``hex`` is normalised to ``#RRGGBB``; an empty ``name`` gets the nearest name."""

    hex: str
    name: str = ""

    def __post_init__(self) -> None:
        try:
            hex_code = normalize_hex(self.hex)
        except KitError as exc:
            raise InvalidKitField("hex", str(exc)) from exc
        if not isinstance(self.name, str):
            raise InvalidKitField("name", f"a colour name must be text, got {type(self.name).__name__}")
        name = self.name.strip() or nearest_color_name(hex_code)
        if len(name) > COLOR_NAME_MAX:
            raise InvalidKitField(
                "name",
                f"colour name is {len(name)} characters; shorten it to at most {COLOR_NAME_MAX} "
                "(for example 'navy blue')",
            )
        if _has_control(name):
            raise InvalidKitField(
                "name", "colour name contains control or text-direction characters; retype it without them"
            )
        object.__setattr__(self, "hex", hex_code)
        object.__setattr__(self, "name", name)


@dataclass(frozen=True)
class StyleGuide:
    """A validated style guide; build it with :func:`make_style_guide` or :meth:`from_dict`."""

    palette: tuple[PaletteColor, ...] = ()
    fonts: tuple[str, ...] = ()
    tone_words: tuple[str, ...] = ()
    dos: tuple[str, ...] = ()
    donts: tuple[str, ...] = ()
    required_terms: tuple[str, ...] = ()
    banned_terms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"palette": [{"hex", "name"}, ...], "fonts": [...], ...}``."""
        result: dict[str, Any] = {"palette": [{"hex": c.hex, "name": c.name} for c in self.palette]}
        for name in TEXT_FIELDS:
            result[name] = list(getattr(self, name))
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StyleGuide:
        """Validate a dict as written by :meth:`to_dict` (missing keys are empty; unknown keys refused)."""
        if not isinstance(data, Mapping):
            raise InvalidKitField("style_guide", "the style guide must be a JSON object of named lists")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidKitField(
                    str(key)[:60],
                    f"unknown style guide field {str(key)[:60]!r}; use only {', '.join(sorted(known))}",
                )
        return make_style_guide(**{key: data[key] for key in data})


def make_style_guide(
    *,
    palette: Iterable[Any] = (),
    fonts: Iterable[str] = (),
    tone_words: Iterable[str] = (),
    dos: Iterable[str] = (),
    donts: Iterable[str] = (),
    required_terms: Iterable[str] = (),
    banned_terms: Iterable[str] = (),
) -> StyleGuide:
    """Validate and normalise user-entered style-guide fields (strip, drop empty, de-duplicate)."""
    return StyleGuide(
        palette=_check_palette(palette),
        fonts=_check_texts("fonts", fonts),
        tone_words=_check_texts("tone_words", tone_words),
        dos=_check_texts("dos", dos),
        donts=_check_texts("donts", donts),
        required_terms=_check_texts("required_terms", required_terms),
        banned_terms=_check_texts("banned_terms", banned_terms),
    )


def _require_list(field: str, values: object) -> Iterable[Any]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise InvalidKitField(field, f"{field} must be a list of items, got {type(values).__name__}")
    return values


def _check_texts(field: str, values: Iterable[str]) -> tuple[str, ...]:
    kept: dict[str, str] = {}
    for index, value in enumerate(_require_list(field, values)):
        item_field = f"{field}[{index}]"
        if not isinstance(value, str):
            raise InvalidKitField(item_field, f"{item_field} must be text, got {type(value).__name__}")
        text = value.strip()
        if len(text) > ITEM_MAX:
            raise InvalidKitField(
                item_field, f"{item_field} is {len(text)} characters; shorten it to at most {ITEM_MAX}"
            )
        if _has_control(text):
            raise InvalidKitField(
                item_field,
                f"{item_field} contains line breaks, tabs, control or text-direction characters; "
                "put each item on its own line as plain text",
            )
        if text and text.casefold() not in kept:
            kept[text.casefold()] = text
            if len(kept) > LIST_MAX:
                raise InvalidKitField(
                    field,
                    f"{field} has more than {LIST_MAX} {_FIELD_HINTS[field]}; keep the {LIST_MAX} "
                    "that matter most",
                )
    return tuple(kept.values())


def _check_palette(values: Iterable[Any]) -> tuple[PaletteColor, ...]:
    kept: dict[str, PaletteColor] = {}
    for index, value in enumerate(_require_list("palette", values)):
        color = _palette_item(f"palette[{index}]", value)
        if color.hex not in kept:
            kept[color.hex] = color
            if len(kept) > PALETTE_MAX:
                raise InvalidKitField(
                    "palette",
                    f"the palette has more than {PALETTE_MAX} colours; keep the {PALETTE_MAX} main ones",
                )
    return tuple(kept.values())


def _palette_item(field: str, value: object) -> PaletteColor:
    if isinstance(value, PaletteColor):
        return value
    if isinstance(value, str):
        hex_code, name = value, ""
    elif isinstance(value, Mapping):
        unknown = sorted(str(key) for key in value if key not in ("hex", "name"))
        if unknown:
            raise InvalidKitField(
                f"{field}.{unknown[0][:40]}",
                f"{field} has an unknown key {unknown[0][:40]!r}; use hex and name",
            )
        if "hex" not in value:
            raise InvalidKitField(f"{field}.hex", f"{field} has no hex code; add one like #1F3A93")
        hex_code, name = value["hex"], value.get("name", "")
    elif isinstance(value, tuple | list) and len(value) == 2:
        hex_code, name = value[0], value[1]
    else:
        raise InvalidKitField(
            field, f"{field} must be a colour: (hex, name), {{'hex': ..., 'name': ...}} or a hex code"
        )
    try:
        return PaletteColor(hex_code, "" if name is None else name)
    except InvalidKitField as exc:
        raise InvalidKitField(f"{field}.{exc.field}", f"{field}: {exc}") from exc


@functools.lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    """Whole-word/phrase match, case-insensitive, any run of whitespace between the words."""
    words = [re.escape(word) for word in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _contains(text: str, term: str) -> bool:
    return bool(term.strip()) and _term_pattern(term).search(text) is not None


def find_banned_terms(text: str, guide: StyleGuide) -> list[str]:
    """The guide's banned terms that occur in ``text`` as whole words or phrases (guide order)."""
    return [term for term in guide.banned_terms if _contains(text, term)]


def missing_required_terms(text: str, guide: StyleGuide) -> list[str]:
    """The guide's required terms that do not occur in ``text`` as whole words or phrases."""
    return [term for term in guide.required_terms if not _contains(text, term)]


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        if item and item.casefold() not in seen:
            seen[item.casefold()] = item
    return list(seen.values())


def style_fragment(guide: StyleGuide) -> str:
    """Prompt text: tone words, then the palette's colour names; a banned term never appears.

    Example: ``"clean, minimal, premium, brand colours navy blue and sunflower yellow"``.
    """

    def banned(text: str) -> bool:
        return any(_contains(text, term) for term in guide.banned_terms)

    parts = _dedupe(word for word in guide.tone_words if not banned(word))
    names = _dedupe(color.name for color in guide.palette if not banned(color.name))
    if names:
        noun = "brand colour" if len(names) == 1 else "brand colours"
        with_colours = ", ".join([*parts, f"{noun} {_join_names(names)}"])
        if not banned(with_colours):
            return with_colours
    # A banned term spans items (e.g. "brand colours", or "clean, minimal"): drop from the end.
    while parts and banned(", ".join(parts)):
        parts.pop()
    return ", ".join(parts)


def negative_prompt(guide: StyleGuide) -> str:
    """The don'ts then the banned terms, comma-joined, de-duplicated case-insensitively, in order."""
    return ", ".join(_dedupe([*guide.donts, *guide.banned_terms]))
