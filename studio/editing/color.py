"""Colour maths for brand checks: sRGB/linear, WCAG contrast, CIE Lab, CIEDE2000, dominant colours.

- Linearisation uses the sRGB standard's 0.04045 threshold (WCAG 2.x's 0.03928 differs only below
  8-bit precision). Relative luminance and the contrast ratio ``(L1 + 0.05) / (L2 + 0.05)`` follow
  WCAG 2.x: black on white is 21, #777 on white 4.48.
- Lab is CIE 1976 L*a*b* under D65 (the sRGB white point, no chromatic adaptation).
- CIEDE2000 follows Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula:
  implementation notes, supplementary test data, and mathematical observations"; the tests check
  their 34-pair table to 4 decimals.
- Dominant colours: weighted k-means in Lab over the distinct colours of a nearest-neighbour
  downsample, started by k-means++ from a fixed ``numpy`` Generator seed, so the same image always
  gives the same answer. Each colour is reported as the exact mean sRGB of its member pixels.

Vectorised numpy throughout; single colours accept ``"#RRGGBB"``/``"#RGB"`` or ``(r, g, b)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

Rgb = tuple[int, int, int]
Color = str | Sequence[int]

_HEX = re.compile(r"#?([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")
# sRGB (D65) primaries -> XYZ, and the D65 reference white (IEC 61966-2-1).
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
# WCAG 2.x relative luminance weights (white sums to exactly 1).
_WCAG_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])
_LAB_EPSILON = (6 / 29) ** 3
_POW25_7 = 25.0**7
#: Longest side of the downsample that dominant colours are computed on.
SAMPLE_SIDE = 96
#: Lloyd iterations at most (k-means converges in far fewer on a downsample).
KMEANS_MAX_ITER = 50


class DominantColor(NamedTuple):
    hex: str  #: "#RRGGBB", the exact mean colour of the cluster's pixels
    share: float  #: the cluster's share of the counted pixels (shares sum to 1)


def parse_hex(value: str) -> Rgb:
    """``"#1F3A93"``, ``"1f3a93"``, ``"#abc"`` -> ``(31, 58, 147)``; ValueError for anything else."""
    match = _HEX.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{str(value)[:20]!r} is not a hex colour; write it as #RRGGBB or #RGB (e.g. #1F3A93)"
        )
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(char * 2 for char in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def to_hex(rgb: Sequence[int]) -> str:
    """``(31, 58, 147)`` -> ``"#1F3A93"``."""
    return "#{:02X}{:02X}{:02X}".format(*as_rgb(rgb))


def as_rgb(color: Color) -> Rgb:
    """A hex code or three 0-255 integers -> ``(r, g, b)``."""
    if isinstance(color, str):
        return parse_hex(color)
    values = tuple(color)
    if len(values) != 3 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and 0 <= v <= 255 for v in values
    ):
        raise ValueError(f"an RGB colour must be three integers 0-255, got {color!r}")
    return (int(values[0]), int(values[1]), int(values[2]))


def srgb_to_linear(values: np.ndarray | float) -> np.ndarray:
    """sRGB channel values in 0..1 -> linear light (threshold 0.04045)."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray | float) -> np.ndarray:
    """Linear light in 0..1 -> sRGB channel values in 0..1 (the inverse of :func:`srgb_to_linear`)."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(v <= 0.04045 / 12.92, v * 12.92, 1.055 * np.power(np.maximum(v, 0.0), 1 / 2.4) - 0.055)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of 8-bit sRGB pixels, shape ``(..., 3)`` -> ``(...)`` in 0..1."""
    linear = srgb_to_linear(np.asarray(rgb, dtype=np.float64) / 255.0)
    return np.asarray(linear @ _WCAG_WEIGHTS)


def relative_luminance(color: Color) -> float:
    """WCAG relative luminance of one colour: 0 for black, 1 for white."""
    return float(luminance(np.array(as_rgb(color))))


def contrast_of_luminance(lum1: np.ndarray | float, lum2: np.ndarray | float) -> np.ndarray:
    """WCAG contrast ratio of two relative luminances (either order), 1..21; broadcasts."""
    a, b = np.asarray(lum1, dtype=np.float64), np.asarray(lum2, dtype=np.float64)
    return (np.maximum(a, b) + 0.05) / (np.minimum(a, b) + 0.05)


def contrast_ratio(color1: Color, color2: Color) -> float:
    """WCAG 2.x contrast ratio of two colours: 21.0 for black on white, 1.0 for equal colours."""
    return float(contrast_of_luminance(relative_luminance(color1), relative_luminance(color2)))


def contrast_on_pixels(pixels: np.ndarray, color: Color) -> tuple[float, float]:
    """WCAG contrast of ``color`` on 8-bit pixels ``(..., 3)``: (against the worst pixel, against
    their mean colour). The first is the conservative number text checks use."""
    region = np.asarray(pixels).reshape(-1, 3)
    text = relative_luminance(color)
    worst = float(contrast_of_luminance(text, luminance(region)).min())
    return worst, float(contrast_of_luminance(text, luminance(np.rint(region.mean(0)))))


def palette_extremes(palette: Sequence[str]) -> tuple[str, str]:
    """The darkest and lightest palette colours as ``#RRGGBB`` (black and white for no palette)."""
    if not palette:
        return ("#000000", "#FFFFFF")
    ordered = sorted((to_hex(parse_hex(c)) for c in palette), key=lambda c: (relative_luminance(c), c))
    return (ordered[0], ordered[-1])


def readable_color(palette: Sequence[str], background: np.ndarray) -> str:
    """A text colour for ``background`` pixels: the palette extreme with the higher contrast on their
    mean colour if it reaches WCAG AA (4.5), else the best of it, black and white."""
    mean_luminance = float(luminance(np.rint(np.asarray(background).reshape(-1, 3).mean(0))))

    def score(color: str) -> tuple[float, str]:
        return float(contrast_of_luminance(relative_luminance(color), mean_luminance)), color

    best = max(palette_extremes(palette), key=score)
    return best if score(best)[0] >= 4.5 else max(("#000000", "#FFFFFF", best), key=score)


def most_saturated(palette: Sequence[str]) -> str:
    """The palette colour with the largest Lab chroma (the accent a CTA button takes)."""
    if not palette:
        raise ValueError("the palette is empty; pass at least one #RRGGBB colour")
    return max(
        (to_hex(parse_hex(c)) for c in palette), key=lambda c: (float(np.hypot(*color_to_lab(c)[1:])), c)
    )


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB values, shape ``(..., 3)`` (ints or floats 0..255) -> CIE L*a*b* (D65), same shape."""
    linear = srgb_to_linear(np.asarray(rgb, dtype=np.float64) / 255.0)
    xyz = (linear @ _SRGB_TO_XYZ.T) / _WHITE_D65
    f = np.where(xyz > _LAB_EPSILON, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1
    )


def color_to_lab(color: Color) -> np.ndarray:
    """One colour -> its Lab triple, shape ``(3,)``."""
    return srgb_to_lab(np.array(as_rgb(color)))


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of Lab arrays ``(..., 3)``; broadcasts.

    Steps as numbered in Sharma, Wu and Dalal (2005), equations 1-22.
    """
    lab1, lab2 = np.asarray(lab1, dtype=np.float64), np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    # 1. a' rescaled by the mean chroma (eq. 2-5), then C' and h' (eq. 6-7; h' = 0 where C' = 0).
    c_mean7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_mean7 / (c_mean7 + _POW25_7)))
    a1p, a2p = a1 * (1.0 + g), a2 * (1.0 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where(c1p == 0, 0.0, np.degrees(np.arctan2(b1, a1p)) % 360.0)
    h2p = np.where(c2p == 0, 0.0, np.degrees(np.arctan2(b2, a2p)) % 360.0)
    # 2. Differences in lightness, chroma and hue (eq. 8-11).
    chroma_product = c1p * c2p
    dhp = h2p - h1p
    dhp = np.where(dhp > 180.0, dhp - 360.0, np.where(dhp < -180.0, dhp + 360.0, dhp))
    dhp = np.where(chroma_product == 0, 0.0, dhp)
    d_lightness, d_chroma = l2 - l1, c2p - c1p
    d_hue = 2.0 * np.sqrt(chroma_product) * np.sin(np.radians(dhp / 2.0))
    # 3. Means (eq. 12-14) and the weighting functions (eq. 15-22).
    lp_mean, cp_mean = (l1 + l2) / 2.0, (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    far = np.abs(h1p - h2p) > 180.0
    hp_mean = np.where(far, np.where(h_sum < 360.0, h_sum + 360.0, h_sum - 360.0), h_sum) / 2.0
    hp_mean = np.where(chroma_product == 0, h_sum, hp_mean)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(hp_mean - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * hp_mean))
        + 0.32 * np.cos(np.radians(3.0 * hp_mean + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * hp_mean - 63.0))
    )
    s_l = 1.0 + 0.015 * (lp_mean - 50.0) ** 2 / np.sqrt(20.0 + (lp_mean - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    cp_mean7 = cp_mean**7
    rotation = np.sin(np.radians(60.0 * np.exp(-(((hp_mean - 275.0) / 25.0) ** 2))))
    r_t = -2.0 * np.sqrt(cp_mean7 / (cp_mean7 + _POW25_7)) * rotation
    term_l, term_c, term_h = d_lightness / s_l, d_chroma / s_c, d_hue / s_h
    return np.sqrt(term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h)


def delta_e(color1: Color, color2: Color) -> float:
    """CIEDE2000 difference of two sRGB colours; about 1 is just noticeable, 0 for equal colours."""
    return float(ciede2000(color_to_lab(color1), color_to_lab(color2)))


def dominant_colors(
    image: Image.Image, k: int = 6, mask: Image.Image | np.ndarray | None = None, *, seed: int = 0
) -> tuple[DominantColor, ...]:
    """Up to ``k`` dominant colours of ``image`` as ``(hex, share)``, largest share first.

    ``mask`` (same size as the image; white / True = counted) limits the pixels looked at. Steps:
    (1) downsample image and mask to at most :data:`SAMPLE_SIDE` px by nearest neighbour (real pixel
    colours, no blends); (2) count the distinct colours; (3) k-means++ in Lab from
    ``np.random.default_rng(seed)``, then weighted Lloyd iterations; (4) report each cluster's exact
    mean sRGB and pixel share. Deterministic for the same pixels, ``k`` and ``seed``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 32:
        raise ValueError(f"k must be a whole number from 1 to 32 (colours to find), got {k!r}")
    pixels = _sample_pixels(image, mask)
    colors, counts = np.unique(pixels, axis=0, return_counts=True)
    labs = srgb_to_lab(colors)
    weights = counts.astype(np.float64)
    centers = _kmeans_plus_plus(labs, weights, min(k, len(colors)), np.random.default_rng(seed))
    labels = _lloyd(labs, weights, centers)
    found: dict[str, float] = {}
    for cluster in np.unique(labels):
        member = labels == cluster
        mean_rgb = (colors[member] * weights[member, None]).sum(0) / weights[member].sum()
        key = to_hex([int(v) for v in np.clip(np.rint(mean_rgb), 0, 255)])
        found[key] = found.get(key, 0.0) + float(weights[member].sum())
    total = float(weights.sum())
    ordered = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    return tuple(DominantColor(hex_code, count / total) for hex_code, count in ordered)


def _sample_pixels(image: Image.Image, mask: Image.Image | np.ndarray | None) -> np.ndarray:
    """The counted pixels of a nearest-neighbour downsample, shape ``(N, 3)`` uint8."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = min(1.0, SAMPLE_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    pixels = np.asarray(rgb.resize(size, Image.Resampling.NEAREST)).reshape(-1, 3)
    if mask is None:
        return pixels
    keep = mask_array(mask, (width, height))
    small = Image.fromarray(keep.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    selected = pixels[np.asarray(small).reshape(-1) >= 128]
    if len(selected) == 0:
        raise ValueError("the mask selects no pixels (all black); pass a mask with white where colours count")
    return selected


def mask_array(mask: Image.Image | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mask (PIL image, white = selected, or a bool/0-255 array) -> bool array ``(height, width)``.

    Raises ValueError when its size differs from ``size`` (width, height).
    """
    if isinstance(mask, Image.Image):
        array = np.asarray(mask.convert("L")) >= 128
    else:
        array = np.asarray(mask)
        array = array if array.dtype == np.bool_ else array >= 128
    if array.ndim != 2 or (array.shape[1], array.shape[0]) != size:
        got = f"{array.shape[1]}x{array.shape[0]}" if array.ndim == 2 else f"shape {array.shape}"
        raise ValueError(
            f"the mask is {got} but the image is {size[0]}x{size[1]}; pass a mask of the same size"
        )
    return array


def _kmeans_plus_plus(
    points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii 2007) with each point weighted by its pixel count."""
    centers = [points[rng.choice(len(points), p=weights / weights.sum())]]
    nearest = ((points - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        chance = weights * nearest
        centers.append(points[rng.choice(len(points), p=chance / chance.sum())])
        nearest = np.minimum(nearest, ((points - centers[-1]) ** 2).sum(1))
    return np.array(centers)


def _lloyd(points: np.ndarray, weights: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Weighted Lloyd iterations until the assignment stops changing; returns each point's cluster."""
    labels = np.full(len(points), -1)
    for _ in range(KMEANS_MAX_ITER):
        distances = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(2)
        new_labels = distances.argmin(1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for cluster in range(len(centers)):
            member = labels == cluster
            if member.any():
                centers[cluster] = (points[member] * weights[member, None]).sum(0) / weights[member].sum()
    return labels
