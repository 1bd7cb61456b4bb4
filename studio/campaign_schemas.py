"""Request and view types of campaigns, A/B variants, review and export packs. Frozen, no torch, no DB.

A campaign holds creatives (a master image with its recipe, an optional product mask and a brand
overlay); a creative holds variants, each differing from the master in exactly one declared factor.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from studio.editing.checks import CheckThresholds
from studio.errors import InvalidInput
from studio.schemas import Frozen, Request

Factor = Literal["background", "product_colour", "prop", "copy", "format", "prompt_word", "lora_weight"]
#: factors that repaint part of the master (a mask bounds the edit; pixels outside are verified identical)
MASKED_FACTORS = ("background", "product_colour", "prop", "region")
ReviewStatus = Literal["draft", "in_review", "approved", "rejected"]
Metric = Literal["ctr", "cvr"]
SHA256 = r"^[0-9a-f]{64}$"
__all__ = ["CheckThresholds"]  # re-exported: the kit's brand-check thresholds (a frozen pydantic model)
MAX_VALUES = 8


class CampaignCreateRequest(Request):
    kit_id: int = Field(gt=0)
    name: str = Field(min_length=1, max_length=200)
    objective: str = Field("", max_length=2000)
    metric: Metric = Field("ctr", description="what decides the winner: click-through or conversion rate")

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; name the campaign")
        return v.strip()


class OverlayRequest(Request):
    """The brand layer drawn over every cell (never by diffusion)."""

    headline: str = Field("", max_length=120)
    cta: str = Field("", max_length=40)
    legal: str = Field("", max_length=300)
    use_logo: bool = True
    position: Literal["bottom", "top", "center"] = "bottom"


class CreativeCreateRequest(Request):
    campaign_id: int = Field(gt=0)
    generation_id: int = Field(gt=0, description="the master: one of our generated images")
    image_index: int = Field(0, ge=0)
    name: str = Field("", max_length=200)
    product_mask: str | None = Field(None, pattern=SHA256, description="stored mask (white = product)")
    overlay: OverlayRequest = OverlayRequest()


class VariantGroupRequest(Request):
    """One factor and its values: one cell per value, everything else locked to the master.

    - background / product_colour / prop: each value is what to paint (a prompt); background repaints
      everything outside the product mask, product_colour inside it, prop inside ``region``;
    - copy: each value replaces ``copy_field`` of the overlay (pixels are the master's);
    - format: each value is an ad-format key (the master fitted, outpainted where a crop would cut the
      product);
    - prompt_word: ``search`` is a word of the master's prompt, each value replaces it (same seed);
    - lora_weight: each value is a weight for the master's LoRA (``lora_id`` when it has several).
    """

    creative_id: int = Field(gt=0)
    factor: Factor
    values: tuple[str, ...] = Field(min_length=1, max_length=MAX_VALUES)
    hypothesis: str = Field("", max_length=500)
    copy_field: Literal["headline", "cta", "legal"] = "headline"
    search: str = Field("", max_length=200)
    region: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height (prop)")
    lora_id: int | None = Field(None, gt=0)
    strength: float = Field(1.0, gt=0, le=1.0, description="denoising strength of masked edits")

    @field_validator("values")
    @classmethod
    def _values(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(x.strip() for x in v)
        if any(not x for x in cleaned):
            raise ValueError("contains an empty value")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("contains the same value twice")
        if any(len(x) > 300 for x in cleaned):
            raise ValueError("a value is over 300 characters")
        return cleaned

    @model_validator(mode="after")
    def _factor_fields(self) -> Self:
        if self.factor == "prop" and self.region is None:
            raise InvalidInput("a prop variant needs the region to paint it in (x, y, width, height)", field="region")
        if self.factor == "prompt_word" and not self.search.strip():
            raise InvalidInput("a prompt_word variant needs the word of the master's prompt to replace", field="search")
        if self.factor == "lora_weight":
            for x in self.values:
                try:
                    w = float(x)
                except ValueError:
                    raise InvalidInput(f"{x!r} is not a number", field="values") from None
                if not (math.isfinite(w) and -1 <= w <= 2):
                    raise InvalidInput(f"LoRA weight {x} must be between -1 and 2", field="values")
        return self


class ReviewRequest(Request):
    variant_id: int = Field(gt=0)
    to_status: ReviewStatus
    reviewer: str = Field(min_length=1, max_length=120)
    comment: str = Field("", max_length=2000)
    override_reason: str | None = Field(None, max_length=2000)


class RegionInstructionRequest(Request):
    """A reviewer's mark on a variant: repaint this rectangle as the instruction says (a new variant)."""

    variant_id: int = Field(gt=0)
    reviewer: str = Field(min_length=1, max_length=120)
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    instruction: str = Field(min_length=1, max_length=300)


class ExportRequest(Request):
    campaign_id: int = Field(gt=0)
    channels: tuple[str, ...] = Field(min_length=1, max_length=40, description="ad-format keys")
    include: Literal["approved", "all"] = "approved"


class CheckView(Frozen):
    name: str
    status: Literal["pass", "warn", "fail"]
    value: float | None
    detail: str
    numbers: dict[str, Any] = {}


class CampaignView(Frozen):
    id: int
    kit_id: int
    name: str
    slug: str
    objective: str
    metric: str
    created_at: datetime


class CreativeView(Frozen):
    id: int
    campaign_id: int
    name: str
    generation_id: int
    image_index: int
    image_sha256: str
    product_mask_sha256: str | None
    overlay: dict[str, Any]


class VariantView(Frozen):
    id: int
    campaign_id: int
    creative_id: int
    cell_id: str
    factor: str
    value: str
    hypothesis: str
    group_key: str
    status: str
    checks: tuple[CheckView, ...]
    checks_status: str
    image_sha256: str
    generation_id: int | None
    format_key: str | None
    recipe_hash: str
    overlay: dict[str, Any]
    invariance: dict[str, Any]
    override_reason: str | None
    parent_variant_id: int | None
    impressions: int | None = None
    clicks: int | None = None
    conversions: int | None = None


class ReviewView(Frozen):
    from_status: str
    to_status: str
    reviewer: str
    comment: str
    region: dict[str, Any] | None
    created_at: datetime


class ExportView(Frozen):
    id: int
    campaign_id: int
    zip_sha256: str
    file_name: str
    size: int
    channels: tuple[str, ...]
    variant_count: int
    file_count: int
    created_at: datetime


class WinnerView(Frozen):
    metric: str
    status: Literal["winner", "leading", "no_data"]
    cell_id: str | None
    detail: str
    rows: tuple[dict[str, Any], ...] = ()
