"""Brand overlay layer: logo, headline, call-to-action and legal line composited onto an image.

Deterministic drawing, never diffusion: the same image, spec and safe box give byte-identical PNGs.
Text uses Pillow's bundled FreeType font (``ImageFont.load_default(size=...)``, Aileron Regular) so it
renders the same on every machine; it is drawn as given, never interpreted (no markup, no emoji
shortcodes). Layout, top to bottom inside the safe box: the text block (headline, CTA button, legal
line, centred) at the ``position`` preset, the logo at the opposite end (top for "bottom"/"center").

Steps of :func:`render_overlay`: (1) check the inputs; (2) wrap the copy to the safe box's width and
shrink it (10 % a step) until it fits, refusing at :data:`MIN_FONT_PX`; (3) paste the logo;
(4) pick default colours from the palette against the real pixels under the text; (5) measure WCAG
contrast of each text against the pixels behind it (worst pixel and mean colour); (6) with
``fix_contrast``, lay a semi-opaque scrim of the palette's darkest or lightest colour behind failing
text, as light as reaches AA; (7) draw the CTA button and the text and measure again.
"""

from __future__ import annotations

import functools
import io
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from studio.editing.color import (
    contrast_on_pixels,
    contrast_ratio,
    most_saturated,
    palette_extremes,
    parse_hex,
    readable_color,
    to_hex,
)

Position = Literal["bottom", "top", "center"]
Box = tuple[int, int, int, int]

#: Smallest text size drawn; copy that does not fit at this size is refused.
MIN_FONT_PX = 10
#: Headline size as a share of the safe box's geometric mean side; CTA and legal relative to it.
HEADLINE_SHARE = 0.065
SIZE_RATIOS: dict[str, float] = {"headline": 1.0, "cta": 0.6, "legal": 0.36}
MAX_CHARS: dict[str, int] = {"headline": 200, "cta": 40, "legal": 600}
SHRINK_STEP = 0.9
#: The logo's height as a share of the safe box height, and its widest share of the box width.
LOGO_HEIGHT_SHARE, LOGO_WIDTH_SHARE = 0.12, 0.4
MAX_LOGO_SIDE = 4096
#: WCAG 2.x AA for normal text.
AA_CONTRAST = 4.5
SCRIM_OPACITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FONT_NAME = "Aileron Regular (Pillow load_default)"
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TEXT_ORDER = ("headline", "cta", "legal")


class OverlayError(ValueError):
    """The overlay cannot be drawn as asked; the message says what to change."""


@dataclass(frozen=True)
class OverlaySpec:
    """What to draw. Texts are optional (None or blank = left out); colours are ``#RRGGBB``.

    Unset colours come from ``palette`` (the kit's colours): text in the palette's darkest or
    lightest colour that reads on the background, the CTA button in its most saturated colour.
    """

    headline: str | None = None
    cta: str | None = None
    legal: str | None = None
    logo_png: bytes | None = field(default=None, repr=False)
    palette: tuple[str, ...] = ()
    text_color: str | None = None
    cta_color: str | None = None
    cta_text_color: str | None = None
    font_scale: float = 1.0
    position: Position = "bottom"
    fix_contrast: bool = False

    def __post_init__(self) -> None:
        for name in _TEXT_ORDER:
            _check_text(name, getattr(self, name))
        if isinstance(self.palette, str):
            raise OverlayError("palette must be a list of #RRGGBB colours, not one string")
        object.__setattr__(self, "palette", tuple(self.palette))
        colors = {name: getattr(self, name) for name in ("text_color", "cta_color", "cta_text_color")}
        colors.update({f"palette[{index}]": value for index, value in enumerate(self.palette)})
        for name, value in colors.items():
            try:
                if value is not None:
                    parse_hex(value)
            except ValueError as error:
                raise OverlayError(f"{name}: {error}") from None
        scale = self.font_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.25 <= scale <= 4.0:
            raise OverlayError(f"font_scale must be a number from 0.25 to 4, got {self.font_scale!r}")
        if self.position not in ("bottom", "top", "center"):
            raise OverlayError(f"position must be 'bottom', 'top' or 'center', got {self.position!r}")

    def texts(self) -> dict[str, str]:
        """The texts to draw, in drawing order, blank ones left out."""
        return {
            name: text for name in _TEXT_ORDER if (text := getattr(self, name)) is not None and text.strip()
        }


@dataclass(frozen=True)
class OverlayResult:
    image: Image.Image  #: the composited RGB image
    boxes: dict[str, Box]  #: "logo", "headline", "cta" (the button), "legal", "scrim": (l, t, r, b)
    contrast: dict[str, float]  #: text vs the worst background pixel under it, after any scrim
    contrast_mean: dict[str, float]  #: text vs the mean background colour under it, after any scrim
    contrast_before_fix: dict[str, float]  #: worst-pixel contrast before the scrim ({} without one)
    colors: dict[str, str]  #: "text", "cta", "cta_text" and "scrim" (when laid) as #RRGGBB
    font: str  #: the font drawn with
    font_sizes: dict[str, int]  #: pixel size per text
    warnings: tuple[str, ...]

    def png_bytes(self) -> bytes:
        """The image as PNG with fixed settings and no metadata (same result -> same bytes)."""
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", compress_level=6)
        return buffer.getvalue()


@dataclass(frozen=True)
class _Block:
    lines: tuple[str, ...]
    size: int
    line_height: int
    height: int  # for the CTA: the button's height


def render_overlay(image: Image.Image, spec: OverlaySpec, safe_box: Box) -> OverlayResult:
    """Composite ``spec`` onto an RGB copy of ``image`` inside ``safe_box`` (l, t, r, b; r/b exclusive).

    The input is never modified (an alpha channel is not carried into the copy). Raises
    :class:`OverlayError` when the copy cannot fit or an input is unusable.
    """
    # 1. Inputs.
    canvas = image.convert("RGB")
    left, top, right, bottom = _check_box(safe_box, canvas.size)
    texts, logo = spec.texts(), _load_logo(spec.logo_png)
    # 2. Fit the copy, then place the logo and the text block.
    logo_size = _logo_size(logo, right - left, bottom - top)
    gap = max(4, round(0.02 * (bottom - top)))
    text_height = bottom - top - (logo_size[1] + gap if logo_size[1] else 0)
    base = HEADLINE_SHARE * spec.font_scale * ((right - left) * (bottom - top)) ** 0.5
    blocks = _fit(texts, base, right - left, text_height, gap)
    boxes, origins = _place(blocks, logo_size, (left, top, right, bottom), spec.position, gap, canvas)
    warnings = _size_warnings(blocks, base)
    # 3. Logo.
    if logo is not None:
        warnings += _paste_logo(canvas, logo, boxes["logo"])
    # 4. Colours from the palette and the real background.
    colors = _choose_colors(spec, np.asarray(canvas), [boxes[n] for n in ("headline", "legal") if n in boxes])
    # 5.-6. Contrast on the plain background, and the scrim where asked and needed.
    plain: dict[str, Box] = {n: boxes[n] for n in ("headline", "legal") if n in boxes}
    before = {n: _contrast(np.asarray(canvas), box, colors["text"])[0] for n, box in plain.items()}
    failing = {n: plain[n] for n, value in before.items() if value < AA_CONTRAST}
    scrimmed = spec.fix_contrast and bool(failing)
    if scrimmed:
        warnings += _lay_scrim(canvas, failing, blocks, spec.palette, colors, boxes)
    # 7. CTA button and text, then the final numbers.
    draw = ImageDraw.Draw(canvas)
    if "cta" in boxes:
        draw.rounded_rectangle(boxes["cta"], radius=round(0.3 * blocks["cta"].size), fill=colors["cta"])
    pixels = np.asarray(canvas)
    contrast: dict[str, float] = {}
    contrast_mean: dict[str, float] = {}
    for name in blocks:
        fill = colors["cta_text" if name == "cta" else "text"]
        contrast[name], contrast_mean[name] = _contrast(pixels, boxes[f"{name}_text"], fill)
        _draw_lines(draw, blocks[name], origins[name], fill)
    warnings += _contrast_warnings(contrast, contrast_mean, spec.fix_contrast)
    return OverlayResult(
        image=canvas,
        boxes={name: box for name, box in boxes.items() if not name.endswith("_text") or name == "cta_text"},
        contrast=contrast,
        contrast_mean=contrast_mean,
        contrast_before_fix=before if scrimmed else {},
        colors=colors,
        font=FONT_NAME,
        font_sizes={name: block.size for name, block in blocks.items()},
        warnings=tuple(warnings),
    )


def _check_text(name: str, text: object) -> None:
    if text is None:
        return
    if not isinstance(text, str):
        raise OverlayError(f"{name} must be text, got {type(text).__name__}")
    if len(text) > MAX_CHARS[name]:
        raise OverlayError(f"{name} is {len(text)} characters; the most is {MAX_CHARS[name]}, shorten it")
    for index, char in enumerate(text):
        if (unicodedata.category(char) == "Cc" and char != "\n") or char in _BIDI_CONTROLS:
            raise OverlayError(
                f"{name} has the control character U+{ord(char):04X} at position {index}; remove it"
            )


def _check_box(box: Box, size: tuple[int, int]) -> Box:
    width, height = size
    ok = len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
    if not ok or not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
        raise OverlayError(f"the safe box {box!r} is not (left, top, right, bottom) inside the {width}x{height} "
                           "image; get it from studio.editing.safezones.safe_box()")  # fmt: skip
    return (box[0], box[1], box[2], box[3])


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise OverlayError(
            "Pillow was built without FreeType, so text cannot be drawn; install a Pillow wheel"
        )
    return font


def _load_logo(data: bytes | None) -> Image.Image | None:
    """The logo PNG as RGBA (transparency kept); refuses other formats and huge images."""
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as opened:
            if max(opened.size) > MAX_LOGO_SIDE:
                raise OverlayError(
                    f"the logo is {opened.size[0]}x{opened.size[1]}; the most is {MAX_LOGO_SIDE} px a side"
                )
            opened.load()
            return opened.convert("RGBA")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
        raise OverlayError(
            f"the logo is not a readable PNG ({error}); export it as PNG and upload it again"
        ) from None


def _logo_size(logo: Image.Image | None, box_width: int, box_height: int) -> tuple[int, int]:
    if logo is None:
        return (0, 0)
    height = max(1, round(LOGO_HEIGHT_SHARE * box_height))
    width = max(1, round(height * logo.width / logo.height))
    if width > LOGO_WIDTH_SHARE * box_width:
        width = max(1, round(LOGO_WIDTH_SHARE * box_width))
        height = max(1, round(width * logo.height / logo.width))
    return (width, height)


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str] | None:
    """Greedy word wrap (explicit newlines kept); None when a single word is wider than the box."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            if font.getlength(word) > max_width:
                return None
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                candidate = word
            line = candidate
        lines.append(line)
    return lines


def _cta_padding(size: int) -> tuple[int, int]:
    return (round(0.8 * size), round(0.45 * size))


def _blocks_at(texts: dict[str, str], sizes: dict[str, int], max_width: int) -> dict[str, _Block] | None:
    blocks: dict[str, _Block] = {}
    for name, text in texts.items():
        font = _font(sizes[name])
        line_height = sum(font.getmetrics())
        if name == "cta":
            line = " ".join(text.split())
            pad_x, pad_y = _cta_padding(sizes[name])
            if font.getlength(line) + 2 * pad_x > max_width:
                return None
            blocks[name] = _Block((line,), sizes[name], line_height, line_height + 2 * pad_y)
            continue
        lines = _wrap(text, font, max_width)
        if lines is None:
            return None
        blocks[name] = _Block(tuple(lines), sizes[name], line_height, len(lines) * line_height)
    return blocks


def _fit(texts: dict[str, str], base: float, max_width: int, max_height: int, gap: int) -> dict[str, _Block]:
    """The largest text sizes (``base`` shrunk 10 % a step) at which all copy fits the box."""
    if not texts:
        return {}
    scale = 1.0
    while True:
        sizes = {name: max(MIN_FONT_PX, round(base * SIZE_RATIOS[name] * scale)) for name in texts}
        blocks = _blocks_at(texts, sizes, max_width)
        if blocks is not None and _stack_height(blocks, gap) <= max_height:
            return blocks
        if all(size == MIN_FONT_PX for size in sizes.values()):
            needed = (
                f"needs {_stack_height(blocks, gap)} px of height" if blocks else "has a word wider than that"
            )

            raise OverlayError(
                f"the copy does not fit the {max_width}x{max_height} px text area even at the {MIN_FONT_PX} px "
                f"minimum (it {needed}); shorten the headline or legal line, leave one out, or use a larger format"
            )
        scale *= SHRINK_STEP


def _stack_height(blocks: dict[str, _Block], gap: int) -> int:
    return sum(block.height for block in blocks.values()) + gap * max(0, len(blocks) - 1)


def _place(
    blocks: dict[str, _Block], logo_size: tuple[int, int], box: Box, position: Position, gap: int,
    canvas: Image.Image,
) -> tuple[dict[str, Box], dict[str, tuple[int, int]]]:  # fmt: skip
    """Boxes of the logo, each block ("cta" = the button) and its ink ("<name>_text"), and text origins."""
    left, top, right, bottom = box
    centre = left + (right - left) // 2
    boxes: dict[str, Box] = {}
    if logo_size[1]:  # the logo at the end of the box away from the text
        logo_top = bottom - logo_size[1] if position == "top" else top
        boxes["logo"] = (centre - logo_size[0] // 2, logo_top, centre - logo_size[0] // 2 + logo_size[0],
                         logo_top + logo_size[1])  # fmt: skip
    free_top = boxes["logo"][3] + gap if "logo" in boxes and position != "top" else top
    height = _stack_height(blocks, gap)
    y = {"top": top, "bottom": bottom - height, "center": max(free_top, top + (bottom - top - height) // 2)}[
        position
    ]
    draw, origins = ImageDraw.Draw(canvas), {}
    for name, block in blocks.items():
        text_y = y
        if name == "cta":
            width = round(_font(block.size).getlength(block.lines[0])) + 2 * _cta_padding(block.size)[0]
            boxes["cta"] = (centre - width // 2, y, centre - width // 2 + width, y + block.height)
            text_y = y + _cta_padding(block.size)[1]
        origins[name] = (centre, text_y)
        boxes[f"{name}_text"] = _ink_box(draw, block, (centre, text_y))
        if name != "cta":
            boxes[name] = boxes[f"{name}_text"]
        y += block.height + gap
    return boxes, origins


def _ink_box(draw: ImageDraw.ImageDraw, block: _Block, origin: tuple[int, int]) -> Box:
    font, (x, y) = _font(block.size), origin
    ink = [draw.textbbox((x, y + i * block.line_height), line, font=font, anchor="ma")
           for i, line in enumerate(block.lines) if line]  # fmt: skip
    return _union([tuple(int(v) for v in b) for b in ink]) if ink else (x, y, x + 1, y + block.line_height)


def _union(
    boxes: list[Box] | list[tuple[int, ...]], pad: int = 0, size: tuple[int, int] | None = None
) -> Box:
    """The box around ``boxes``, grown by ``pad`` and clipped to an image of ``size``."""
    width, height = size or (1 << 30, 1 << 30)
    return (max(0, min(b[0] for b in boxes) - pad), max(0, min(b[1] for b in boxes) - pad),
            min(width, max(b[2] for b in boxes) + pad), min(height, max(b[3] for b in boxes) + pad))  # fmt: skip


def _draw_lines(draw: ImageDraw.ImageDraw, block: _Block, origin: tuple[int, int], fill: str) -> None:
    font, (x, y) = _font(block.size), origin
    for index, line in enumerate(block.lines):
        draw.text((x, y + index * block.line_height), line, font=font, fill=fill, anchor="ma")


def _paste_logo(canvas: Image.Image, logo: Image.Image, box: Box) -> list[str]:
    resized = logo.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
    canvas.paste(resized, box[:2], resized)  # the logo's own alpha as the paste mask
    if resized.height <= logo.height:
        return []
    return [
        f"the logo is {logo.height} px tall and is shown {resized.height} px tall (blurry); upload a larger one"
    ]


def _region(pixels: np.ndarray, box: Box) -> np.ndarray:
    left, top, right, bottom = box
    height, width = pixels.shape[:2]
    region = pixels[max(0, top) : min(height, bottom), max(0, left) : min(width, right)].reshape(-1, 3)
    return region if len(region) else pixels.reshape(-1, 3)[:1]


def _contrast(pixels: np.ndarray, box: Box, color: str) -> tuple[float, float]:
    """(worst pixel, mean colour) WCAG contrast of ``color`` on the pixels inside ``box``."""
    return contrast_on_pixels(_region(pixels, box), color)


def _choose_colors(spec: OverlaySpec, pixels: np.ndarray, text_boxes: list[Box]) -> dict[str, str]:
    """Spec colours as given; unset ones from the palette against the pixels under the text."""
    background = np.concatenate([_region(pixels, b) for b in text_boxes]) if text_boxes else pixels
    text = to_hex(parse_hex(spec.text_color)) if spec.text_color else readable_color(spec.palette, background)
    default_button = most_saturated(spec.palette) if spec.palette else text
    button = to_hex(parse_hex(spec.cta_color)) if spec.cta_color else default_button
    button_pixels = np.array([parse_hex(button)], dtype=np.uint8)
    cta_text = spec.cta_text_color and to_hex(parse_hex(spec.cta_text_color))
    return {"text": text, "cta": button, "cta_text": cta_text or readable_color(spec.palette, button_pixels)}


def _lay_scrim(
    canvas: Image.Image, failing: dict[str, Box], blocks: dict[str, _Block], palette: tuple[str, ...],
    colors: dict[str, str], boxes: dict[str, Box],
) -> list[str]:  # fmt: skip
    """Blend a panel of the palette extreme contrasting most with the text behind the failing texts,
    at the lightest opacity in :data:`SCRIM_OPACITIES` that brings every one of them to AA."""
    panel = _union(list(failing.values()), round(0.35 * max(blocks[n].size for n in failing)), canvas.size)
    shade = max(palette_extremes(palette), key=lambda c: (contrast_ratio(c, colors["text"]), c))
    pixels = np.asarray(canvas).copy()
    original = pixels[panel[1] : panel[3], panel[0] : panel[2]].astype(np.float64)
    for opacity in SCRIM_OPACITIES:
        blended = np.rint(original * (1 - opacity) + np.array(parse_hex(shade)) * opacity).astype(np.uint8)
        pixels[panel[1] : panel[3], panel[0] : panel[2]] = blended
        if all(_contrast(pixels, box, colors["text"])[0] >= AA_CONTRAST for box in failing.values()):
            break
    canvas.paste(Image.fromarray(pixels[panel[1] : panel[3], panel[0] : panel[2]]), panel[:2])
    colors["scrim"], boxes["scrim"] = shade, panel
    return [f"laid a {shade} scrim at {opacity:.0%} opacity behind {', '.join(failing)} for contrast"]


def _size_warnings(blocks: dict[str, _Block], base: float) -> list[str]:
    return [f"{name} shrunk to {block.size} px (from {round(base * SIZE_RATIOS[name])} px) to fit the safe box"
            for name, block in blocks.items() if block.size < round(base * SIZE_RATIOS[name])]  # fmt: skip


def _contrast_warnings(contrast: dict[str, float], mean: dict[str, float], fixed: bool) -> list[str]:
    advice = "pick other colours" if fixed else "turn on the contrast fix or pick other colours"
    return [f"{name} contrast {value:.2f}:1 (worst pixel; {mean[name]:.2f}:1 on the mean background) is below "
            f"WCAG AA {AA_CONTRAST}:1; {advice}" for name, value in contrast.items() if value < AA_CONTRAST]  # fmt: skip
