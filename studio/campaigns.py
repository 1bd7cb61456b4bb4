"""The facade's side of campaigns and creatives: create them, read them, and the brand context
(palette, logo, banned terms) every variant is drawn and checked with.

A creative's master is one of our generated images; adding it also adds the control cell (factor
``control``), the cell every variant is compared with and the one results are tested against.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any, TypeVar

import brand_kits
import storage
from studio import errors
from studio.campaign_schemas import (
    CampaignCreateRequest,
    CampaignView,
    CheckThresholds,
    CheckView,
    CreativeCreateRequest,
    CreativeView,
    VariantView,
)

if TYPE_CHECKING:
    from PIL.Image import Image

    from studio.api import Studio

SLUG = re.compile(r"[^a-z0-9]+")
T = TypeVar("T")


@dataclass(frozen=True)
class BrandContext:
    """What the kit says about drawing and checking a cell."""

    kit_id: int
    class_noun: str
    palette: tuple[str, ...]  #: hex colours
    logo_png: bytes | None
    guide: brand_kits.StyleGuide


def slugify(name: str) -> str:
    return SLUG.sub("-", name.lower()).strip("-")[:60] or "campaign"


def campaign_view(row: Any) -> CampaignView:
    return CampaignView(id=row.id, kit_id=row.kit_id, name=row.name, slug=row.slug, objective=row.objective,
                        metric=row.metric, created_at=row.created_at)  # fmt: skip


def creative_view(row: Any) -> CreativeView:
    return CreativeView(id=row.id, campaign_id=row.campaign_id, name=row.name, generation_id=row.generation_id,
                        image_index=row.image_index, image_sha256=row.image_sha256,
                        product_mask_sha256=row.product_mask_sha256, overlay=dict(row.overlay or {}))  # fmt: skip


def variant_view(row: Any) -> VariantView:
    return VariantView(
        id=row.id, campaign_id=row.campaign_id, creative_id=row.creative_id, cell_id=row.cell_id, factor=row.factor,
        value=row.value, hypothesis=row.hypothesis, group_key=row.group_key, status=row.status,
        checks=tuple(CheckView(**c) for c in row.checks or []), checks_status=row.checks_status,
        image_sha256=row.image_sha256, generation_id=row.generation_id, format_key=row.format_key,
        recipe_hash=row.recipe_hash, overlay=dict(row.overlay or {}), invariance=dict(row.invariance or {}),
        override_reason=row.override_reason, parent_variant_id=row.parent_variant_id,
        impressions=row.impressions, clicks=row.clicks, conversions=row.conversions,
    )  # fmt: skip


def _one(studio: Studio, repo: Any, row_id: int, label: str, field: str, view: Callable[[Any], T]) -> T:
    """One row by id as its view; NotFound names ``field``."""
    with studio.db.session() as s:
        row = repo(s).get(row_id)
        if row is None:
            raise errors.NotFound(f"{label} {row_id} does not exist", field=field)
        return view(row)


def create_campaign(studio: Studio, req: CampaignCreateRequest) -> CampaignView:
    studio.get_kit(req.kit_id)  # NotFound names kit_id
    slug = slugify(req.name)
    with studio.db.session() as s:
        repo = storage.CampaignRepo(s)
        if repo.by_slug(req.kit_id, slug) is not None:
            raise errors.Conflict(f"this kit already has a campaign named like {req.name!r}", field="name")
        return campaign_view(repo.create(req.kit_id, req.name, slug, req.objective, req.metric))


def get_campaign(studio: Studio, campaign_id: int) -> CampaignView:
    return _one(studio, storage.CampaignRepo, campaign_id, "campaign", "campaign_id", campaign_view)


def list_campaigns(studio: Studio, kit_id: int | None = None) -> list[CampaignView]:
    with studio.db.session() as s:
        return [campaign_view(r) for r in storage.CampaignRepo(s).list(kit_id)]


def add_creative(studio: Studio, req: CreativeCreateRequest) -> CreativeView:
    """The master image (one of our generations), its product mask and overlay; plus the control cell."""
    campaign = get_campaign(studio, req.campaign_id)
    gen = studio.get_generation(req.generation_id)
    image = next((i for i in gen.images if i.index == req.image_index), None)
    if image is None:
        raise errors.NotFound(f"generation {gen.id} has no image {req.image_index}", field="image_index")
    if gen.kit_id is not None and gen.kit_id != campaign.kit_id:
        raise errors.InvalidInput(f"generation {gen.id} was made with another kit than this campaign's",
                                  field="generation_id")  # fmt: skip
    if req.product_mask is not None:
        _check_mask_size(studio, req.product_mask, image.blob_sha256)
    overlay = req.overlay.model_dump()
    with studio.db.session() as s:
        creative = storage.CreativeRepo(s).create(
            campaign_id=campaign.id, name=req.name or f"generation {gen.id} #{req.image_index}",
            generation_id=gen.id, image_index=req.image_index, image_sha256=image.blob_sha256,
            product_mask_sha256=req.product_mask, overlay=overlay,
        )  # fmt: skip
        view = creative_view(creative)
    try:
        from studio.variants import add_control

        add_control(studio, view.id)
    except errors.StudioError:
        with studio.db.session() as s:  # an overlay that cannot be drawn: no creative without its control
            storage.CreativeRepo(s).delete(view.id)
        raise
    return view


def list_creatives(studio: Studio, campaign_id: int) -> list[CreativeView]:
    with studio.db.session() as s:
        return [creative_view(r) for r in storage.CreativeRepo(s).list(campaign_id)]


def get_creative(studio: Studio, creative_id: int) -> CreativeView:
    return _one(studio, storage.CreativeRepo, creative_id, "creative", "creative_id", creative_view)


def list_variants(studio: Studio, campaign_id: int, status: str | None = None) -> list[VariantView]:
    with studio.db.session() as s:
        return [variant_view(r) for r in storage.VariantRepo(s).list(campaign_id, status=status)]


def get_variant(studio: Studio, variant_id: int) -> VariantView:
    return _one(studio, storage.VariantRepo, variant_id, "variant", "variant_id", variant_view)


def brand_context(studio: Studio, kit_id: int) -> BrandContext:
    from studio import curation

    with studio.db.session() as s:
        kit = storage.KitRepo(s).get(kit_id)
        if kit is None:
            raise errors.NotFound(f"brand kit {kit_id} does not exist", field="kit_id")
        guide, class_noun = curation.style_guide_of(kit), kit.class_noun
    logos = studio.list_assets(kit_id, "logo")
    return BrandContext(kit_id=kit_id, class_noun=class_noun, palette=tuple(c.hex for c in guide.palette),
                        logo_png=studio.read_blob(logos[0].blob_sha256) if logos else None, guide=guide)  # fmt: skip


def recipe_hash(studio: Studio, generation_id: int) -> str:
    """SHA-256 of a generation's recipe (canonical JSON): the export manifest's recipe_hash."""
    with studio.db.session() as s:
        gen = storage.GenerationRepo(s).get(generation_id)
        recipe = dict(gen.recipe) if gen is not None else {}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def open_image(studio: Studio, sha256: str, mode: str = "RGB") -> Image:
    from PIL import Image

    with Image.open(BytesIO(studio.read_blob(sha256))) as img:
        return img.convert(mode)


def _check_mask_size(studio: Studio, mask_sha: str, image_sha: str) -> None:
    mask, image = open_image(studio, mask_sha, "L"), open_image(studio, image_sha)
    if mask.size != image.size:
        raise errors.InvalidInput(f"the product mask is {mask.size[0]}x{mask.size[1]} but the master image is "
                                  f"{image.size[0]}x{image.size[1]}; use a mask of the image's size",
                                  field="product_mask")  # fmt: skip
    if not mask.getbbox():
        raise errors.InvalidInput("the product mask is all black: paint the product white", field="product_mask")


def get_check_thresholds(studio: Studio, kit_id: int) -> CheckThresholds:
    with studio.db.session() as s:
        kit = storage.KitRepo(s).get(kit_id)
        if kit is None:
            raise errors.NotFound(f"brand kit {kit_id} does not exist", field="kit_id")
        return CheckThresholds.model_validate(kit.check_thresholds or {})


def set_check_thresholds(studio: Studio, kit_id: int, thresholds: CheckThresholds) -> CheckThresholds:
    """The kit's thresholds for new cells' checks (cells already made keep the numbers they were graded with)."""
    with studio.db.session() as s:
        if storage.KitRepo(s).get(kit_id) is None:
            raise errors.NotFound(f"brand kit {kit_id} does not exist", field="kit_id")
        storage.KitRepo(s).update(kit_id, check_thresholds=thresholds.model_dump())
    return thresholds
