"""Extract an image's dominant colours as named swatches with their share of the pixels.

Steps: (1) decode through :func:`brand_kits.ingest.validate_image` (allowed formats only, pixel and
byte limits, EXIF upright, 8-bit sRGB, transparency on white); (2) sample down to at most 128 px by
nearest neighbour; (3) cluster with Pillow's median cut (deterministic) and take each cluster's exact
mean colour; (4) merge clusters that look the same (CIEDE2000 < 8) and fold specks under 1 % into
their nearest cluster; (5) name each swatch and sort by share, largest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image

from brand_kits.colors import Rgb, delta_e, nearest_color_name, rgb_to_hex
from brand_kits.errors import KitError
from brand_kits.ingest import IngestLimits, validate_image

logger = logging.getLogger(__name__)

MAX_SWATCHES = 16
SAMPLE_SIDE = 128
MERGE_DELTA_E = 8.0
MIN_SHARE = 0.01
# Any size is fine for a palette; every other limit (bytes, pixels) stays the upload default.
_PALETTE_LIMITS = IngestLimits(min_side=1)


@dataclass(frozen=True)
class Swatch:
    hex: str
    name: str
    share: float


@dataclass
class _Cluster:
    mean: np.ndarray  # float64 RGB
    count: int

    @property
    def rgb(self) -> Rgb:
        red, green, blue = (int(round(float(v))) for v in np.clip(self.mean, 0, 255))
        return (red, green, blue)

    def absorb(self, other: _Cluster) -> None:
        total = self.count + other.count
        self.mean = (self.mean * self.count + other.mean * other.count) / total
        self.count = total


def extract_palette(image_bytes: bytes, k: int = 6) -> tuple[Swatch, ...]:
    """Up to ``k`` dominant colours of an uploaded image, shares summing to 1, largest share first.

    Raises a :class:`KitError` subclass when the bytes are not an acceptable image.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SWATCHES:
        raise KitError(f"k must be a whole number from 1 to {MAX_SWATCHES} (colours to extract), got {k!r}")
    validated = validate_image(image_bytes, "palette source", _PALETTE_LIMITS)
    with Image.open(BytesIO(validated.png_bytes), formats=["PNG"]) as decoded:
        sample = decoded.convert("RGB")
    # Nearest-neighbour sampling keeps real pixel colours: no blended edge colours become swatches.
    sample.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.NEAREST)
    clusters = _median_cut(sample, k)
    clusters = _merge_similar(clusters)
    clusters = _fold_specks(clusters)
    total = sum(cluster.count for cluster in clusters)
    swatches = [Swatch(rgb_to_hex(c.rgb), nearest_color_name(c.rgb), c.count / total) for c in clusters]
    swatches.sort(key=lambda swatch: (-swatch.share, swatch.hex))
    logger.debug("palette of %dx%d image: %s", validated.width, validated.height, swatches)
    return tuple(swatches)


def _median_cut(sample: Image.Image, k: int) -> list[_Cluster]:
    """Median-cut clusters with the exact mean of their member pixels, largest first."""
    indices = np.asarray(sample.quantize(colors=k, method=Image.Quantize.MEDIANCUT)).reshape(-1)
    pixels = np.asarray(sample, dtype=np.float64).reshape(-1, 3)
    counts = np.bincount(indices, minlength=256)
    sums = np.stack([np.bincount(indices, weights=pixels[:, c], minlength=256) for c in range(3)], axis=1)
    clusters = [_Cluster(sums[index] / counts[index], int(counts[index])) for index in np.flatnonzero(counts)]
    clusters.sort(key=lambda cluster: -cluster.count)
    return clusters


def _merge_similar(clusters: list[_Cluster]) -> list[_Cluster]:
    """Greedily merge each cluster into the first (larger) kept one that looks the same."""
    kept: list[_Cluster] = []
    for cluster in clusters:
        twin = next((c for c in kept if delta_e(c.rgb, cluster.rgb) < MERGE_DELTA_E), None)
        if twin is None:
            kept.append(cluster)
        else:
            twin.absorb(cluster)
    return kept


def _fold_specks(clusters: list[_Cluster]) -> list[_Cluster]:
    """Clusters under MIN_SHARE (edge blends, noise) join the perceptually nearest larger cluster."""
    total = sum(cluster.count for cluster in clusters)
    large = [c for c in clusters if c.count >= MIN_SHARE * total]
    if not large:
        return clusters
    for speck in (c for c in clusters if c.count < MIN_SHARE * total):
        # Keep the large cluster's colour: a speck should not drag it towards a blend.
        nearest = min(large, key=lambda c: delta_e(c.rgb, speck.rgb))
        nearest.count += speck.count
    return large
