"""Fit one master image to a channel's exact size with the product kept in frame.

:func:`plan_fit` picks the crop window (in source pixels, floats) of the target's aspect ratio:

1. the largest window of that aspect inside the source (what ``ImageOps.fit`` would crop);
2. the product box grown by ``margin`` x the window's side on every side (clipped to the source: a
   product touching the border needs no margin beyond it) must fit inside that window, or the plan
   says ``needs_outpaint`` with the canvas extension per side (multiples of 8) that makes it fit;
3. the window stays centred on the image when that already contains the product, otherwise it is
   centred on the product and pushed back inside the source.

:func:`apply_fit` then resamples the window (Lanczos, Pillow's ``resize(box=...)``, so the window
keeps its exact fractional aspect) to exactly the target size. Outpainting itself is the generation
engine's job: the facade extends the canvas by ``plan.extend``, plans again on the bigger image (the
product box moves by the left/top extension) and fits that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from PIL import Image

#: Outpaint extensions are whole multiples of this (diffusers needs sides divisible by 8).
EXTEND_STEP = 8
#: A mask pixel counts as product at this grey level or above.
MASK_THRESHOLD = 128
#: Margin is a share of the crop window's side; at 0.5 or more nothing could fit.
MAX_MARGIN = 0.4

Box = tuple[int, int, int, int]
FloatBox = tuple[float, float, float, float]


class ChannelFitError(ValueError):
    """A fit that cannot be planned or applied as asked."""


@dataclass(frozen=True)
class FitPlan:
    """How to turn a ``source_size`` image into a ``target_size`` one.

    ``crop``: the window in source pixels (left, top, right, bottom; floats), None when
    ``needs_outpaint``. ``extend``: (left, top, right, bottom) pixels to add by outpainting first,
    all zero otherwise. ``moved``: the window was moved off-centre to keep the product in.
    ``scale``: target width / window width (> 1 means upscaling).
    """

    source_size: tuple[int, int]
    target_size: tuple[int, int]
    product_box: Box | None
    margin: float
    crop: FloatBox | None
    needs_outpaint: bool
    extend: Box
    moved: bool
    scale: float


def product_box(mask: Image.Image) -> Box | None:
    """The bounding box (left, top, right, bottom; right/bottom exclusive) of the mask's white pixels.

    A pixel is product when its grey level is at least ``MASK_THRESHOLD``; None when there is none.
    """
    if mask.mode != "L":
        raise ChannelFitError(
            f"the product mask is a {mask.mode!r} image; it must be greyscale 'L' (white = product): "
            "convert it with mask.convert('L')"
        )
    box = mask.point(lambda v: 255 if v >= MASK_THRESHOLD else 0).getbbox()
    return None if box is None else (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


def plan_fit(
    src_w: int,
    src_h: int,
    product: Box | None,
    target_w: int,
    target_h: int,
    margin: float = 0.04,
) -> FitPlan:
    """Plan the crop (or the outpaint) that fits a ``src_w`` x ``src_h`` image to the target size."""
    _check_sizes(src_w, src_h, target_w, target_h, margin)
    if product is not None:
        _check_box(product, src_w, src_h)
    aspect = target_w / target_h
    base = FitPlan(
        (src_w, src_h), (target_w, target_h), product, margin, None, False, (0, 0, 0, 0), False, 0.0
    )
    # 1. The largest window of the target's aspect inside the source.
    crop_w, crop_h = (
        (src_h * aspect, float(src_h)) if src_w / src_h > aspect else (float(src_w), src_w / aspect)
    )
    left, top = (src_w - crop_w) / 2, (src_h - crop_h) / 2
    if product is not None:
        # 2. The region that must stay in frame: the product plus its margin, clipped to the source.
        need = _grown(product, margin * crop_w, margin * crop_h, src_w, src_h)
        if need[2] - need[0] > crop_w + 1e-9 or need[3] - need[1] > crop_h + 1e-9:
            extend = _outpaint_extension(product, src_w, src_h, aspect, margin)
            return replace(base, needs_outpaint=True, extend=extend)
        # 3. Centred when that keeps the product in, else centred on it and pushed back inside.
        inside = left <= need[0] and need[2] <= left + crop_w and top <= need[1] and need[3] <= top + crop_h
        if not inside:
            left = _clamp((need[0] + need[2]) / 2 - crop_w / 2, 0.0, src_w - crop_w)
            top = _clamp((need[1] + need[3]) / 2 - crop_h / 2, 0.0, src_h - crop_h)
            base = replace(base, moved=True)
    return replace(base, crop=(left, top, left + crop_w, top + crop_h), scale=target_w / crop_w)


def apply_fit(image: Image.Image, plan: FitPlan) -> Image.Image:
    """The plan's window resampled (Lanczos) to exactly ``plan.target_size``."""
    if image.size != plan.source_size:
        raise ChannelFitError(
            f"the fit plan was made for a {plan.source_size[0]}x{plan.source_size[1]} image but this one is "
            f"{image.width}x{image.height}: plan again for this image"
        )
    if plan.needs_outpaint or plan.crop is None:
        left, top, right, bottom = plan.extend
        raise ChannelFitError(
            f"the product does not fit a {plan.target_size[0]}x{plan.target_size[1]} crop of this image: "
            f"outpaint it first (extend left {left}, top {top}, right {right}, bottom {bottom} px), then plan "
            "the fit again on the extended image"
        )
    return image.resize(plan.target_size, Image.Resampling.LANCZOS, box=plan.crop)


def extended_box(box: Box, plan: FitPlan) -> Box:
    """Where ``box`` lies on the canvas after the plan's outpaint extension."""
    left, top = plan.extend[0], plan.extend[1]
    return (box[0] + left, box[1] + top, box[2] + left, box[3] + top)


def _outpaint_extension(product: Box, src_w: int, src_h: int, aspect: float, margin: float) -> Box:
    """Per-side canvas growth (multiples of 8) after which a window of ``aspect`` holds the product."""
    inner = 1 - 2 * margin
    need_w = max((product[2] - product[0]) / inner, aspect * (product[3] - product[1]) / inner)
    need_h = need_w / aspect
    left, right = _axis_extension(product[0], product[2], src_w, need_w)
    top, bottom = _axis_extension(product[1], product[3], src_h, need_h)
    return (left, top, right, bottom)


def _axis_extension(lo: int, hi: int, side: int, need: float) -> tuple[int, int]:
    """Growth before/after one axis so a window of ``need`` centred on [lo, hi] fits."""
    if need <= side:
        return (0, 0)
    start = (lo + hi) / 2 - need / 2
    before, after = max(0.0, -start), max(0.0, start + need - side)
    return (_up_to_step(before), _up_to_step(after))


def _up_to_step(value: float) -> int:
    return int(math.ceil(value / EXTEND_STEP - 1e-9)) * EXTEND_STEP


def _grown(box: Box, dx: float, dy: float, src_w: int, src_h: int) -> FloatBox:
    return (
        max(0.0, box[0] - dx),
        max(0.0, box[1] - dy),
        min(float(src_w), box[2] + dx),
        min(float(src_h), box[3] + dy),
    )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _check_sizes(src_w: int, src_h: int, target_w: int, target_h: int, margin: float) -> None:
    if min(src_w, src_h, target_w, target_h) < 1:
        raise ChannelFitError(
            f"sizes must be at least 1 px (source {src_w}x{src_h}, target {target_w}x{target_h})"
        )
    if not 0 <= margin <= MAX_MARGIN:
        raise ChannelFitError(f"margin {margin} is outside 0..{MAX_MARGIN} (a share of the crop's side)")


def _check_box(box: Box, src_w: int, src_h: int) -> None:
    left, top, right, bottom = box
    if not (0 <= left < right <= src_w and 0 <= top < bottom <= src_h):
        raise ChannelFitError(
            f"product box {box} is empty or outside the {src_w}x{src_h} image; take it from the mask with "
            "product_box(mask)"
        )
