"""PDF style guides: text, colours and fonts from real PDFs; hostile PDFs refused fast (bad_inputs A10).

Every PDF here is built by hand as bytes (objects, xref table with computed offsets, trailer), so the
tests control exactly what a hostile file contains. The parsing happens in a child process; these
tests also check that the test process itself stays small while the child chews on a bomb.
"""

from __future__ import annotations

import functools
import os
import resource
import time
import zlib
from collections.abc import Callable
from io import BytesIO

import pytest
from pypdf import PdfReader, PdfWriter

from brand_kits.colors import delta_e
from brand_kits.errors import KitError
from brand_kits.pdf_guide import ExtractedGuide, extract_pdf_guide
from tests.fixtures import build_pdf

FIX = "export the style guide again or enter its colours by hand"
STYLE_CONTENT = (
    b"0.12 0.23 0.58 rg 50 700 200 50 re f\n"
    b"BT /F1 24 Tf 72 600 Td (#F4C20D Sunflower) Tj ET\n"
    b"0.957 0.761 0.051 rg 50 500 100 50 re f\n"
)
HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>"


# --- PDF builders -----------------------------------------------------------------------------------


def stream(payload: bytes, dictionary: bytes = b"") -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(payload) + payload + b"\nendstream"


def flate_stream(payload: bytes, dictionary: bytes = b"") -> bytes:
    return stream(zlib.compress(payload), b"/Filter /FlateDecode " + dictionary)


@functools.cache
def zeros_stream(megabytes: int, filters: int = 1) -> bytes:
    """A FlateDecode stream of ``megabytes`` MB of zeros, compressed ``filters`` times (never in RAM)."""
    compressor = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(megabytes)) + compressor.flush()
    for _ in range(filters - 1):
        data = zlib.compress(data, 9)
    names = b" ".join([b"/FlateDecode"] * filters)
    return stream(data, b"/Filter [" + names + b"]")



def pages_pdf(
    contents: list[bytes], *, fonts: bytes = b"/F1 3 0 R", extra: list[bytes] | None = None
) -> bytes:
    """Catalog (1), page tree (2), Helvetica-Bold (3), then per page a page object and its content."""
    count = len(contents)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
    ]
    objects.append(HELVETICA)
    for index, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << %s >> >> "
            b"/Contents %d 0 R >>" % (fonts, 5 + 2 * index)
        )
        objects.append(content if content.startswith(b"<<") else stream(content))
    return build_pdf(objects + (extra or []))


def style_guide_pdf() -> bytes:
    return pages_pdf(  # objects: catalog, tree, Helvetica, page, content, then the subset font (6)
        [STYLE_CONTENT],
        fonts=b"/F1 3 0 R /F2 6 0 R",
        extra=[b"<< /Type /Font /Subtype /Type1 /BaseFont /ABCDEF+BrandSans-Regular >>"],
    )


def text_page(text: bytes) -> bytes:
    return b"BT /F1 12 Tf 72 700 Td (" + text + b") Tj ET"


# --- real guides ------------------------------------------------------------------------------------


def test_reads_text_colours_and_fonts_of_a_style_guide() -> None:
    guide = extract_pdf_guide(style_guide_pdf())
    assert isinstance(guide, ExtractedGuide)
    assert "Sunflower" in guide.text
    assert guide.colors[0] == "#F4C20D"  # written in the text: first
    assert len(guide.colors) == 2 and delta_e(guide.colors[1], "#1F3A94") < 1
    assert guide.fonts == ("Helvetica-Bold", "BrandSans-Regular")  # subset prefix stripped
    assert (guide.pages, guide.warnings) == (1, ())


def test_pdf_written_by_pypdf_round_trips() -> None:
    writer = PdfWriter(clone_from=BytesIO(style_guide_pdf()))
    writer.add_metadata({"/Title": "Acme brand book"})
    buffer = BytesIO()
    writer.write(buffer)
    guide = extract_pdf_guide(buffer.getvalue())
    assert "#F4C20D" in guide.colors and "Helvetica-Bold" in guide.fonts and "Sunflower" in guide.text


def test_colour_operators_cmyk_stroke_and_icc_spaces() -> None:
    content = (
        b"1 0 0 RG 10 10 m 20 20 l S\n"  # stroke red
        b"0 1 1 0 k 0 0 10 10 re f\n"  # CMYK red again: counted with the first
        b"0 0.5 1 0 K\n"  # CMYK orange-ish stroke -> #FF8000
        b"/CS0 cs 0.2 0.6 0.4 scn\n"  # ICC-based RGB -> #339966
        b"0 0 0 rg 1 1 1 rg 0 0 0 1 k\n"  # black/white are ignored next to real colours
        b"12 Tz 50 0.5 0.5 sc\n"  # out-of-range operands: not an RGB colour
    )
    guide = extract_pdf_guide(pages_pdf([content]))
    assert guide.colors == ("#FF0000", "#FF8000", "#339966")


def test_black_and_white_are_kept_when_they_are_the_only_colours() -> None:
    guide = extract_pdf_guide(pages_pdf([b"0 0 0 rg 0 0 10 10 re f 0 0 0 rg 1 1 1 rg"]))
    assert guide.colors == ("#000000", "#FFFFFF")
    with_hex = extract_pdf_guide(pages_pdf([text_page(b"Navy #1F3A93") + b" 0 0 0 rg 1 1 1 rg"]))
    assert with_hex.colors == ("#1F3A93",)


def test_hex_codes_in_text_rank_first_by_frequency_and_near_twins_merge() -> None:
    pages = [
        text_page(b"Navy #1F3A93, short #ABC and #F4C20D twice: #f4c20d. Not #12345G or AB#123456"),
        b"0.5 0.5 0.5 rg 0.5 0.5 0.5 rg 0.5 0.5 0.5 rg 0.502 0.502 0.502 rg 0.121 0.227 0.576 rg",
    ]
    guide = extract_pdf_guide(pages_pdf(pages))
    assert guide.colors == ("#F4C20D", "#1F3A93", "#AABBCC", "#808080")


def test_at_most_twelve_colours_by_frequency() -> None:
    ops = b"".join(b"%.3f 0 %.3f rg " % (i / 20, 1 - i / 20) * (30 - i) for i in range(20))
    guide = extract_pdf_guide(pages_pdf([ops]))
    assert len(guide.colors) == 12
    assert guide.colors[0] == "#0000FF"  # drawn most often


def test_fonts_and_colours_inside_form_xobjects() -> None:
    form = stream(
        b"0.9 0.1 0.3 rg BT /FX 9 Tf (Logo lockup) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 100 100] /Resources << /Font << /FX 6 0 R >> >>",
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        stream(b"q /X1 Do Q"),
        form,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /QWERTY+Garamond-Italic >>",
    ]
    guide = extract_pdf_guide(build_pdf(objects))
    assert guide.fonts == ("Garamond-Italic",)
    assert guide.colors == ("#E61A4C",)  # 0.3 * 255 = 76.5 rounds half to even


def test_page_and_text_limits_are_reported_as_warnings() -> None:
    data = pages_pdf([text_page(b"page %d #00FF00" % i) for i in range(1, 4)])
    guide = extract_pdf_guide(data, max_pages=2, max_text_chars=10)
    assert guide.pages == 3
    assert len(guide.text) == 10 and guide.text == "page 1 #00"
    assert guide.colors == ("#00FF00",)  # hex codes are read from all read pages, not just the kept text
    assert any("first 2 of 3 pages" in note for note in guide.warnings)
    assert any("cut at 10 characters" in note for note in guide.warnings)
    assert "page 3" not in extract_pdf_guide(data, max_pages=2).text


def test_empty_user_password_is_opened_and_a_real_password_is_refused() -> None:
    def encrypted(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=BytesIO(style_guide_pdf()))
        writer.encrypt(user_password, owner_password="owner-secret", algorithm="RC4-128")
        buffer = BytesIO()
        writer.write(buffer)
        assert PdfReader(BytesIO(buffer.getvalue())).is_encrypted
        return buffer.getvalue()

    assert "Sunflower" in extract_pdf_guide(encrypted("")).text
    with pytest.raises(KitError, match="password-protected"):
        extract_pdf_guide(encrypted("user-secret"))


# --- refused before any parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [b"", os.urandom(4096), b"\x89PNG\r\n\x1a\n" + bytes(100), b"PDF-1.7 missing percent sign"]
)
def test_not_a_pdf(data: bytes) -> None:
    with pytest.raises(KitError, match="not a PDF"):
        extract_pdf_guide(data)


def test_too_large() -> None:
    with pytest.raises(KitError, match="too large"):
        extract_pdf_guide(b"%PDF-1.7\n" + bytes(50 * 1024 * 1024))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"timeout_s": 601},
        {"max_memory_mb": 64},
        {"max_pages": 0},
        {"max_text_chars": -1},
        {"max_pages": True},
    ],
)
def test_bad_limits_are_programming_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        extract_pdf_guide(style_guide_pdf(), **kwargs)  # type: ignore[arg-type]


# --- hostile PDFs (bad_inputs A10) ------------------------------------------------------------------


def _simple_objects() -> list[bytes]:
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]


HOSTILE: dict[str, Callable[[], bytes]] = {
    "random bytes after the header": lambda: b"%PDF-1.7\n" + os.urandom(20_000),
    "truncated": lambda: style_guide_pdf()[:400],
    "circular /Prev": lambda: build_pdf(_simple_objects(), prev_self=True),
    "trailer /Root is a reference to itself": lambda: build_pdf([b"1 0 R"]),
    "page tree lists itself": lambda: build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ]
    ),
    "page tree loops through a child": lambda: build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ]
    ),
    "200 MB FlateDecode bomb": lambda: pages_pdf([zeros_stream(200)]),
    "nested FlateDecode bomb": lambda: pages_pdf([zeros_stream(200, filters=2)]),
    "huge XMP metadata": lambda: build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>",
            *_simple_objects()[1:],
            stream(b"<x:xmpmeta>" + b"<rdf:li>brand</rdf:li>" * 1_000_000, b"/Type /Metadata /Subtype /XML"),
        ]
    ),  # fmt: skip
    "XMP metadata bomb": lambda: build_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>", *_simple_objects()[1:], zeros_stream(200)]
    ),
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pdf_is_refused_or_bounded_quickly_in_the_child(name: str) -> None:
    data = HOSTILE[name]()
    timeout_s = 10.0
    rss_before = _peak_rss_mb()
    started = time.monotonic()
    try:
        guide = extract_pdf_guide(data, timeout_s=timeout_s, max_text_chars=1000)
    except KitError as exc:
        assert str(exc).startswith("could not read PDF: ") and str(exc).endswith(FIX)
    else:  # a lenient parse is fine, as long as the answer is small and sane
        assert len(guide.text) <= 1000 and len(guide.colors) <= 12 and guide.pages <= 2
    assert time.monotonic() - started < timeout_s + 5
    assert _peak_rss_mb() - rss_before < 64, "the PDF was parsed in the test process"


def test_compression_bombs_are_refused_with_a_clear_reason() -> None:
    with pytest.raises(KitError, match="compression bomb"):
        extract_pdf_guide(pages_pdf([zeros_stream(200)]))


def test_time_limit_kills_a_slow_parse() -> None:
    # One 70 MB stream of zeros shared by 50 pages: a 70 KB file that takes minutes to parse.
    shared = zeros_stream(70)
    data = pages_pdf([shared] * 50)
    started = time.monotonic()
    with pytest.raises(KitError, match=r"longer than the 1\.5 s time limit"):
        extract_pdf_guide(data, timeout_s=1.5)
    assert time.monotonic() - started < 1.5 + 5


def test_memory_limit_stops_a_big_stream() -> None:
    small = pages_pdf([STYLE_CONTENT])
    assert "Sunflower" in extract_pdf_guide(small, max_memory_mb=224).text  # the limit leaves room to work
    with pytest.raises(KitError, match="224 MB memory limit"):
        extract_pdf_guide(pages_pdf([zeros_stream(74)]), max_memory_mb=224)
