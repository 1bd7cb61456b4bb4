"""A brand kit's identity: display name, URL/file-safe slug, LoRA trigger token and class noun."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from brand_kits.errors import InvalidKitField
from brand_kits.vocabulary import COMMON_WORDS

NAME_MAX = 120
SLUG_MAX = 64
TRIGGER_MIN = 3
TRIGGER_MAX = 32
CLASS_NOUN_MAX = 40
DESCRIPTION_MAX = 2000

_TRIGGER_CHARS = re.compile(r"[a-z0-9_]+")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
# Bidi embeddings/overrides/isolates and LRM/RLM: they make a name display differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@dataclass(frozen=True)
class KitIdentity:
    name: str
    slug: str
    trigger_token: str
    class_noun: str
    description: str


def make_identity(name: str, trigger_token: str, class_noun: str, description: str = "") -> KitIdentity:
    """Validate user-entered kit fields; raise :class:`InvalidKitField` naming the first bad field."""
    clean_name = _check_name(name)
    return KitIdentity(
        name=clean_name,
        slug=_slug_from(clean_name),
        trigger_token=_check_trigger(trigger_token),
        class_noun=_check_class_noun(class_noun),
        description=_check_description(description),
    )


def _require_text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidKitField(field, f"{field} must be text, got {type(value).__name__}")
    return value


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS


def _check_name(value: object) -> str:
    name = _require_text("name", value).strip()
    if not name:
        raise InvalidKitField("name", "name is empty; enter the brand or product line name")
    if len(name) > NAME_MAX:
        raise InvalidKitField("name", f"name is {len(name)} characters; shorten it to at most {NAME_MAX}")
    if any(_is_control(char) for char in name):
        raise InvalidKitField(
            "name", "name contains control or text-direction characters; retype it without them"
        )
    return name


def _slug_from(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_JUNK.sub("-", ascii_name.lower()).strip("-")
    slug = slug[:SLUG_MAX].rstrip("-")
    if not slug:
        raise InvalidKitField(
            "name",
            "name has no latin letters or digits to build the kit's slug from; "
            "include at least one of a-z or 0-9 in the name",
        )
    return slug


def _check_trigger(value: object) -> str:
    token = _require_text("trigger_token", value)
    if not TRIGGER_MIN <= len(token) <= TRIGGER_MAX:
        raise InvalidKitField(
            "trigger_token",
            f"trigger_token must be {TRIGGER_MIN} to {TRIGGER_MAX} characters, got {len(token)}",
        )
    if not _TRIGGER_CHARS.fullmatch(token):
        suggestion = _suggest_trigger(token)
        hint = f" (for example '{suggestion}')" if suggestion else ""
        raise InvalidKitField(
            "trigger_token",
            f"trigger_token may contain only lowercase letters a-z, digits and underscores, no spaces{hint}",
        )
    if token.isalpha() and token in COMMON_WORDS:
        raise InvalidKitField(
            "trigger_token",
            f"trigger_token '{token}' is a common word the model already knows; use a rare made-up "
            f"token or add a digit or underscore (for example '{token[: TRIGGER_MAX - 3]}_v1')",
        )
    return token


def _suggest_trigger(token: str) -> str:
    suggestion = re.sub(r"[^a-z0-9_]+", "_", token.strip().lower()).strip("_")[:TRIGGER_MAX]
    return suggestion if len(suggestion) >= TRIGGER_MIN else ""


def _check_class_noun(value: object) -> str:
    noun = _require_text("class_noun", value)
    if not 1 <= len(noun) <= CLASS_NOUN_MAX:
        raise InvalidKitField(
            "class_noun", f"class_noun must be 1 to {CLASS_NOUN_MAX} characters, got {len(noun)}"
        )
    words = re.split(r"[ -]", noun)
    if not all(word and word.isalpha() for word in words):
        raise InvalidKitField(
            "class_noun",
            "class_noun may contain only letters, separated by single spaces or hyphens "
            "(for example 'water bottle' or 't-shirt')",
        )
    return noun


def _check_description(value: object) -> str:
    description = _require_text("description", value)
    if len(description) > DESCRIPTION_MAX:
        raise InvalidKitField(
            "description",
            f"description is {len(description)} characters; shorten it to at most {DESCRIPTION_MAX}",
        )
    if any(_is_control(char) and char not in "\n\r\t" for char in description):
        raise InvalidKitField(
            "description", "description contains control or text-direction characters; remove them"
        )
    return description
