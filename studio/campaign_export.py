"""Export packs (every cell in every chosen channel size, with metadata and a manifest), results
import and the winner.

1. snapshot: the cells, their images/overlays/states, the channels and the kit's brand assets, hashed;
2. per cell and channel: fit (outpainting where a crop would cut the product), overlay in the
   channel's safe zone, encode as the channel needs under its size cap, with the recipe, A1111
   parameters and the IPTC disclosure;
3. zip with deterministic bytes (same snapshot -> same bytes), stored as a blob, one export row.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import storage
from studio import errors
from studio.campaign_schemas import ExportRequest, ExportView, VariantView, WinnerView
from studio.campaigns import brand_context, get_campaign, list_variants, open_image, variant_view
from studio.editing import encode, export_pack, results
from studio.formats import AD_FORMATS
from studio.generation.imagefile import COMPOSITE_WITH_TRAINED, read_png_metadata, xmp_packet
from studio.variant_checks import composite

if TYPE_CHECKING:
    from studio.api import Studio
    from studio.campaigns import BrandContext

VERDICTS = {"winner": "winner", "leading (not significant)": "leading", "no data": "no_data"}


def channel_encoding(format_key: str) -> encode.ImageFormat:
    """IAB banners carry a 150 KB cap: JPEG; the other channels take lossless PNG (capped too)."""
    return "jpeg" if format_key.startswith("google_banner_") else "png"


def export_campaign(studio: Studio, req: ExportRequest) -> ExportView:
    campaign = get_campaign(studio, req.campaign_id)
    unknown = [c for c in req.channels if c not in AD_FORMATS]
    if unknown:
        raise errors.InvalidInput(f"unknown channel format(s) {', '.join(unknown)}; see brand-studio formats",
                                  field="channels")  # fmt: skip
    cells = [v for v in list_variants(studio, campaign.id) if req.include == "all" or v.status == "approved"]
    if not cells:
        raise errors.InvalidInput("no approved cells to export: approve cells on the Review page first "
                                  "(or export all)", field="include")  # fmt: skip
    ctx = brand_context(studio, campaign.kit_id)
    snapshot = _snapshot(cells, req, ctx)
    with studio.db.session() as s:
        done = storage.ExportRepo(s).latest_for_snapshot(campaign.id, snapshot)
        if done is not None and studio.blobs.exists(done.zip_sha256):
            return _view(done, campaign.slug, studio)
    entries = [entry for cell in cells for entry in _entries(studio, cell, req.channels, ctx)]
    control = next((c.cell_id for c in cells if c.factor == "control"), None)
    meta = export_pack.CampaignMeta(campaign_id=str(campaign.id), name=campaign.name, control_cell_id=control,
                                    snapshot=snapshot)  # fmt: skip
    data = export_pack.build_pack(entries, meta)
    ref = studio.blobs.put_bytes(data)
    with studio.db.session() as s:
        storage.BlobRepo(s).record(ref, "application/zip")
        row = storage.ExportRepo(s).create(campaign.id, ref.sha256, snapshot, list(req.channels), [c.id for c in cells])
        return _view(row, campaign.slug, studio)


def _snapshot(cells: list[VariantView], req: ExportRequest, ctx: BrandContext) -> str:
    state = {
        "cells": [{k: getattr(c, k) for k in ("id", "cell_id", "factor", "value", "hypothesis", "status", "image_sha256",
                                              "overlay", "format_key", "recipe_hash", "checks_status")} for c in cells],
        "channels": sorted(req.channels), "palette": list(ctx.palette),
        "logo": hashlib.sha256(ctx.logo_png).hexdigest() if ctx.logo_png else None,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def _entries(studio: Studio, cell: VariantView, channels: tuple[str, ...], ctx: BrandContext) -> list[export_pack.PackEntry]:
    from studio.variants import fit_to_format, load_master

    master = load_master(studio, cell.creative_id)
    master.image = open_image(studio, cell.image_sha256)
    if master.mask is not None and master.mask.size != master.image.size:
        master.mask = None  # a fitted cell: its own pixels, no product mask of that size
    if cell.generation_id is not None and cell.image_sha256 != master.image_sha256:
        gen = studio.get_generation(cell.generation_id)
        master.generation_id, master.index = gen.id, gen.images[0].index
    metadata = _metadata(studio, cell)
    keys = (cell.format_key,) if cell.format_key else channels  # a format cell ships in its own size
    out = []
    for key in keys:
        fmt = AD_FORMATS[key]
        fitted, _, _, _ = fit_to_format(studio, master, fmt.width, fmt.height)
        shipped = composite(fitted, cell.overlay, ctx, key).image
        kind = channel_encoding(key)
        try:
            encoded = encode.encode_for_channel(shipped, kind, encode.channel_cap_bytes(fmt), metadata)
        except encode.EncodeError as exc:
            raise errors.GenerationError(f"cell {cell.cell_id} in {key}: {exc}") from None
        out.append(export_pack.PackEntry(
            cell_id=cell.cell_id, factor=cell.factor, value=cell.value, hypothesis=cell.hypothesis, channel=fmt.channel,
            format_key=key, width=fmt.width, height=fmt.height, image=encoded.data, image_format=kind,
            recipe_hash=cell.recipe_hash, review_status=cell.status, checks_status=cell.checks_status,
        ))  # fmt: skip
    return out


def _metadata(studio: Studio, cell: VariantView) -> encode.ImageMetadata:
    """The cell's generation's recipe and A1111 text; the disclosure says composite (overlay added)."""
    parameters, recipe = None, None
    if cell.generation_id is not None:
        gen = studio.get_generation(cell.generation_id)
        read = read_png_metadata(studio.read_blob(gen.images[0].blob_sha256))
        parameters, recipe = read["parameters"], read["recipe"]
    recipe = {**(recipe or {}), "cell": {"cell_id": cell.cell_id, "factor": cell.factor, "value": cell.value,
                                         "overlay": cell.overlay, "format_key": cell.format_key}}  # fmt: skip
    return encode.ImageMetadata(xmp=xmp_packet(COMPOSITE_WITH_TRAINED).encode("utf-8"), parameters=parameters,
                                recipe=recipe)  # fmt: skip


def _view(row: Any, slug: str, studio: Studio) -> ExportView:
    size = studio.blobs.path_for(row.zip_sha256).stat().st_size
    files = len(export_pack.read_manifest(studio.read_blob(row.zip_sha256)).rows)
    return ExportView(id=row.id, campaign_id=row.campaign_id, zip_sha256=row.zip_sha256,
                      file_name=f"{slug}-export-{row.id}.zip", size=size, channels=tuple(row.channels),
                      variant_count=len(row.variant_ids), file_count=files, created_at=row.created_at)  # fmt: skip


def export_file(studio: Studio, export_id: int) -> tuple[str, bytes]:
    with studio.db.session() as s:
        row = storage.ExportRepo(s).get(export_id)
        if row is None:
            raise errors.NotFound(f"export {export_id} does not exist", field="export_id")
        campaign = storage.CampaignRepo(s).require(row.campaign_id)
        name, sha = f"{campaign.slug}-export-{row.id}.zip", row.zip_sha256
    return name, studio.read_blob(sha)


def import_results(studio: Studio, campaign_id: int, data: bytes) -> list[VariantView]:
    get_campaign(studio, campaign_id)
    cells = {v.cell_id for v in list_variants(studio, campaign_id)}
    try:
        parsed = results.parse_results_csv(data, cells)
    except results.ResultsError as exc:
        raise errors.InvalidInput(str(exc), field="results") from None
    rows = [(r.cell_id, r.impressions, r.clicks, r.conversions) for r in parsed.rows]
    with studio.db.session() as s:
        storage.VariantRepo(s).set_results(campaign_id, rows)
        return [variant_view(v) for v in storage.VariantRepo(s).list(campaign_id)]


def winner(studio: Studio, campaign_id: int) -> WinnerView:
    campaign = get_campaign(studio, campaign_id)
    cells = list_variants(studio, campaign_id)
    measured = [c for c in cells if c.impressions is not None]
    controls = [c for c in cells if c.factor == "control" and c.impressions is not None]
    if not measured or not controls:
        return WinnerView(metric=campaign.metric, status="no_data", cell_id=None,
                          detail="no results yet (or none for a control cell): import the ad platform's CSV")  # fmt: skip
    control = max(controls, key=lambda c: sum(1 for m in measured if m.creative_id == c.creative_id))
    rows = [results.CellResult(c.cell_id, c.impressions or 0, c.clicks or 0, c.conversions or 0)
            for c in measured if c.creative_id == control.creative_id]  # fmt: skip
    try:
        view = results.pick_winner(rows, control.cell_id, campaign.metric)  # type: ignore[arg-type]
    except results.ResultsError as exc:
        raise errors.InvalidInput(str(exc), field="results") from None
    table = tuple({"cell_id": c.cell_id, "trials": c.trials, "successes": c.successes, "rate": c.rate, "lift": c.lift,
                   "p_value": c.p_value, "significant": c.significant} for c in view.cells)  # fmt: skip
    return WinnerView(metric=view.metric, status=VERDICTS[view.verdict], cell_id=view.cell_id,  # type: ignore[arg-type]
                      detail=view.summary, rows=table)  # fmt: skip
