"""Channel fitting: every ad format comes out exact, the product stays in frame, outpaint when it can't."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from studio.editing.channels import (
    EXTEND_STEP,
    ChannelFitError,
    apply_fit,
    extended_box,
    plan_fit,
    product_box,
)
from studio.formats import AD_FORMATS, FORMAT_KEYS

SOURCE = (1024, 1024)


def photo(size: tuple[int, int] = SOURCE) -> Image.Image:
    """A smooth, non-uniform RGB picture (so resampling really does something)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack(
        [128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 23), 128 + 80 * np.sin((x + y) / 51)], -1
    )
    return Image.fromarray(rgb.astype(np.uint8))


def mask_with(box: tuple[int, int, int, int], size: tuple[int, int] = SOURCE) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def white_area(mask: Image.Image) -> float:
    return float(np.asarray(mask, dtype=np.float64).sum() / 255)


def outpaint_stand_in(image: Image.Image, extend: tuple[int, int, int, int]) -> Image.Image:
    """What the engine's outpaint hands back, geometry-wise: the same pixels on a bigger canvas."""
    return ImageOps.expand(image, border=extend, fill=0)


def assert_product_kept(mask: Image.Image, box: tuple[int, int, int, int], target: tuple[int, int]) -> None:
    """Fit the mask with a fresh plan: every white pixel lands in the output, inside the margin."""
    plan = plan_fit(mask.width, mask.height, box, *target)
    assert not plan.needs_outpaint
    out = apply_fit(mask, plan)
    assert out.size == target
    # Geometry: the window holds the product box.
    assert plan.crop is not None
    left, top, right, bottom = plan.crop
    assert left <= box[0] and top <= box[1] and box[2] <= right and box[3] <= bottom
    # Pixels: the white area comes through whole (scaled), so nothing of the product was cut off.
    expected = (box[2] - box[0]) * (box[3] - box[1]) * plan.scale**2
    assert white_area(out) == pytest.approx(expected, rel=0.03, abs=4)
    # And it keeps clear of the border by about the margin (product not touching the source edge).
    l2, t2, r2, b2 = Image.eval(out, lambda v: 255 if v >= 64 else 0).getbbox() or (0, 0, 0, 0)
    assert min(l2, t2, target[0] - r2, target[1] - b2) >= min(target) * 0.04 * 0.5 - 2


@pytest.mark.parametrize("key", FORMAT_KEYS)
def test_every_ad_format_comes_out_exact_with_the_product_in_frame(key: str) -> None:
    fmt = AD_FORMATS[key]
    box = (560, 380, 760, 640)  # 200 x 260, right of centre
    image, mask = photo(), mask_with(box)
    plan = plan_fit(*SOURCE, box, fmt.width, fmt.height)
    if plan.needs_outpaint:  # the extreme banners: extend the canvas, then plan again
        assert all(side % EXTEND_STEP == 0 for side in plan.extend) and any(plan.extend)
        image, mask = outpaint_stand_in(image, plan.extend), outpaint_stand_in(mask, plan.extend)
        box = extended_box(box, plan)
        plan = plan_fit(image.width, image.height, box, fmt.width, fmt.height)
        assert not plan.needs_outpaint
    out = apply_fit(image, plan)
    assert out.size == (fmt.width, fmt.height) and out.mode == "RGB"
    assert_product_kept(mask, box, (fmt.width, fmt.height))


def test_the_extreme_banners_need_outpainting_and_the_common_formats_do_not() -> None:
    box = (560, 380, 760, 640)
    outpaint = {key for key in FORMAT_KEYS if plan_fit(*SOURCE, box, *_size(key)).needs_outpaint}
    assert {
        "google_banner_728x90",
        "google_banner_970x90",
        "google_banner_320x50",
        "google_banner_468x60",
    } <= outpaint
    assert not outpaint & {
        "meta_feed_square",
        "meta_feed_portrait",
        "meta_stories",
        "meta_link",
        "x_card_landscape",
    }


def test_a_centred_product_gives_the_same_pixels_as_imageops_fit() -> None:
    image = photo()
    plan = plan_fit(*SOURCE, (462, 462, 562, 562), 1200, 628)
    crop_h = 1024 / (1200 / 628)
    assert not plan.moved and plan.crop == pytest.approx((0, (1024 - crop_h) / 2, 1024, (1024 + crop_h) / 2))
    fitted = apply_fit(image, plan)
    reference = ImageOps.fit(image, (1200, 628), method=Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(fitted), np.asarray(reference))


def test_no_product_means_a_centred_crop() -> None:
    plan = plan_fit(1344, 768, None, 1080, 1080)
    assert (
        plan.crop == pytest.approx((288, 0, 1056, 768))
        and not plan.moved
        and plan.scale == pytest.approx(1080 / 768)
    )


def test_a_product_near_the_edge_moves_the_window_onto_it() -> None:
    # 9:16 from a square: the centred window is x 224..800; a product at x 20..220 is outside it.
    box = (20, 400, 220, 600)
    plan = plan_fit(*SOURCE, box, 1080, 1920)
    assert plan.moved and plan.crop is not None
    assert plan.crop[0] == 0  # centred on the product would start left of the image: pushed back in
    assert_product_kept(mask_with(box), box, (1080, 1920))


def test_a_product_is_centred_when_the_window_must_move() -> None:
    box = (700, 100, 800, 900)  # the centred square window of a 4096 x 1024 source is x 1536..2560
    plan = plan_fit(4096, 1024, box, 1024, 1024)
    assert plan.moved and plan.crop is not None
    assert (plan.crop[0] + plan.crop[2]) / 2 == pytest.approx(750)


def test_a_product_touching_the_border_needs_no_margin_beyond_it() -> None:
    box = (0, 300, 300, 700)  # flush with the left edge
    plan = plan_fit(*SOURCE, box, 1080, 1350)
    assert not plan.needs_outpaint and plan.crop is not None and plan.crop[0] == 0


def test_a_wide_product_into_a_skyscraper_plans_an_outpaint_above_and_below() -> None:
    box = (112, 412, 912, 612)  # 800 x 200: wider than any 1:2 window of a square image
    plan = plan_fit(*SOURCE, box, 300, 600)
    assert plan.needs_outpaint and plan.crop is None
    left, top, right, bottom = plan.extend
    assert left == right == 0 and top > 0 and bottom > 0
    assert top % EXTEND_STEP == 0 and bottom % EXTEND_STEP == 0
    # The smallest canvas that works: 800 / 0.92 wide window -> twice that tall, centred on the product.
    need_h = 800 / 0.92 * 2
    assert 1024 + top + bottom >= need_h and 1024 + top + bottom < need_h + 2 * EXTEND_STEP
    with pytest.raises(ChannelFitError, match=r"outpaint it first \(extend left 0, top \d+"):
        apply_fit(photo(), plan)
    grown = outpaint_stand_in(mask_with(box), plan.extend)
    assert_product_kept(grown, extended_box(box, plan), (300, 600))


def test_a_product_near_the_top_gets_its_extension_on_that_side_only() -> None:
    box = (100, 0, 900, 150)
    plan = plan_fit(*SOURCE, box, 300, 600)
    assert plan.needs_outpaint and plan.extend[1] > 0 and plan.extend[3] == 0


def test_product_box_reads_the_white_pixels() -> None:
    mask = mask_with((10, 20, 110, 220))
    ImageDraw.Draw(mask).point((500, 500), fill=100)  # grey below the threshold: not product
    assert product_box(mask) == (10, 20, 110, 220)
    assert product_box(Image.new("L", (64, 64), 0)) is None
    with pytest.raises(ChannelFitError, match="greyscale 'L'"):
        product_box(Image.new("RGB", (64, 64)))


def test_bad_plans_and_mismatched_images_are_refused() -> None:
    with pytest.raises(ChannelFitError, match="outside the 1024x1024 image"):
        plan_fit(*SOURCE, (900, 0, 1100, 100), 300, 250)
    with pytest.raises(ChannelFitError, match="empty"):
        plan_fit(*SOURCE, (10, 10, 10, 20), 300, 250)
    with pytest.raises(ChannelFitError, match="margin 0.5"):
        plan_fit(*SOURCE, None, 300, 250, margin=0.5)
    with pytest.raises(ChannelFitError, match="at least 1 px"):
        plan_fit(*SOURCE, None, 0, 250)
    plan = plan_fit(*SOURCE, None, 300, 250)
    with pytest.raises(ChannelFitError, match="made for a 1024x1024 image but this one is 512x512"):
        apply_fit(photo((512, 512)), plan)


def _size(key: str) -> tuple[int, int]:
    return AD_FORMATS[key].width, AD_FORMATS[key].height
