"""Canny edge detection in numpy (no OpenCV): the "canny" preprocessor of the ControlNet mode.

The classic four steps (J. Canny, 1986), with OpenCV's conventions where they matter so A1111's
"Threshold A: 100, Threshold B: 200" mean the same thing here:

1. grey level (ITU-R 601 luma, 0-255) smoothed by a Gaussian (``sigma``; 0 skips it, as OpenCV's
   ``cv2.Canny`` itself does not blur);
2. 3x3 Sobel gradients, magnitude ``|gx| + |gy|`` (OpenCV's default L1 norm);
3. non-maximum suppression along the gradient direction quantised to 0/45/90/135 degrees (a pixel
   must beat its "previous" neighbour and at least equal its "next" one, so a two-pixel plateau at a
   sharp step keeps exactly one pixel);
4. double threshold and hysteresis: pixels above ``high`` start edges, pixels above ``low`` join
   them when 8-connected to one.

Borders use reflect-101 padding (OpenCV's default). Pure and deterministic: same image, same edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_LOW = 100
DEFAULT_HIGH = 200
DEFAULT_SIGMA = 1.0
_TAN_22_5 = 0.41421356237309503  # tan(22.5 deg)
_TAN_67_5 = 2.414213562373095  # tan(67.5 deg)


def canny_edges(
    image: Any,
    low_threshold: float = DEFAULT_LOW,
    high_threshold: float = DEFAULT_HIGH,
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """Edges of a PIL image or an HxW / HxWx3 array as an HxW uint8 array of 0 and 255."""
    if not 0 <= low_threshold <= high_threshold:
        raise ValueError(
            f"need 0 <= low_threshold <= high_threshold, got {low_threshold} and {high_threshold}"
        )
    gray = _gray(image)
    if sigma > 0:
        gray = gaussian_blur(gray, sigma)
    gx, gy = sobel(gray)
    magnitude = np.abs(gx) + np.abs(gy)
    thin = non_maximum_suppression(magnitude, gx, gy)
    edges = hysteresis(thin, low_threshold, high_threshold)
    return edges.astype(np.uint8) * 255


def canny_image(
    image: Any,
    low_threshold: float = DEFAULT_LOW,
    high_threshold: float = DEFAULT_HIGH,
    sigma: float = DEFAULT_SIGMA,
) -> Any:
    """The edge map as an RGB PIL image (white edges on black), the form ControlNets are trained on."""
    from PIL import Image

    edges = canny_edges(image, low_threshold, high_threshold, sigma)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), mode="RGB")


def _gray(image: Any) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float64)
    if array.ndim == 3:
        array = array[..., 0] * 0.299 + array[..., 1] * 0.587 + array[..., 2] * 0.114
    if array.ndim != 2:
        raise ValueError(f"expected an image or an HxW(x3) array, got shape {array.shape}")
    return array


def gaussian_blur(gray: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (kernel radius ``ceil(3 sigma)``, weights summing to 1)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    return _convolve_rows(_convolve_rows(gray, kernel).T, kernel).T


def sobel(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 Sobel derivatives: ``gx`` grows to the right, ``gy`` grows downwards."""
    smooth = np.array([1.0, 2.0, 1.0])
    derive = np.array([-1.0, 0.0, 1.0])
    gx = _convolve_rows(_convolve_rows(gray, derive).T, smooth).T
    gy = _convolve_rows(_convolve_rows(gray, smooth).T, derive).T
    return gx, gy


def _convolve_rows(array: np.ndarray, kernel: Sequence[float] | np.ndarray) -> np.ndarray:
    """Correlate every row with ``kernel`` (odd length), reflect-101 borders."""
    radius = len(kernel) // 2
    padded = np.pad(array, ((0, 0), (radius, radius)), mode="reflect") if radius else array
    width = array.shape[1]
    out = np.zeros_like(array, dtype=np.float64)
    for offset, weight in enumerate(kernel):
        if weight:
            out += weight * padded[:, offset : offset + width]
    return out


def non_maximum_suppression(magnitude: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Keep only pixels that are local maxima across the edge; others become 0."""
    padded = np.pad(magnitude, 1, mode="constant")
    height, width = magnitude.shape

    def shifted(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    ax, ay = np.abs(gx), np.abs(gy)
    horizontal = ay <= ax * _TAN_22_5  # gradient points left/right: compare with left and right
    vertical = ay > ax * _TAN_67_5  # gradient points up/down
    diagonal = ~(horizontal | vertical)
    same_sign = (gx * gy) > 0  # gradient along down-right (image y grows downwards)
    keep = np.zeros(magnitude.shape, dtype=bool)
    m = magnitude
    keep |= horizontal & (m > shifted(0, -1)) & (m >= shifted(0, 1))
    keep |= vertical & (m > shifted(-1, 0)) & (m >= shifted(1, 0))
    keep |= diagonal & same_sign & (m > shifted(-1, -1)) & (m >= shifted(1, 1))
    keep |= diagonal & ~same_sign & (m > shifted(-1, 1)) & (m >= shifted(1, -1))
    return np.where(keep, magnitude, 0.0)


def hysteresis(magnitude: np.ndarray, low: float, high: float) -> np.ndarray:
    """Pixels above ``high``, plus pixels above ``low`` 8-connected to them (iterative flood fill)."""
    height, width = magnitude.shape
    stride = width + 2
    candidate = np.zeros((height + 2, width + 2), dtype=bool)
    candidate[1:-1, 1:-1] = magnitude > low
    strong = np.zeros_like(candidate)
    strong[1:-1, 1:-1] = magnitude > high
    is_candidate = bytearray(candidate.ravel().tobytes())
    is_edge = bytearray(strong.ravel().tobytes())
    stack = np.flatnonzero(strong).tolist()
    offsets = (-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1)
    while stack:
        index = stack.pop()
        for offset in offsets:
            neighbour = index + offset
            if is_candidate[neighbour] and not is_edge[neighbour]:
                is_edge[neighbour] = 1
                stack.append(neighbour)
    edges = np.frombuffer(bytes(is_edge), dtype=bool).reshape(height + 2, width + 2)
    return edges[1:-1, 1:-1].copy()
