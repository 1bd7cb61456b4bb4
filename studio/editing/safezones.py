"""Per-channel safe zones: where overlay text and logos may go on each ad format.

A data table keyed by :data:`studio.formats.AD_FORMATS` keys. Each zone is four insets as shares of
the format's own width (left, right) and height (top, bottom), so :func:`safe_box` scales them to
whatever canvas is actually being drawn on. Sources (``shared/reference/formats.md``, third-party
guides):

- Meta Stories / Reels 1080x1920: keep text out of the top ~250 px and bottom ~340 px (profile bar
  and reply / CTA bar); Reels covers more of the bottom (~35 %), so a Reels placement should use a
  taller bottom band than this table's Stories zone.
- Instagram feed (1:1 and 4:5): keep ~64 px margins on a 1080 px wide image.
- IAB display banners: a small inner margin (6 % of the short side, at least 4 px) so text does not
  touch the banner border.
- Everything else: 5 % of each side (our default, the usual "title safe" margin).
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.formats import AD_FORMATS, AdFormat

#: Inset on every side for formats with no specific rule, as a share of the side.
DEFAULT_MARGIN = 0.05
#: Banner inner margin as a share of the short side, and its floor in pixels.
BANNER_MARGIN, BANNER_MARGIN_MIN_PX = 0.06, 4


@dataclass(frozen=True)
class SafeZone:
    """Insets as shares of the canvas: ``left``/``right`` of the width, ``top``/``bottom`` of the height."""

    left: float
    top: float
    right: float
    bottom: float
    source: str  #: where the numbers come from


DEFAULT_ZONE = SafeZone(DEFAULT_MARGIN, DEFAULT_MARGIN, DEFAULT_MARGIN, DEFAULT_MARGIN, "default 5 % margins")


def _pixel_zone(
    width: int, height: int, left: int, top: int, right: int, bottom: int, source: str
) -> SafeZone:
    return SafeZone(left / width, top / height, right / width, bottom / height, source)


def _banner_zone(fmt: AdFormat) -> SafeZone:
    margin = max(BANNER_MARGIN_MIN_PX, round(BANNER_MARGIN * min(fmt.width, fmt.height)))
    return _pixel_zone(fmt.width, fmt.height, margin, margin, margin, margin, "IAB banner inner margin")


_INSTAGRAM = "Instagram feed: ~64 px margins at 1080 px wide"
SAFE_ZONES: dict[str, SafeZone] = {
    "meta_stories": _pixel_zone(
        1080, 1920, 64, 250, 64, 340, "Meta Stories: top 250 px, bottom 340 px of 1920"
    ),
    "meta_feed_square": _pixel_zone(1080, 1080, 64, 64, 64, 64, _INSTAGRAM),
    "meta_feed_portrait": _pixel_zone(1080, 1350, 64, 64, 64, 64, _INSTAGRAM),
    **{key: _banner_zone(fmt) for key, fmt in AD_FORMATS.items() if key.startswith("google_banner_")},
}


def zone_for(format_key: str | None) -> SafeZone:
    """The safe zone of an ad format key, :data:`DEFAULT_ZONE` for ``None`` (a custom canvas)."""
    if format_key is None:
        return DEFAULT_ZONE
    if format_key not in AD_FORMATS:
        known = ", ".join(sorted(AD_FORMATS))
        raise ValueError(
            f"unknown ad format {format_key!r}; use one of: {known} (or None for a custom canvas)"
        )
    return SAFE_ZONES.get(format_key, DEFAULT_ZONE)


def safe_box(format_key: str | None, width: int, height: int) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` pixel box (right/bottom exclusive) where overlays may go.

    The format's zone is scaled to the actual ``width`` x ``height`` canvas (a 540x960 Stories draft
    keeps its text out of the top 125 px and bottom 170 px).
    """
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"canvas {name} must be a positive whole number of pixels, got {value!r}")
    zone = zone_for(format_key)
    left, top = round(zone.left * width), round(zone.top * height)
    right, bottom = width - round(zone.right * width), height - round(zone.bottom * height)
    if right - left < 1 or bottom - top < 1:
        raise ValueError(
            f"a {width}x{height} canvas leaves no room inside the {format_key} safe zone; use a larger size"
        )
    return (left, top, right, bottom)
