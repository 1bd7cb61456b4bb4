"""The facade's side of review: state changes with reviewer, time and comment (append-only history),
override of failed checks only with a recorded reason, and a reviewer's region + instruction turned
into a new inpaint variant of the cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

import storage
from studio import errors
from studio.campaign_schemas import RegionInstructionRequest, ReviewRequest, ReviewView, VariantView
from studio.campaigns import get_variant, variant_view
from studio.editing import review as rules

if TYPE_CHECKING:
    from studio.api import Studio


def review(studio: Studio, req: ReviewRequest) -> VariantView:
    current = get_variant(studio, req.variant_id)
    reason = (req.override_reason or "").strip() or None
    try:
        rules.check_transition(current.status, req.to_status, current.checks_status, reason)
    except rules.ReviewError as exc:
        raise errors.InvalidInput(str(exc), field="override_reason" if "override" in str(exc) else "to_status") from None
    needs_override = req.to_status == "approved" and current.checks_status == "fail"
    with studio.db.session() as s:
        row = storage.VariantRepo(s).transition(
            req.variant_id, req.to_status, req.reviewer.strip(), req.comment,
            override_reason=reason if needs_override else None, expected_status=current.status,
        )  # fmt: skip
        return variant_view(row)


def history(studio: Studio, variant_id: int) -> list[ReviewView]:
    get_variant(studio, variant_id)
    with studio.db.session() as s:
        return [
            ReviewView(from_status=r.from_status, to_status=r.to_status, reviewer=r.reviewer, comment=r.comment,
                       region=r.region, created_at=r.created_at)  # fmt: skip
            for r in storage.VariantRepo(s).reviews(variant_id)
        ]


def mark_region(studio: Studio, req: RegionInstructionRequest) -> VariantView:
    """The instruction repaints the rectangle of the cell's image; the new cell records its parent."""
    from studio.variants import region_variant

    cell = get_variant(studio, req.variant_id)
    region = rules.RegionInstruction(x=req.x, y=req.y, w=req.width, h=req.height, instruction=req.instruction)
    made = region_variant(studio, cell, region)
    with studio.db.session() as s:
        storage.VariantRepo(s).add_review_note(
            req.variant_id, req.reviewer.strip(), f"region instruction -> cell {made.cell_id}: {req.instruction}",
            region={"x": req.x, "y": req.y, "w": req.width, "h": req.height, "instruction": req.instruction},
        )  # fmt: skip
    return made
