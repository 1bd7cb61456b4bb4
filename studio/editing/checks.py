"""Brand checks on a variant, each a pass / warn / fail with the numbers behind it.

- Palette adherence: the share-weighted mean CIEDE2000 of the image's dominant colours to their
  nearest kit colour (and the worst colour, named).
- Overlay contrast: the lowest WCAG ratio of any overlay text against the pixels behind it.
- Banned terms: fails when the facade found any of the kit's banned terms in the prompt or copy.
- Product fidelity: SSIM (Wang, Bovik, Sheikh and Simoncelli 2004: 11x11 Gaussian window,
  sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, on BT.601 luma, mean over the valid windows) of master
  and variant inside the product mask's bounding box, plus the largest pixel change inside the mask.

Thresholds come from the kit (:class:`CheckThresholds`, validated from its JSON); defaults follow
WCAG AA (4.5) / AA large text (3), and ΔE00 10 / 20 for "on palette" / "near the palette".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.editing.color import (
    ciede2000,
    color_to_lab,
    dominant_colors,
    mask_array,
    parse_hex,
    srgb_to_lab,
    to_hex,
)

Status = Literal["pass", "warn", "fail"]
_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}
#: SSIM constants (Wang et al. 2004).
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2, SSIM_RANGE = 11, 1.5, 0.01, 0.03, 255.0
#: ITU-R BT.601 luma weights (MATLAB ``rgb2gray``, used by the reference SSIM code).
_LUMA = np.array([0.299, 0.587, 0.114])


class CheckThresholds(BaseModel):
    """Where pass ends and warn ends, per check; the kit stores these (``model_validate`` its JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    palette_pass: float = Field(10.0, ge=0, description="mean ΔE00 at or below this passes")
    palette_warn: float = Field(20.0, ge=0, description="mean ΔE00 at or below this warns, above fails")
    contrast_pass: float = Field(4.5, ge=1, le=21, description="WCAG ratio at or above this passes (AA)")
    contrast_warn: float = Field(3.0, ge=1, le=21, description="at or above this warns (AA large text)")
    fidelity_pass: float = Field(0.90, ge=-1, le=1, description="SSIM at or above this passes")
    fidelity_warn: float = Field(0.75, ge=-1, le=1, description="SSIM at or above this warns")

    @model_validator(mode="after")
    def _ordered(self) -> CheckThresholds:
        for check, strict, loose in (("palette", self.palette_warn, self.palette_pass),
                                     ("contrast", self.contrast_pass, self.contrast_warn),
                                     ("fidelity", self.fidelity_pass, self.fidelity_warn)):  # fmt: skip
            if strict < loose:
                raise ValueError(f"{check}: the pass threshold must be stricter than the warn threshold")
        return self


class CheckResult(BaseModel):
    """One check's outcome: ``value`` is the headline number (None when it could not be measured)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: Status
    value: float | None
    detail: str
    numbers: dict[str, Any] = Field(default_factory=dict)


def _grade(value: float, pass_at: float, warn_at: float, higher_is_better: bool) -> Status:
    if not higher_is_better:
        value, pass_at, warn_at = -value, -pass_at, -warn_at
    return "pass" if value >= pass_at else "warn" if value >= warn_at else "fail"


def palette_adherence(
    image: Image.Image,
    palette_hexes: Sequence[str],
    mask: Image.Image | np.ndarray | None = None,
    thresholds: CheckThresholds | None = None,
    k: int = 6,
) -> CheckResult:
    """How far the image's ``k`` dominant colours (inside ``mask`` if given) are from the kit palette."""
    limits = thresholds or CheckThresholds()
    if not palette_hexes:
        return CheckResult(name="palette", status="warn", value=None,
                           detail="the kit has no palette colours, so palette adherence was not checked; add them")  # fmt: skip
    palette = [to_hex(parse_hex(value)) for value in palette_hexes]
    palette_labs = np.array([color_to_lab(c) for c in palette])
    colors = dominant_colors(image, k, mask)
    labs = srgb_to_lab(np.array([parse_hex(c.hex) for c in colors]))
    distances = ciede2000(labs[:, None, :], palette_labs[None, :, :])  # (colours, palette)
    nearest, best = distances.argmin(1), distances.min(1)
    shares = np.array([c.share for c in colors])
    mean = float((shares * best).sum())
    worst = int(best.argmax())
    breakdown = [{"color": c.hex, "share": round(c.share, 4), "nearest": palette[int(n)], "delta_e": round(float(d), 2)}
                 for c, n, d in zip(colors, nearest, best, strict=True)]  # fmt: skip
    status = _grade(mean, limits.palette_pass, limits.palette_warn, higher_is_better=False)
    detail = (f"mean ΔE00 {mean:.1f} of {len(colors)} dominant colours to the nearest kit colour "
              f"(pass ≤ {limits.palette_pass:g}, warn ≤ {limits.palette_warn:g}); worst {colors[worst].hex} "
              f"({colors[worst].share:.0%} of the image) is ΔE00 {best[worst]:.1f} from {palette[int(nearest[worst])]}")  # fmt: skip
    numbers = {"mean_delta_e": mean, "worst_delta_e": float(best[worst]), "worst_color": colors[worst].hex,
               "worst_share": colors[worst].share, "colors": breakdown}  # fmt: skip
    return CheckResult(name="palette", status=status, value=mean, detail=detail, numbers=numbers)


def overlay_contrast(contrast: Mapping[str, float], thresholds: CheckThresholds | None = None) -> CheckResult:
    """The lowest text contrast of an overlay (``OverlayResult.contrast``); no text passes."""
    limits = thresholds or CheckThresholds()
    if not contrast:
        return CheckResult(name="contrast", status="pass", value=None, detail="no overlay text to check")
    name = min(contrast, key=lambda key: (contrast[key], key))
    value = float(contrast[name])
    status = _grade(value, limits.contrast_pass, limits.contrast_warn, higher_is_better=True)
    detail = (f"lowest text contrast {value:.2f}:1 ({name}); pass at {limits.contrast_pass:g}:1 (WCAG AA), "
              f"warn at {limits.contrast_warn:g}:1 (AA large text)")  # fmt: skip
    numbers: dict[str, Any] = {
        "worst": value,
        "worst_text": name,
        **{k: float(v) for k, v in contrast.items()},
    }
    return CheckResult(name="contrast", status=status, value=value, detail=detail, numbers=numbers)


def banned_terms(found: Sequence[str]) -> CheckResult:
    """Fails when any banned term was found (the facade searches prompt and copy with the kit's list)."""
    terms = list(dict.fromkeys(found))
    if not terms:
        return CheckResult(name="banned_terms", status="pass", value=0.0, detail="no banned terms",
                           numbers={"count": 0, "terms": []})  # fmt: skip
    shown = ", ".join(repr(term) for term in terms)
    return CheckResult(name="banned_terms", status="fail", value=float(len(terms)),
                       detail=f"banned terms found: {shown}; remove them from the prompt and copy",
                       numbers={"count": len(terms), "terms": terms})  # fmt: skip


def product_fidelity(
    master: Image.Image,
    variant: Image.Image,
    product_mask: Image.Image | np.ndarray,
    thresholds: CheckThresholds | None = None,
) -> CheckResult:
    """SSIM of master and variant inside the product mask's bounding box, and the largest change of
    any channel of any pixel inside the mask (0-255). Identical images give SSIM 1.0 and 0."""
    limits = thresholds or CheckThresholds()
    if master.size != variant.size:
        raise ValueError(f"the variant is {variant.size[0]}x{variant.size[1]} but the master is "
                         f"{master.size[0]}x{master.size[1]}; compare images of the same size")  # fmt: skip
    inside = mask_array(product_mask, master.size)
    if not inside.any():
        return CheckResult(name="product_fidelity", status="warn", value=None,
                           detail="the product mask is empty (all black); draw the product white to check it")  # fmt: skip
    before, after = (np.asarray(image.convert("RGB")).astype(np.float64) for image in (master, variant))
    left, top, right, bottom = _window_box(inside)
    score = ssim(before[top:bottom, left:right] @ _LUMA, after[top:bottom, left:right] @ _LUMA)
    max_diff = int(np.abs(before[inside] - after[inside]).max())
    status = _grade(score, limits.fidelity_pass, limits.fidelity_warn, higher_is_better=True)
    detail = (f"SSIM {score:.4f} inside the product box (pass ≥ {limits.fidelity_pass:g}, warn ≥ "
              f"{limits.fidelity_warn:g}); largest pixel change inside the mask {max_diff}/255")  # fmt: skip
    numbers = {"ssim": score, "max_abs_diff": max_diff, "box": [left, top, right, bottom],
               "mask_pixels": int(inside.sum())}  # fmt: skip
    return CheckResult(name="product_fidelity", status=status, value=score, detail=detail, numbers=numbers)


def _window_box(inside: np.ndarray) -> tuple[int, int, int, int]:
    """The mask's bounding box (right/bottom exclusive), grown to at least one SSIM window."""
    rows, cols = np.nonzero(inside)
    height, width = inside.shape
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"images under {SSIM_WINDOW}x{SSIM_WINDOW} px are too small for SSIM")
    box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]
    for low, high, limit in ((0, 2, width), (1, 3, height)):
        missing = SSIM_WINDOW - (box[high] - box[low])
        if missing > 0:
            box[low] = max(0, min(box[low] - missing // 2, limit - SSIM_WINDOW))
            box[high] = box[low] + SSIM_WINDOW
    return (box[0], box[1], box[2], box[3])


def _gaussian_window() -> np.ndarray:
    offsets = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
    taps = np.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return taps / taps.sum()


def _filter(values: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering with a symmetric 1-D window along both axes."""
    rows = np.lib.stride_tricks.sliding_window_view(values, len(taps), axis=1) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, len(taps), axis=0) @ taps


def ssim(image1: np.ndarray, image2: np.ndarray) -> float:
    """Mean SSIM of two same-shape 2-D arrays of 0-255 values (at least 11x11); 1.0 when identical."""
    x, y = np.asarray(image1, dtype=np.float64), np.asarray(image2, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs two equal 2-D arrays of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                         f"{x.shape} and {y.shape}")  # fmt: skip
    taps = _gaussian_window()
    mu_x, mu_y = _filter(x, taps), _filter(y, taps)
    var_x = _filter(x * x, taps) - mu_x * mu_x
    var_y = _filter(y * y, taps) - mu_y * mu_y
    covariance = _filter(x * y, taps) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * SSIM_RANGE) ** 2, (SSIM_K2 * SSIM_RANGE) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * covariance + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float((numerator / denominator).mean())


def summarize(results: Sequence[CheckResult]) -> Status:
    """The worst status of all results ("pass" for none)."""
    return max((result.status for result in results), key=_RANK.__getitem__, default="pass")
