"""Named colours, hex/RGB conversion and perceptual colour distance (CIE Lab, CIEDE2000).

Pure Python on purpose (no numpy, no Pillow): the sandboxed PDF reader imports this module under a
tight memory limit. The name table is the CSS named colours (``aqua``/``fuchsia`` and the ``grey``
spellings dropped as duplicates), written as lower-case words with spaces.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

from brand_kits.errors import KitError

Rgb = tuple[int, int, int]
Lab = tuple[float, float, float]

# fmt: off
NAMED_COLORS: dict[str, Rgb] = {
    "alice blue": (240, 248, 255), "antique white": (250, 235, 215), "aquamarine": (127, 255, 212),
    "azure": (240, 255, 255), "beige": (245, 245, 220), "bisque": (255, 228, 196),
    "black": (0, 0, 0), "blanched almond": (255, 235, 205), "blue": (0, 0, 255),
    "blue violet": (138, 43, 226), "brown": (165, 42, 42), "burly wood": (222, 184, 135),
    "cadet blue": (95, 158, 160), "chartreuse": (127, 255, 0), "chocolate": (210, 105, 30),
    "coral": (255, 127, 80), "cornflower blue": (100, 149, 237), "cornsilk": (255, 248, 220),
    "crimson": (220, 20, 60), "cyan": (0, 255, 255), "dark blue": (0, 0, 139),
    "dark cyan": (0, 139, 139), "dark goldenrod": (184, 134, 11), "dark gray": (169, 169, 169),
    "dark green": (0, 100, 0), "dark khaki": (189, 183, 107), "dark magenta": (139, 0, 139),
    "dark olive green": (85, 107, 47), "dark orange": (255, 140, 0), "dark orchid": (153, 50, 204),
    "dark red": (139, 0, 0), "dark salmon": (233, 150, 122), "dark sea green": (143, 188, 143),
    "dark slate blue": (72, 61, 139), "dark slate gray": (47, 79, 79), "dark turquoise": (0, 206, 209),
    "dark violet": (148, 0, 211), "deep pink": (255, 20, 147), "deep sky blue": (0, 191, 255),
    "dim gray": (105, 105, 105), "dodger blue": (30, 144, 255), "firebrick": (178, 34, 34),
    "floral white": (255, 250, 240), "forest green": (34, 139, 34), "gainsboro": (220, 220, 220),
    "ghost white": (248, 248, 255), "gold": (255, 215, 0), "goldenrod": (218, 165, 32),
    "gray": (128, 128, 128), "green": (0, 128, 0), "green yellow": (173, 255, 47),
    "honeydew": (240, 255, 240), "hot pink": (255, 105, 180), "indian red": (205, 92, 92),
    "indigo": (75, 0, 130), "ivory": (255, 255, 240), "khaki": (240, 230, 140),
    "lavender": (230, 230, 250), "lavender blush": (255, 240, 245), "lawn green": (124, 252, 0),
    "lemon chiffon": (255, 250, 205), "light blue": (173, 216, 230), "light coral": (240, 128, 128),
    "light cyan": (224, 255, 255), "light goldenrod yellow": (250, 250, 210),
    "light gray": (211, 211, 211), "light green": (144, 238, 144), "light pink": (255, 182, 193),
    "light salmon": (255, 160, 122), "light sea green": (32, 178, 170),
    "light sky blue": (135, 206, 250), "light slate gray": (119, 136, 153),
    "light steel blue": (176, 196, 222), "light yellow": (255, 255, 224), "lime": (0, 255, 0),
    "lime green": (50, 205, 50), "linen": (250, 240, 230), "magenta": (255, 0, 255),
    "maroon": (128, 0, 0), "medium aquamarine": (102, 205, 170), "medium blue": (0, 0, 205),
    "medium orchid": (186, 85, 211), "medium purple": (147, 112, 219),
    "medium sea green": (60, 179, 113), "medium slate blue": (123, 104, 238),
    "medium spring green": (0, 250, 154), "medium turquoise": (72, 209, 204),
    "medium violet red": (199, 21, 133), "midnight blue": (25, 25, 112), "mint cream": (245, 255, 250),
    "misty rose": (255, 228, 225), "moccasin": (255, 228, 181), "navajo white": (255, 222, 173),
    "navy": (0, 0, 128), "old lace": (253, 245, 230), "olive": (128, 128, 0),
    "olive drab": (107, 142, 35), "orange": (255, 165, 0), "orange red": (255, 69, 0),
    "orchid": (218, 112, 214), "pale goldenrod": (238, 232, 170), "pale green": (152, 251, 152),
    "pale turquoise": (175, 238, 238), "pale violet red": (219, 112, 147),
    "papaya whip": (255, 239, 213), "peach puff": (255, 218, 185), "peru": (205, 133, 63),
    "pink": (255, 192, 203), "plum": (221, 160, 221), "powder blue": (176, 224, 230),
    "purple": (128, 0, 128), "rebecca purple": (102, 51, 153), "red": (255, 0, 0),
    "rosy brown": (188, 143, 143), "royal blue": (65, 105, 225), "saddle brown": (139, 69, 19),
    "salmon": (250, 128, 114), "sandy brown": (244, 164, 96), "sea green": (46, 139, 87),
    "seashell": (255, 245, 238), "sienna": (160, 82, 45), "silver": (192, 192, 192),
    "sky blue": (135, 206, 235), "slate blue": (106, 90, 205), "slate gray": (112, 128, 144),
    "snow": (255, 250, 250), "spring green": (0, 255, 127), "steel blue": (70, 130, 180),
    "tan": (210, 180, 140), "teal": (0, 128, 128), "thistle": (216, 191, 216),
    "tomato": (255, 99, 71), "turquoise": (64, 224, 208), "violet": (238, 130, 238),
    "wheat": (245, 222, 179), "white": (255, 255, 255), "white smoke": (245, 245, 245),
    "yellow": (255, 255, 0), "yellow green": (154, 205, 50),
}
# fmt: on

_HEX = re.compile(r"#?([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")
# sRGB (D65) -> XYZ, and the D65 reference white.
_XYZ_ROWS = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)
_EPSILON = (6 / 29) ** 3
_POW25_7 = 25.0**7


def hex_to_rgb(value: str) -> Rgb:
    """``"#1F3A93"``, ``"1f3a93"``, ``"#abc"`` or ``"abc"`` -> ``(31, 58, 147)``."""
    if not isinstance(value, str):
        raise KitError(f"a colour must be a hex code as text, got {type(value).__name__}")
    match = _HEX.fullmatch(value.strip())
    if match is None:
        shown = value.strip()[:20]
        raise KitError(f"'{shown}' is not a hex colour; write it as #RRGGBB or #RGB (for example #1F3A93)")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(char * 2 for char in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def rgb_to_hex(rgb: Sequence[int]) -> str:
    """``(31, 58, 147)`` -> ``"#1F3A93"`` (upper case)."""
    return "#{:02X}{:02X}{:02X}".format(*_check_rgb(rgb))


def normalize_hex(value: str) -> str:
    """Any accepted hex spelling -> ``"#RRGGBB"`` upper case."""
    return rgb_to_hex(hex_to_rgb(value))


def _check_rgb(rgb: Sequence[int]) -> Rgb:
    if (
        isinstance(rgb, str)
        or len(rgb) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgb)
    ):
        raise KitError(f"an RGB colour must be three integers 0-255, got {rgb!r}")
    return (rgb[0], rgb[1], rgb[2])


def _as_rgb(color: str | Sequence[int]) -> Rgb:
    return hex_to_rgb(color) if isinstance(color, str) else _check_rgb(color)


def _linear(channel: int) -> float:
    value = channel / 255.0
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def _lab_f(t: float) -> float:
    return t ** (1 / 3) if t > _EPSILON else t / (3 * (6 / 29) ** 2) + 4 / 29


def rgb_to_lab(rgb: Sequence[int]) -> Lab:
    """8-bit sRGB -> CIE L*a*b* (D65)."""
    return _lab_of(_check_rgb(rgb))


@functools.lru_cache(maxsize=4096)
def _lab_of(rgb: Rgb) -> Lab:
    red, green, blue = (_linear(c) for c in rgb)
    fx, fy, fz = (
        _lab_f((row[0] * red + row[1] * green + row[2] * blue) / white)
        for row, white in zip(_XYZ_ROWS, _WHITE, strict=True)
    )
    return (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz))


def delta_e_lab(lab1: Lab, lab2: Lab) -> float:
    """CIEDE2000 colour difference of two Lab colours (1 is about a just-noticeable difference)."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    # 1. a' rescaled by the mean chroma, then C' and h'.
    c_mean7 = ((math.hypot(a1, b1) + math.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - math.sqrt(c_mean7 / (c_mean7 + _POW25_7)))
    a1p, a2p = a1 * (1.0 + g), a2 * (1.0 + g)
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360.0 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360.0 if c2p else 0.0
    # 2. Differences in lightness, chroma and hue.
    dlp, dcp = l2 - l1, c2p - c1p
    dhp = 0.0
    if c1p * c2p:
        dhp = h2p - h1p
        dhp = dhp - 360.0 if dhp > 180.0 else dhp + 360.0 if dhp < -180.0 else dhp
    d_hue = 2.0 * math.sqrt(c1p * c2p) * math.sin(math.radians(dhp / 2.0))
    # 3. Means and weighting functions.
    lp_mean, cp_mean = (l1 + l2) / 2.0, (c1p + c2p) / 2.0
    hp_mean = h1p + h2p
    if c1p * c2p:
        if abs(h1p - h2p) <= 180.0:
            hp_mean /= 2.0
        else:
            hp_mean = (hp_mean + 360.0) / 2.0 if hp_mean < 360.0 else (hp_mean - 360.0) / 2.0
    t = (
        1.0
        - 0.17 * math.cos(math.radians(hp_mean - 30.0))
        + 0.24 * math.cos(math.radians(2.0 * hp_mean))
        + 0.32 * math.cos(math.radians(3.0 * hp_mean + 6.0))
        - 0.20 * math.cos(math.radians(4.0 * hp_mean - 63.0))
    )
    s_l = 1.0 + 0.015 * (lp_mean - 50.0) ** 2 / math.sqrt(20.0 + (lp_mean - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    cp_mean7 = cp_mean**7
    r_t = (
        -2.0
        * math.sqrt(cp_mean7 / (cp_mean7 + _POW25_7))
        * math.sin(math.radians(60.0 * math.exp(-(((hp_mean - 275.0) / 25.0) ** 2))))
    )
    term_l, term_c, term_h = dlp / s_l, dcp / s_c, d_hue / s_h
    return math.sqrt(term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h)


def delta_e(rgb1: str | Sequence[int], rgb2: str | Sequence[int]) -> float:
    """CIEDE2000 difference of two sRGB colours (hex codes or ``(r, g, b)``); < ~2 looks the same."""
    return delta_e_lab(_lab_of(_as_rgb(rgb1)), _lab_of(_as_rgb(rgb2)))


@functools.cache
def _named_labs() -> tuple[tuple[str, Lab], ...]:
    return tuple((name, _lab_of(rgb)) for name, rgb in NAMED_COLORS.items())


def nearest_color_name(color: str | Sequence[int]) -> str:
    """The perceptually nearest colour name (CIEDE2000), e.g. ``"#1F3A93"`` -> ``"dark slate blue"``."""
    lab = _lab_of(_as_rgb(color))
    best_name, best_distance = "", math.inf
    for name, named_lab in _named_labs():
        distance = delta_e_lab(lab, named_lab)
        if distance < best_distance:
            best_name, best_distance = name, distance
    return best_name
