"""Ad formats: the channels' exact pixel sizes, and the size to generate each one at.

The table is data (GUIDE: "ad formats are data tables, not if-chains"), copied from the ad-size
section of ``shared/reference/formats.md`` (third-party guides, LinkedIn help a426534, Google Ads API
``ResponsiveDisplayAdInfo``). Re-check the sources before relying on a size and update
:data:`LAST_CHECKED` with the table.

Generating: diffusion models draw best near the pixel count they were trained at, in multiples of 64.
:func:`generation_size` picks the multiple-of-64 size closest in aspect ratio and pixel count to the
model's native square (for SDXL's 1024x1024: 896x1152 for 4:5 and 768x1344 for 9:16, its trained
buckets; 1472x768 for 1.91:1); :func:`fit_to_format` then scales and centre-crops (Lanczos) to the exact
size. No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: When the table was copied from formats.md (which cites the sources; not re-verified online then).
LAST_CHECKED = "2026-11-26"
#: Sides a generation size may take (the request schema's limits).
MIN_SIDE, MAX_SIDE, STEP = 64, 2048, 64
#: How much a pixel-count mismatch costs against an aspect-ratio mismatch (both as |log ratio|).
PIXEL_WEIGHT = 0.5
#: Above this share of the generated image cropped away, the recipe carries a warning.
CROP_WARNING = 0.10


@dataclass(frozen=True)
class AdFormat:
    key: str
    channel: str
    label: str
    width: int
    height: int
    max_kb: int | None = None  #: the channel's file size cap
    note: str = ""
    source: str = "3rd"  #: "docs" (platform documentation) or "3rd" (third-party guides)


_BANNERS = ((300, 250), (336, 280), (728, 90), (300, 600), (160, 600), (970, 250), (970, 90), (320, 50),
            (320, 100), (250, 250), (200, 200), (468, 60), (120, 600))  # fmt: skip

AD_FORMATS: dict[str, AdFormat] = {
    f.key: f
    for f in (
        AdFormat("meta_feed_square", "Meta", "Feed square 1:1", 1080, 1080, 30 * 1024,
                 "primary text ~125, headline ~27 chars before truncation"),
        AdFormat("meta_feed_portrait", "Meta", "Feed portrait 4:5 (Instagram: keep ~64 px margins)", 1080, 1350, 30 * 1024),
        AdFormat("meta_stories", "Meta", "Stories / Reels 9:16", 1080, 1920, 30 * 1024,
                 "keep text out of the top ~250 px and bottom ~340 px (Reels: bottom ~35 %)"),
        AdFormat("meta_link", "Meta", "Link / right column 1.91:1", 1200, 628, 30 * 1024),
        AdFormat("google_rda_landscape", "Google", "Responsive display landscape 1.91:1 (min 600x314)", 1200, 628,
                 5120, "aspect ratio within 1 %", "docs"),
        AdFormat("google_rda_square", "Google", "Responsive display square 1:1 (min 300x300)", 1200, 1200, 5120,
                 "aspect ratio within 1 %", "docs"),
        AdFormat("google_rda_portrait", "Google", "Responsive display portrait 4:5 (min 320x400)", 1200, 1500, 5120,
                 "optional; aspect ratio within 1 %", "docs"),
        *(AdFormat(f"google_banner_{w}x{h}", "Google", f"Display banner {w}x{h} (IAB)", w, h, 150,
                   "a layout template: compose logo, headline and CTA on the background")
          for w, h in _BANNERS),
        AdFormat("linkedin_landscape", "LinkedIn", "Single image 1.91:1 (min 640x360)", 1200, 628, 5 * 1024,
                 "intro text ~150 chars before 'see more'", "docs"),
        AdFormat("linkedin_square", "LinkedIn", "Single image 1:1 (min 360x360)", 1200, 1200, 5 * 1024, "", "docs"),
        AdFormat("linkedin_vertical", "LinkedIn", "Single image 4:5 (min 360x640; mobile only)", 720, 900, 5 * 1024,
                 "", "docs"),
        AdFormat("x_square", "X", "Image ad 1:1", 1200, 1200, 5 * 1024),
        AdFormat("x_landscape", "X", "Image ad 1.91:1", 1200, 628, 5 * 1024),
        AdFormat("x_card_square", "X", "Website card 1:1", 800, 800, 5 * 1024),
        AdFormat("x_card_landscape", "X", "Website card 1.91:1", 800, 418, 5 * 1024),
    )
}  # fmt: skip
FORMAT_KEYS = tuple(AD_FORMATS)


def generation_size(fmt: AdFormat, native_side: int) -> tuple[int, int]:
    """(width, height), multiples of 64, for a model trained at ``native_side`` squared pixels.

    Minimises ``|log(aspect / target aspect)| + PIXEL_WEIGHT * |log(pixels / native pixels)|``.
    """
    target_aspect = fmt.width / fmt.height
    native = native_side * native_side
    sides = range(MIN_SIDE, MAX_SIDE + 1, STEP)

    def cost(size: tuple[int, int]) -> tuple[float, int, int]:
        w, h = size
        return abs(math.log(w / h / target_aspect)) + PIXEL_WEIGHT * abs(math.log(w * h / native)), w, h

    return min(((w, h) for w in sides for h in sides), key=cost)


def crop_share(fmt: AdFormat, size: tuple[int, int]) -> float:
    """The share of a generated image of ``size`` that fitting to the format crops away."""
    aspect, target = size[0] / size[1], fmt.width / fmt.height
    return 1 - min(aspect, target) / max(aspect, target)


def fit_to_format(image: Any, fmt: AdFormat) -> Any:
    """Scale to cover the format's size and crop the centre, with Lanczos (``ImageOps.fit``)."""
    from PIL import Image, ImageOps

    if image.size == (fmt.width, fmt.height):
        return image
    return ImageOps.fit(image, (fmt.width, fmt.height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def format_recipe(fmt: AdFormat, size: tuple[int, int]) -> dict[str, Any]:
    """What the recipe records: the format key, the generation size and the final size."""
    return {"key": fmt.key, "channel": fmt.channel, "generation_size": list(size),
            "final_size": [fmt.width, fmt.height], "crop_share": round(crop_share(fmt, size), 4)}  # fmt: skip


def format_warnings(fmt: AdFormat, size: tuple[int, int]) -> list[str]:
    share = crop_share(fmt, size)
    if share <= CROP_WARNING:
        return []
    return [f"{fmt.key}: fitting {size[0]}x{size[1]} to {fmt.width}x{fmt.height} crops {share:.0%} of the image; "
            "for such extreme formats compose a layout (background + logo + text) instead"]  # fmt: skip
