"""A/B cells: one factor changed, everything else locked to the master, and the lock verified.

1. check the whole group before any work (mask present, values valid, word in the prompt, LoRA used);
2. per value, make the cell: masked factors inpaint the master with a binary mask (product protected
   for a background, only the product for its colour, a rectangle for a prop or a reviewer's region);
   prompt_word / lora_weight re-render the master's exact recipe with that one field changed; copy
   reuses the master's pixels with other overlay text; format fits the master to a channel size
   (outpainting first when a crop would cut the product);
3. verify: pixels outside the edit identical to the master, recipe fields other than the factor equal;
4. brand checks on the cell as it ships (with its overlay), then one row per cell.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

import numpy as np

import storage
from studio import errors
from studio.campaign_schemas import MASKED_FACTORS, VariantGroupRequest, VariantView
from studio.campaigns import (
    BrandContext,
    brand_context,
    get_campaign,
    get_creative,
    open_image,
    recipe_hash,
    variant_view,
)
from studio.editing import channels
from studio.editing.review import RegionInstruction, ReviewError, region_mask
from studio.formats import AD_FORMATS
from studio.schemas import GenerateRequest, UploadedFile
from studio.variant_checks import cell_checks, composite

if TYPE_CHECKING:
    from PIL.Image import Image

    from studio.api import Studio
    from studio.campaign_facade import CellProgressFn

#: recipe keys that are bookkeeping, not part of what makes the pixels
BOOKKEEPING = frozenset({"app_version", "created_at", "warnings", "seeds", "batch_size", "batch_count", "subseeds",
                         "parent_id", "user_prompt", "user_negative_prompt"})  # fmt: skip
#: recipe keys a factor may change
FACTOR_KEYS = {"prompt_word": {"prompt"}, "lora_weight": {"loras"}}


@dataclass
class Master:
    creative_id: int
    campaign_id: int
    generation_id: int
    index: int
    image_sha256: str
    image: Image
    mask: Image | None  #: binary 'L', white = product
    overlay: dict[str, Any]
    seed: int

    @property
    def pixels(self) -> np.ndarray:
        return np.asarray(self.image)


@dataclass
class Cell:
    value: str
    image_sha256: str
    generation_id: int | None
    overlay: dict[str, Any]
    format_key: str | None = None
    invariance: dict[str, Any] = field(default_factory=dict)
    edit_mask: Image | None = None  #: the region that was allowed to change (white)
    fit: channels.FitPlan | None = None
    extended: tuple[int, int, int, int] = (0, 0, 0, 0)


def load_master(studio: Studio, creative_id: int) -> Master:
    creative = get_creative(studio, creative_id)
    gen = studio.get_generation(creative.generation_id)
    seed = next(i.seed for i in gen.images if i.index == creative.image_index)
    mask = None
    if creative.product_mask_sha256:
        mask = open_image(studio, creative.product_mask_sha256, "L").point(lambda v: 255 if v >= 128 else 0)
    return Master(creative.id, creative.campaign_id, gen.id, creative.image_index, creative.image_sha256,
                  open_image(studio, creative.image_sha256), mask, dict(creative.overlay), seed)  # fmt: skip


def make_variants(studio: Studio, req: VariantGroupRequest, progress: CellProgressFn | None) -> list[VariantView]:
    master = load_master(studio, req.creative_id)
    ctx = brand_context(studio, get_campaign(studio, master.campaign_id).kit_id)
    _check_group(studio, master, req, ctx)  # before any work
    group = f"{req.factor}-{secrets.token_hex(4)}"
    made = []
    for i, value in enumerate(req.values):
        cell = _make_cell(studio, master, req, value, ctx)
        made.append(_record(studio, master, ctx, cell, req.factor, req.hypothesis, group, parent=None))
        if progress is not None:
            progress(i + 1, len(req.values))
    return made


def add_control(studio: Studio, creative_id: int) -> VariantView:
    """The creative's control cell: the master itself, checked like every cell."""
    master = load_master(studio, creative_id)
    ctx = brand_context(studio, get_campaign(studio, master.campaign_id).kit_id)
    cell = Cell("master", master.image_sha256, master.generation_id, dict(master.overlay), invariance={"control": True})
    return _record(studio, master, ctx, cell, "control", "control", f"control-{creative_id}", parent=None)


def _check_group(studio: Studio, master: Master, req: VariantGroupRequest, ctx: BrandContext) -> None:
    if req.factor in ("background", "product_colour") and master.mask is None:
        raise errors.InvalidInput(f"a {req.factor} variant needs the creative's product mask (white = product); "
                                  "add one to the creative", field="factor")  # fmt: skip
    if req.factor == "format":
        unknown = [v for v in req.values if v not in AD_FORMATS]
        if unknown:
            raise errors.InvalidInput(f"unknown ad format(s) {', '.join(unknown)}; see brand-studio formats", field="values")
    if req.factor == "prop" and req.region is not None:
        x, y, w, h = req.region
        _valid_region(RegionInstruction(x=x, y=y, w=w, h=h, instruction="prop"), master.image.size)
    if req.factor == "copy":  # every overlay must draw before the first cell is stored
        for value in req.values:
            composite(master.image, {**master.overlay, req.copy_field: value}, ctx, None)
    if req.factor in ("prompt_word", "lora_weight"):
        base = _master_request(studio, master)
        if req.factor == "prompt_word" and req.search not in base.prompt:
            raise errors.InvalidInput(f"{req.search!r} is not in the master's prompt ({base.prompt!r})", field="search")
        if req.factor == "lora_weight":
            _target_lora(base, req.lora_id)


def _valid_region(region: RegionInstruction, size: tuple[int, int]) -> RegionInstruction:
    try:
        return region.validate(*size)
    except ReviewError as exc:
        raise errors.InvalidInput(str(exc), field="region") from None


def _make_cell(studio: Studio, master: Master, req: VariantGroupRequest, value: str, ctx: BrandContext) -> Cell:
    if req.factor in MASKED_FACTORS:
        mask, prompt = _edit_mask(master, req), value
        if req.factor == "product_colour":
            prompt = f"{value} {ctx.class_noun}"
        return _masked_cell(studio, master, value, prompt, mask, req.strength)
    if req.factor == "copy":
        return Cell(value, master.image_sha256, master.generation_id, {**master.overlay, req.copy_field: value},
                    invariance={"pixels": "the master's own (same file)", "outside_edit_identical": True})  # fmt: skip
    if req.factor == "format":
        return _format_cell(studio, master, value)
    return _rerender_cell(studio, master, req, value)


def _edit_mask(master: Master, req: VariantGroupRequest) -> Image:
    from PIL import ImageOps

    if req.factor == "background":
        assert master.mask is not None
        return ImageOps.invert(master.mask)
    if req.factor == "product_colour":
        assert master.mask is not None
        return master.mask
    assert req.region is not None
    x, y, w, h = req.region
    return region_mask(*master.image.size, RegionInstruction(x=x, y=y, w=w, h=h, instruction="prop"))


def _png(image: Image) -> bytes:
    buf = BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _masked_cell(studio: Studio, master: Master, value: str, prompt: str, mask: Image, strength: float) -> Cell:
    base = studio.send_to(master.generation_id, master.index, "inpaint")
    mask_sha = studio.upload_mask(UploadedFile(name="variant-mask.png", data=_png(mask)))
    fields = {**base.model_dump(), "prompt": prompt, "mask": mask_sha, "strength": strength, "mask_blur": 0,
              "batch_size": 1, "batch_count": 1}  # fmt: skip
    gen = studio.generate(GenerateRequest.of(**fields), parent_id=master.generation_id)
    image = gen.images[0]
    after = np.asarray(open_image(studio, image.blob_sha256))
    keep = np.asarray(mask) == 0
    identical = bool(np.array_equal(master.pixels[keep], after[keep]))
    changed = int(np.any(master.pixels != after, axis=-1)[~keep].sum())
    invariance = {"outside_edit_identical": identical, "pixels_kept": int(keep.sum()),
                  "pixels_changed_inside": changed, "edit_pixels": int((~keep).sum())}  # fmt: skip
    return Cell(value, image.blob_sha256, gen.id, dict(master.overlay), invariance=invariance, edit_mask=mask)


def _master_request(studio: Studio, master: Master) -> GenerateRequest:
    read = studio.request_from_png(studio.read_blob(master.image_sha256))
    return read.request.model_copy(update={"seed": master.seed, "batch_size": 1, "batch_count": 1})


def _target_lora(base: GenerateRequest, lora_id: int | None) -> int:
    ids = [c.lora_id for c in base.loras]
    if not ids:
        raise errors.InvalidInput("the master was made without a LoRA; a lora_weight variant needs one", field="factor")
    if lora_id is None and len(ids) > 1:
        raise errors.InvalidInput(f"the master uses LoRAs {ids}; say which one varies (lora_id)", field="lora_id")
    target = ids[0] if lora_id is None else lora_id
    if target not in ids:
        raise errors.InvalidInput(f"the master does not use LoRA {target} (it uses {ids})", field="lora_id")
    return target


def _rerender_cell(studio: Studio, master: Master, req: VariantGroupRequest, value: str) -> Cell:
    base = _master_request(studio, master)
    if req.factor == "prompt_word":
        changed = base.model_dump() | {"prompt": base.prompt.replace(req.search, value)}
    else:
        target = _target_lora(base, req.lora_id)
        loras = [c.model_dump() | ({"weight": float(value)} if c.lora_id == target else {}) for c in base.loras]
        changed = base.model_dump() | {"loras": loras}
    gen = studio.generate(GenerateRequest.of(**changed), parent_id=master.generation_id)
    differing = recipe_differences(studio, master.generation_id, gen.id)
    allowed = FACTOR_KEYS[req.factor]
    invariance = {"recipe_fields_differing": sorted(differing), "only_factor_differs": differing <= allowed,
                  "seed": gen.seed}  # fmt: skip
    return Cell(value, gen.images[0].blob_sha256, gen.id, dict(master.overlay), invariance=invariance)


def recipe_differences(studio: Studio, a: int, b: int) -> set[str]:
    """Recipe keys whose values differ between two generations (bookkeeping keys ignored)."""
    with studio.db.session() as s:
        repo = storage.GenerationRepo(s)
        first, second = dict(repo.get(a).recipe), dict(repo.get(b).recipe)  # type: ignore[union-attr]
    keys = (set(first) | set(second)) - BOOKKEEPING
    return {k for k in keys if first.get(k) != second.get(k)}


def _format_cell(studio: Studio, master: Master, key: str) -> Cell:
    fmt = AD_FORMATS[key]
    fitted, plan, extend, generation_id = fit_to_format(studio, master, fmt.width, fmt.height)
    ref = studio.blobs.put_bytes(_png(fitted))
    with studio.db.session() as s:
        storage.BlobRepo(s).record(ref, "image/png")
    in_frame = _product_in_frame(master, plan, extend)
    invariance = {"product_in_frame": in_frame, "outpainted": any(extend), "extend": list(extend),
                  "crop": [round(v, 2) for v in plan.crop or ()], "size": [fmt.width, fmt.height]}  # fmt: skip
    return Cell(key, ref.sha256, generation_id, dict(master.overlay), key, invariance, fit=plan, extended=extend)


def fit_to_format(studio: Studio, master: Master, width: int, height: int) -> tuple[Image, channels.FitPlan, tuple[int, int, int, int], int]:
    """The master at exactly width x height with the product kept in frame; outpainted first (a recorded
    generation) when no crop can hold the product. Returns (image, plan, extension, generation id)."""
    box = channels.product_box(master.mask) if master.mask is not None else None
    w, h = master.image.size
    plan = channels.plan_fit(w, h, box, width, height)
    if not plan.needs_outpaint:
        return channels.apply_fit(master.image, plan), plan, (0, 0, 0, 0), master.generation_id
    left, top, right, bottom = plan.extend
    base = studio.send_to(master.generation_id, master.index, "outpaint")
    fields = {**base.model_dump(), "outpaint_left": left, "outpaint_top": top, "outpaint_right": right,
              "outpaint_bottom": bottom, "batch_size": 1, "batch_count": 1}  # fmt: skip
    gen = studio.generate(GenerateRequest.of(**fields), parent_id=master.generation_id)
    bigger = open_image(studio, gen.images[0].blob_sha256)
    plan2 = channels.plan_fit(*bigger.size, channels.extended_box(box, plan) if box else None, width, height)
    if plan2.needs_outpaint:
        raise errors.GenerationError(f"outpainting by {plan.extend} still leaves no crop for {width}x{height}")
    return channels.apply_fit(bigger, plan2), plan2, plan.extend, gen.id


def _product_in_frame(master: Master, plan: channels.FitPlan, extend: tuple[int, int, int, int]) -> bool | None:
    if master.mask is None or plan.crop is None:
        return None
    box = channels.product_box(master.mask)
    assert box is not None
    left, top, right, bottom = (box[0] + extend[0], box[1] + extend[1], box[2] + extend[0], box[3] + extend[1])
    c_left, c_top, c_right, c_bottom = plan.crop
    return bool(c_left <= left and c_top <= top and right <= c_right and bottom <= c_bottom)


def _record(studio: Studio, master: Master, ctx: BrandContext, cell: Cell, factor: str, hypothesis: str,
            group: str, parent: int | None) -> VariantView:  # fmt: skip
    checks, status = cell_checks(studio, master, cell, ctx, factor)
    cell_hash = recipe_hash(studio, cell.generation_id) if cell.generation_id else ""
    with studio.db.session() as s:
        row = storage.VariantRepo(s).create(
            campaign_id=master.campaign_id, creative_id=master.creative_id, factor=factor, value=cell.value,
            hypothesis=hypothesis, group_key=group, generation_id=cell.generation_id,
            image_sha256=cell.image_sha256, overlay=cell.overlay, format_key=cell.format_key,
            recipe_hash=cell_hash,
            invariance=cell.invariance, checks=[c.model_dump() for c in checks], checks_status=status,
            parent_variant_id=parent,
        )  # fmt: skip
        return variant_view(row)


def region_variant(studio: Studio, cell: VariantView, region: RegionInstruction) -> VariantView:
    """A reviewer's instruction: inpaint the rectangle of this cell's image (its own master is the cell)."""
    master = load_master(studio, cell.creative_id)
    if cell.image_sha256 != master.image_sha256:
        if cell.generation_id is None:
            raise errors.InvalidInput("this cell has no generation to edit", field="variant_id")
        gen = studio.get_generation(cell.generation_id)
        master.generation_id, master.index = gen.id, gen.images[0].index
        master.image_sha256, master.image = cell.image_sha256, open_image(studio, cell.image_sha256)
    region = _valid_region(region, master.image.size)
    ctx = brand_context(studio, get_campaign(studio, master.campaign_id).kit_id)
    mask = region_mask(*master.image.size, region)
    made = _masked_cell(studio, master, region.instruction, region.instruction, mask, 1.0)
    made.overlay = dict(cell.overlay)
    return _record(studio, master, ctx, made, "region", f"reviewer: {region.instruction}", f"region-{cell.id}",
                   parent=cell.id)  # fmt: skip


def preview_png(studio: Studio, variant_id: int, format_key: str | None) -> bytes:
    from studio.campaigns import get_variant

    cell = get_variant(studio, variant_id)
    campaign = get_campaign(studio, cell.campaign_id)
    ctx = brand_context(studio, campaign.kit_id)
    image = open_image(studio, cell.image_sha256)
    result = composite(image, cell.overlay, ctx, format_key or cell.format_key)
    return _png(result.image)


def more_like_winner(studio: Studio, campaign_id: int, count: int) -> list[VariantView]:
    """Cells from the winner's lineage: the winner's recipe and seed, fresh variation seeds at 0.2."""
    from studio.campaign_export import winner as pick

    won = pick(studio, campaign_id)
    if won.status == "no_data" or won.cell_id is None:
        raise errors.InvalidInput("import results first: there is no winner yet", field="campaign_id")
    with studio.db.session() as s:
        row = storage.VariantRepo(s).by_cell(campaign_id, won.cell_id)
        cell = variant_view(row)
    if cell.generation_id is None:
        raise errors.InvalidInput(f"cell {cell.cell_id} has no generation to vary", field="campaign_id")
    master = load_master(studio, cell.creative_id)
    ctx = brand_context(studio, get_campaign(studio, campaign_id).kit_id)
    image = studio.get_generation(cell.generation_id).images[0]
    base = studio.request_from_png(studio.read_blob(image.blob_sha256)).request
    made = []
    group = f"winner-{secrets.token_hex(4)}"
    for i in range(count):
        fields = base.model_dump() | {"seed": image.seed, "subseed": secrets.randbelow(2**32), "subseed_strength": 0.2,
                                      "batch_size": 1, "batch_count": 1}  # fmt: skip
        if base.mode not in ("txt2img", "controlnet"):
            fields |= {"subseed_strength": 0.0, "seed": image.seed + i + 1}  # image modes: new seeds instead
        gen = studio.generate(GenerateRequest.of(**fields), parent_id=cell.generation_id)
        new = Cell(f"like {cell.cell_id} #{i + 1}", gen.images[0].blob_sha256, gen.id, dict(cell.overlay),
                   cell.format_key, {"lineage": cell.cell_id, "variation_of_seed": image.seed})  # fmt: skip
        made.append(_record(studio, master, ctx, new, "variation", f"more like winner {cell.cell_id}", group,
                            parent=cell.id))  # fmt: skip
    return made
