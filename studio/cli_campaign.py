"""CLI: ``brand-studio campaign ...`` (campaigns, masters, A/B cells, review, results) and ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from studio.campaign_schemas import (
    CampaignCreateRequest,
    CheckThresholds,
    CreativeCreateRequest,
    ExportRequest,
    OverlayRequest,
    RegionInstructionRequest,
    ReviewRequest,
    VariantGroupRequest,
    VariantView,
)
from studio.cli_base import app, err, out, read_file, studio_session
from studio.fileio import atomic_write_bytes
from studio.schemas import UploadedFile

campaign_app = typer.Typer(help="Campaigns: masters, A/B cells, review, results.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")


def _cells(cells: list[VariantView]) -> None:
    table = Table("id", "cell", "factor", "value", "status", "checks", "hypothesis")
    for c in cells:
        checks = ", ".join(f"{x.name} {x.status}" for x in c.checks)
        table.add_row(str(c.id), c.cell_id, c.factor, c.value, c.status, f"{c.checks_status} ({checks})", c.hypothesis)
    out.print(table)


@campaign_app.command("create")
def create(
    kit: int, name: str, objective: Annotated[str, typer.Option(help="What the test should learn")] = "",
    metric: Annotated[str, typer.Option(help="ctr or cvr: what decides the winner")] = "ctr",
) -> None:  # fmt: skip
    """Create a campaign for a brand kit."""
    with studio_session() as studio:
        view = studio.create_campaign(CampaignCreateRequest.of(kit_id=kit, name=name, objective=objective, metric=metric))
    out.print(f"campaign {view.id}: {view.name} (kit {view.kit_id}, metric {view.metric})", markup=False)


@campaign_app.command("list")
def list_(kit: Annotated[int | None, typer.Option(help="Only this kit's")] = None) -> None:
    """List campaigns."""
    with studio_session() as studio:
        for c in studio.list_campaigns(kit):
            out.print(f"{c.id}\t{c.name}\tkit {c.kit_id}\t{c.metric}", markup=False)


@campaign_app.command("show")
def show(campaign: int) -> None:
    """A campaign's cells with their states and checks."""
    with studio_session() as studio:
        _cells(studio.list_variants(campaign))


@campaign_app.command("creative")
def creative(
    campaign: int, generation: int, index: Annotated[int, typer.Option(help="Image of the generation")] = 0,
    mask: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Product mask (white = product)")] = None,
    headline: str = "", cta: str = "", legal: str = "",
    logo: Annotated[bool, typer.Option(help="Draw the kit's logo")] = True,
) -> None:  # fmt: skip
    """Add a master image (one of our generations) with its product mask and overlay copy."""
    with studio_session() as studio:
        mask_sha = studio.upload_mask(UploadedFile(name=mask.name, data=read_file(mask))) if mask else None
        view = studio.add_creative(CreativeCreateRequest.of(
            campaign_id=campaign, generation_id=generation, image_index=index, product_mask=mask_sha,
            overlay=OverlayRequest.of(headline=headline, cta=cta, legal=legal, use_logo=logo),
        ))  # fmt: skip
    out.print(f"creative {view.id} of campaign {view.campaign_id} (control cell added)", markup=False)


@campaign_app.command("variants")
def variants(
    creative: int,
    factor: Annotated[str, typer.Option(help="background, product_colour, prop, copy, format, prompt_word, lora_weight")],
    value: Annotated[list[str], typer.Option(help="One cell per value (repeat)")],
    hypothesis: str = "",
    copy_field: Annotated[str, typer.Option(help="copy: headline, cta or legal")] = "headline",
    search: Annotated[str, typer.Option(help="prompt_word: the master's word each value replaces")] = "",
    region: Annotated[str | None, typer.Option(help="prop: X,Y,W,H in pixels")] = None,
    lora: Annotated[int | None, typer.Option(help="lora_weight: which LoRA (if the master has several)")] = None,
) -> None:  # fmt: skip
    """Make A/B cells that differ from the master in exactly one factor (verified), with brand checks."""
    box = tuple(int(v) for v in region.split(",")) if region else None
    with studio_session() as studio:
        req = VariantGroupRequest.of(creative_id=creative, factor=factor, values=tuple(value), hypothesis=hypothesis,
                                     copy_field=copy_field, search=search, region=box, lora_id=lora)  # fmt: skip
        made = studio.make_variants(req, lambda i, n: err.print(f"cell {i}/{n}", markup=False))
    _cells(made)


@campaign_app.command("review")
def review(
    variant: int, status: Annotated[str, typer.Argument(help="in_review, approved, rejected or draft")],
    reviewer: Annotated[str, typer.Option(help="Who decides")], comment: str = "",
    override: Annotated[str | None, typer.Option(help="Reason to approve despite failed checks")] = None,
) -> None:  # fmt: skip
    """Move a cell through review (recorded with reviewer, time and comment)."""
    with studio_session() as studio:
        view = studio.review_variant(ReviewRequest.of(variant_id=variant, to_status=status, reviewer=reviewer,
                                                      comment=comment, override_reason=override))  # fmt: skip
    out.print(f"{view.cell_id}: {view.status}", markup=False)


@campaign_app.command("region")
def region_(
    variant: int, box: Annotated[str, typer.Argument(help="X,Y,W,H")], instruction: str,
    reviewer: Annotated[str, typer.Option(help="Who asks")],
) -> None:  # fmt: skip
    """A reviewer's region + instruction: a new inpaint cell of that variant."""
    x, y, w, h = (int(v) for v in box.split(","))
    with studio_session() as studio:
        made = studio.mark_region(RegionInstructionRequest.of(variant_id=variant, reviewer=reviewer, x=x, y=y,
                                                              width=w, height=h, instruction=instruction))  # fmt: skip
    _cells([made])


@campaign_app.command("results")
def results_(campaign: int, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Import the ad platform's results CSV (cell_id, impressions, clicks, conversions) and show the winner."""
    with studio_session() as studio:
        studio.import_results(campaign, read_file(file))
        won = studio.campaign_winner(campaign)
    out.print(f"{won.status}: {won.cell_id or '-'}\n{won.detail}", markup=False)


@campaign_app.command("winner")
def winner(campaign: int, more: Annotated[int, typer.Option(help="Also make N cells like the winner")] = 0) -> None:
    """The winning cell (significant) or the leading one; optionally more cells from its lineage."""
    with studio_session() as studio:
        won = studio.campaign_winner(campaign)
        out.print(f"{won.status}: {won.cell_id or '-'}\n{won.detail}", markup=False)
        if more:
            _cells(studio.more_like_winner(campaign, more))


@app.command("export")
def export(
    campaign: int, channel: Annotated[list[str], typer.Option(help="Ad format key (repeat; see `formats`)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the zip")] = Path("."),
    include_all: Annotated[bool, typer.Option("--all", help="Every cell, not only approved ones")] = False,
) -> None:  # fmt: skip
    """Export a campaign's cells in every chosen channel size with a CSV + JSON manifest (a zip)."""
    with studio_session() as studio:
        view = studio.export_campaign(ExportRequest.of(campaign_id=campaign, channels=tuple(channel),
                                                       include="all" if include_all else "approved"))  # fmt: skip
        name, data = studio.export_file(view.id)
    target = out_dir / name
    atomic_write_bytes(target, data)
    out.print(f"export {view.id}: {view.file_count} files from {view.variant_count} cells -> {target}", markup=False)


@campaign_app.command("thresholds")
def thresholds(
    kit: int,
    palette: Annotated[str | None, typer.Option(help="PASS,WARN: mean ΔE00 to the kit palette (lower is better)")] = None,
    contrast: Annotated[str | None, typer.Option(help="PASS,WARN: WCAG text contrast (higher is better)")] = None,
    fidelity: Annotated[str | None, typer.Option(help="PASS,WARN: product SSIM vs the master (higher is better)")] = None,
) -> None:  # fmt: skip
    """Show or set a kit's brand-check thresholds (new cells are graded with them)."""
    with studio_session() as studio:
        current = studio.get_check_thresholds(kit).model_dump()
        for name, value in (("palette", palette), ("contrast", contrast), ("fidelity", fidelity)):
            if value is not None:
                try:
                    current[f"{name}_pass"], current[f"{name}_warn"] = (float(v) for v in value.split(","))
                except ValueError:
                    raise typer.BadParameter(f"{value!r}: use PASS,WARN (two numbers)", param_hint=f"--{name}") from None
        if palette or contrast or fidelity:
            try:
                wanted = CheckThresholds.model_validate(current)
            except ValueError as exc:
                raise typer.BadParameter(str(exc).splitlines()[-1]) from None
            studio.set_check_thresholds(kit, wanted)
        shown = studio.get_check_thresholds(kit)
    for name in ("palette", "contrast", "fidelity"):
        out.print(f"{name}: pass {getattr(shown, name + '_pass'):g}, warn {getattr(shown, name + '_warn'):g}", markup=False)
