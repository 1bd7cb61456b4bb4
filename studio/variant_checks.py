"""A cell as it ships (image + brand overlay) and its brand checks, with the kit's thresholds.

Checks: palette adherence of the composited cell, overlay text contrast, banned terms in the prompt
and the copy, product fidelity inside the product mask against the master (for cells whose product
is not the factor under test), and the invariance the variant step verified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

import brand_kits
from studio import errors
from studio.editing import checks as brand_checks
from studio.editing import overlay as overlay_layer
from studio.editing.safezones import safe_box

if TYPE_CHECKING:
    from PIL.Image import Image

    from studio.api import Studio
    from studio.campaigns import BrandContext
    from studio.variants import Cell, Master

#: factors whose cell repaints the product itself: fidelity is what they test, so it is not graded
PRODUCT_IS_THE_FACTOR = frozenset({"product_colour", "prompt_word", "lora_weight", "variation"})


def overlay_spec(overlay: dict[str, Any], ctx: BrandContext) -> overlay_layer.OverlaySpec:
    return overlay_layer.OverlaySpec(
        headline=overlay.get("headline") or None, cta=overlay.get("cta") or None, legal=overlay.get("legal") or None,
        logo_png=ctx.logo_png if overlay.get("use_logo", True) else None, palette=ctx.palette,
        position=overlay.get("position", "bottom"), fix_contrast=bool(overlay.get("fix_contrast", True)),
    )  # fmt: skip


def composite(image: Image, overlay: dict[str, Any], ctx: BrandContext, format_key: str | None) -> overlay_layer.OverlayResult:
    """The overlay drawn deterministically over ``image`` inside the channel's safe zone."""
    try:
        return overlay_layer.render_overlay(image, overlay_spec(overlay, ctx), safe_box(format_key, *image.size))
    except (overlay_layer.OverlayError, ValueError) as exc:
        raise errors.InvalidInput(f"the brand overlay cannot be drawn: {exc}", field="overlay") from None


def thresholds(studio: Studio, kit_id: int) -> brand_checks.CheckThresholds:
    return studio.get_check_thresholds(kit_id)


def cell_checks(studio: Studio, master: Master, cell: Cell, ctx: BrandContext,
                factor: str) -> tuple[list[brand_checks.CheckResult], str]:  # fmt: skip
    from studio.campaigns import open_image

    limits = thresholds(studio, ctx.kit_id)
    image = open_image(studio, cell.image_sha256)
    shipped = composite(image, cell.overlay, ctx, cell.format_key)
    results = [brand_checks.palette_adherence(shipped.image, ctx.palette, thresholds=limits),
               brand_checks.overlay_contrast(shipped.contrast, limits),
               brand_checks.banned_terms(_banned(studio, cell, ctx))]  # fmt: skip
    fidelity = _fidelity(master, cell, image, factor, limits)
    if fidelity is not None:
        results.append(fidelity)
    results.append(_invariance(cell.invariance))
    return results, brand_checks.summarize(results)


def _banned(studio: Studio, cell: Cell, ctx: BrandContext) -> list[str]:
    texts = [str(cell.overlay.get(k) or "") for k in ("headline", "cta", "legal")]
    if cell.generation_id is not None:
        gen = studio.get_generation(cell.generation_id)
        texts.append(gen.prompt)
    found: list[str] = []
    for text in texts:
        found += [t for t in brand_kits.find_banned_terms(text, ctx.guide) if t not in found]
    return found


def _fidelity(master: Master, cell: Cell, image: Image, factor: str,
              limits: brand_checks.CheckThresholds) -> brand_checks.CheckResult | None:  # fmt: skip
    if master.mask is None or factor in PRODUCT_IS_THE_FACTOR:
        return None
    reference, mask = master.image, master.mask
    if cell.fit is not None:  # a channel size: compare with the master fitted the same way
        from PIL import Image as PILImage

        from studio.editing import channels

        left, top, _, _ = cell.extended
        canvas = PILImage.new("RGB", (master.image.width + sum(cell.extended[::2]),
                                      master.image.height + sum(cell.extended[1::2])))  # fmt: skip
        canvas.paste(master.image, (left, top))
        full_mask = PILImage.new("L", canvas.size, 0)
        full_mask.paste(master.mask, (left, top))
        reference, mask = channels.apply_fit(canvas, cell.fit), channels.apply_fit(full_mask.convert("RGB"), cell.fit).convert("L")
        mask = mask.point(lambda v: 255 if v >= 250 else 0)  # inside only, away from resampled edges
    if reference.size != image.size or not np.asarray(mask).any():
        return None
    return brand_checks.product_fidelity(reference, image, mask, limits)


def _invariance(invariance: dict[str, Any]) -> brand_checks.CheckResult:
    """The variant step's own verification as a check: a broken lock fails the cell."""
    broken = [k for k in ("outside_edit_identical", "only_factor_differs", "product_in_frame") if invariance.get(k) is False]
    if broken:
        return brand_checks.CheckResult(name="invariance", status="fail", value=0.0,
                                        detail=f"single-factor lock broken: {', '.join(broken)} is false",
                                        numbers=dict(invariance))  # fmt: skip
    verified = [k for k in ("outside_edit_identical", "only_factor_differs", "product_in_frame") if invariance.get(k)]
    detail = "verified: " + (", ".join(verified) if verified else "nothing to verify for this factor")
    return brand_checks.CheckResult(name="invariance", status="pass", value=1.0, detail=detail, numbers=dict(invariance))
