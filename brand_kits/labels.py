"""Display labels for client-supplied file names.

A label is for showing only: uploads are stored by content hash, never under a client's name. Still,
the label must be harmless wherever it is shown or logged: a single path component, no control or
text-direction characters, bounded length.
"""

from __future__ import annotations

import re
import unicodedata

LABEL_MAX = 120
FALLBACK_LABEL = "image"
_MAX_KEPT_EXTENSION = 16

# Unicode categories removed outright: controls (incl. NUL), format characters (incl. the bidi
# embeddings/overrides/isolates U+202A-202E, U+2066-2069 and the marks U+200E/U+200F, U+061C),
# lone surrogates, and unassigned code points.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn"})
_WHITESPACE = re.compile(r"\s+")
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_label(filename: str) -> str:
    """A short, single-line, single-component label for ``filename`` (``"image"`` if nothing is left)."""
    text = unicodedata.normalize("NFC", str(filename))
    # Whitespace controls (tab, newline, U+2028 ...) become spaces; every other control goes.
    text = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or unicodedata.category(char) not in _REMOVED_CATEGORIES
    )
    # Last path component for either separator, then no drive letter and no NTFS stream suffix.
    component = re.split(r"[/\\]", text)[-1]
    component = _DRIVE.sub("", component).split(":", 1)[0]
    label = _WHITESPACE.sub(" ", component).strip()
    if label in ("", ".", ".."):
        return FALLBACK_LABEL
    return _truncate(label)


def _truncate(label: str) -> str:
    if len(label) <= LABEL_MAX:
        return label
    stem, dot, extension = label.rpartition(".")
    if dot and stem and 0 < len(extension) <= _MAX_KEPT_EXTENSION:
        kept = stem[: LABEL_MAX - len(extension) - 1].rstrip()
        if kept:
            return f"{kept}.{extension}"
    return label[:LABEL_MAX].rstrip()
