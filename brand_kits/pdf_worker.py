"""Sandboxed PDF style-guide reader: ``python -m brand_kits.pdf_worker --max-pages N --max-text-chars N``.

Run only by :func:`brand_kits.pdf_guide.extract_pdf_guide`, in a child process with memory, CPU,
file-size and file-descriptor limits. Reads the PDF from stdin and writes exactly ONE JSON object to
stdout: ``{"text", "colors", "fonts", "pages", "warnings"}`` on success (exit 0) or ``{"error": reason}``
(exit 2). It writes no files and imports nothing of ours but :mod:`brand_kits.colors`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from brand_kits.colors import delta_e, rgb_to_hex

MAX_INPUT_BYTES = 50 * 1024 * 1024
MAX_COLORS = 12
MAX_CANDIDATES = 300
MAX_FONTS = 50
MAX_FONT_NAME = 100
MAX_FORMS_PER_PAGE = 50
MAX_WARNINGS = 20
MERGE_DELTA_E = 3.0
EXIT_OK = 0
EXIT_REFUSED = 2
_BLACK_WHITE = frozenset({"#000000", "#FFFFFF"})

_NUMBER = rb"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# 3 or 4 numeric operands followed by a fill/stroke colour operator (rg/RG RGB, k/K CMYK, and
# sc/scn/SC/SCN, read as RGB with 3 operands and CMYK with 4: ICC-based spaces in practice).
_COLOR_OPERATOR = re.compile(
    rb"(?<![\w.+\-])((?:" + _NUMBER + rb"\s+){2,3}" + _NUMBER + rb")\s*(rg|RG|k|K|scn|SCN|sc|SC)"
    rb"(?![^\s/\[\]()<>{}%])"
)
_TEXT_HEX = re.compile(r"(?<![0-9A-Za-z&#])#([0-9A-Fa-f]{6}|[0-9A-Fa-f]{3})(?![0-9A-Za-z])")
_SUBSET_PREFIX = re.compile(r"^[A-Z]{6}\+")
# Control characters (but newline and tab) and lone surrogates: nothing downstream can store them.
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class Refused(Exception):
    """The PDF cannot be read; the message is the short reason shown to the user."""


def main(argv: list[str] | None = None) -> int:
    """Read the PDF on stdin, write one JSON object on stdout; 0 on success, 2 when refused."""
    parser = argparse.ArgumentParser(prog="brand_kits.pdf_worker")
    parser.add_argument("--max-pages", type=int, required=True)
    parser.add_argument("--max-text-chars", type=int, required=True)
    parser.add_argument("--max-memory-mb", type=int, required=True)
    args = parser.parse_args(argv)
    # Nothing but our JSON may reach stdout: route stray prints to stderr, silence library chatter.
    out, sys.stdout = sys.stdout, sys.stderr
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    payload: dict[str, Any]
    try:
        payload = _read(sys.stdin.buffer.read(MAX_INPUT_BYTES + 1), args.max_pages, args.max_text_chars)
        code = EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the process boundary: every parser failure is a refusal
        sys.stderr.write(f"pdf_worker: {type(exc).__name__}: {_short(exc)}\n")
        payload, code = {"error": _refusal(exc, args.max_memory_mb)}, EXIT_REFUSED
    out.write(json.dumps(payload, ensure_ascii=True))
    out.flush()
    return code


def _short(exc: BaseException) -> str:
    text = "".join(char for char in str(exc) if char.isprintable())[:200].rstrip(" .")
    return text or type(exc).__name__


def _refusal(exc: Exception, max_memory_mb: int) -> str:
    """The short, user-readable reason for a failure (details go to stderr, which the caller logs)."""
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"it needs more than the {max_memory_mb} MB memory limit"
    if isinstance(exc, RecursionError):
        return "its structure is nested too deeply or loops back on itself"
    if isinstance(exc, FileNotDecryptedError):
        return "it is password-protected; save a copy without a password"
    if isinstance(exc, DependencyError | NotImplementedError):
        return "it uses encryption or compression this reader does not support"
    if isinstance(exc, LimitReachedError):
        if "decompress" in str(exc).lower():
            return "its compressed data expands beyond the safety limit (a possible compression bomb)"
        return "it exceeds the reader's safety limits (for example a loop in its page tree)"
    return "the file is damaged or incomplete"


def _read(data: bytes, max_pages: int, max_text_chars: int) -> dict[str, Any]:
    if len(data) > MAX_INPUT_BYTES:
        raise Refused("the file is larger than 50 MB")
    reader = PdfReader(BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise Refused("it is password-protected; save a copy without a password")
    total_pages = len(reader.pages)
    notes: list[str] = []
    if total_pages > max_pages:
        notes.append(f"only the first {max_pages} of {total_pages} pages were read")
    text_parts: list[str] = []
    text_length = 0
    text_hex: Counter[str] = Counter()
    drawn: Counter[str] = Counter()
    fonts: dict[str, None] = {}
    for number in range(min(total_pages, max_pages)):
        page = reader.pages[number]
        page_text = _page_text(page, number, notes)
        text_hex.update(_hex_codes(page_text))
        if page_text and text_length < max_text_chars:
            page_text = ("\n\n" if text_parts else "") + page_text
            kept = page_text[: max_text_chars - text_length]
            text_parts.append(kept)
            text_length += len(kept)
            if len(kept) < len(page_text):
                notes.append(f"the text was cut at {max_text_chars} characters (page {number + 1})")
        for content in _content_streams(page):
            drawn.update(_drawn_colors(content))
        for resources in _resource_dicts(page):
            fonts.update(dict.fromkeys(_font_names(resources)))
    return {
        "text": "".join(text_parts),
        "colors": _rank_colors(text_hex, drawn),
        "fonts": list(fonts)[:MAX_FONTS],
        "pages": total_pages,
        "warnings": notes[:MAX_WARNINGS],
    }


def _page_text(page: Any, number: int, notes: list[str]) -> str:
    try:
        text = page.extract_text()
    except LimitReachedError:
        raise  # a bomb: refuse the whole file
    except (PyPdfError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        notes.append(f"the text of page {number + 1} could not be read ({type(exc).__name__})")
        return ""
    return _UNSAFE_TEXT.sub("", text or "").strip()


def _hex_codes(text: str) -> Iterator[str]:
    for match in _TEXT_HEX.finditer(text):
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(char * 2 for char in digits)
        yield "#" + digits.upper()


def _content_streams(page: Any) -> Iterator[bytes]:
    """Decoded page content, then the data of the Form XObjects it names (one level)."""
    contents = page.get_contents()
    if contents is not None:
        yield contents.get_data()
    for form in _forms(page.get("/Resources")):
        yield form.get_data()


def _forms(resources: Any) -> list[StreamObject]:
    resources = resources.get_object() if resources is not None else None
    if not isinstance(resources, DictionaryObject):
        return []
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return []
    forms = []
    for value in list(xobjects.values())[:MAX_FORMS_PER_PAGE]:
        obj = value.get_object()
        if isinstance(obj, StreamObject) and obj.get("/Subtype") == NameObject("/Form"):
            forms.append(obj)
    return forms


def _resource_dicts(page: Any) -> Iterator[DictionaryObject]:
    resources = page.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    if isinstance(resources, DictionaryObject):
        yield resources
        for form in _forms(resources):
            nested = form.get("/Resources")
            nested = nested.get_object() if nested is not None else None
            if isinstance(nested, DictionaryObject):
                yield nested


def _drawn_colors(content: bytes) -> Iterator[str]:
    for match in _COLOR_OPERATOR.finditer(content):
        values = [float(number) for number in match.group(1).split()]
        operator = match.group(2).lower()
        count = 4 if operator == b"k" or (operator in (b"sc", b"scn") and len(values) == 4) else 3
        values = values[-count:]
        if not all(0.0 <= value <= 1.0 for value in values):
            continue  # not a DeviceRGB/CMYK-like colour (e.g. Lab or an indexed space)
        if count == 4:
            cyan, magenta, yellow, black = values
            values = [(1 - cyan) * (1 - black), (1 - magenta) * (1 - black), (1 - yellow) * (1 - black)]
        yield rgb_to_hex([round(value * 255) for value in values])


def _font_names(resources: DictionaryObject) -> Iterator[str]:
    font_dict = resources.get("/Font")
    font_dict = font_dict.get_object() if font_dict is not None else None
    if not isinstance(font_dict, DictionaryObject):
        return
    for value in list(font_dict.values())[:MAX_FONTS]:
        font = value.get_object()
        base = font.get("/BaseFont") if isinstance(font, DictionaryObject) else None
        if base is None:
            continue
        name = _SUBSET_PREFIX.sub("", str(base.get_object()).lstrip("/"))
        name = "".join(char for char in name if char.isprintable())[:MAX_FONT_NAME]
        if name:
            yield name


def _rank_colors(text_hex: Counter[str], drawn: Counter[str]) -> list[str]:
    """Hex codes written in the text first, then drawn colours; each by frequency, near-twins merged.

    A colour within CIEDE2000 < 3 of an earlier one adds its count to it. Pure black and white are
    dropped from the drawn colours unless they are the only colours found.
    """
    drawn_colors = drawn.most_common(MAX_CANDIDATES)
    if text_hex or any(hex_code not in _BLACK_WHITE for hex_code, _ in drawn_colors):
        drawn_colors = [(code, count) for code, count in drawn_colors if code not in _BLACK_WHITE]
    ranked: list[list[str]] = []
    for group in (text_hex.most_common(MAX_CANDIDATES), drawn_colors):
        clusters: list[tuple[str, list[int]]] = []
        for hex_code, count in group:
            if any(delta_e(hex_code, kept) < MERGE_DELTA_E for part in ranked for kept in part):
                continue  # a drawn colour that a hex code in the text already names
            twin = next((total for kept, total in clusters if delta_e(hex_code, kept) < MERGE_DELTA_E), None)
            if twin is None:
                clusters.append((hex_code, [count]))
            else:
                twin[0] += count
        clusters.sort(key=lambda cluster: -cluster[1][0])  # stable: ties keep first-seen order
        ranked.append([hex_code for hex_code, _ in clusters])
    return [hex_code for part in ranked for hex_code in part][:MAX_COLORS]


if __name__ == "__main__":
    sys.exit(main())
