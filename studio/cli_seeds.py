"""CLI pieces for variation seeds, batch count and ad formats (``generate`` options), plus the
``formats`` and ``grid`` commands. Registered on the shared typer app by importing this module."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from studio.cli_base import app, err, out, studio_session
from studio.fileio import atomic_write_bytes
from studio.formats import AD_FORMATS, LAST_CHECKED
from studio.grid_schemas import GridAxis
from studio.schemas import GenerateRequest


def parse_size(value: str | None, option: str = "--seed-resize-from") -> tuple[int, int]:
    """``WxH`` -> (W, H); None -> (0, 0) (off)."""
    if not value:
        return 0, 0
    w, sep, h = value.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise typer.BadParameter(f"{value!r}: use WIDTHxHEIGHT, e.g. 512x512", param_hint=option)
    return int(w), int(h)


def seed_request_fields(
    *, batch_count: int, subseed: int, subseed_strength: float, seed_resize_from: str | None, ad_format: str | None
) -> dict[str, Any]:
    """The GenerateRequest fields of the ``generate`` options (validated by the request itself)."""
    w, h = parse_size(seed_resize_from)
    return {"batch_count": batch_count, "subseed": subseed, "subseed_strength": subseed_strength,
            "seed_resize_from_w": w, "seed_resize_from_h": h, "format": ad_format}  # fmt: skip


def parse_axis(value: str, option: str) -> GridAxis:
    """``PARAM=V1,V2,...`` (``lora_weight:LORA_ID=0,0.5,1``; quote values with commas, CSV style)."""
    head, sep, rest = value.partition("=")
    param, _, lora = head.partition(":")
    if not sep or not rest.strip():
        raise typer.BadParameter(f"{value!r}: use PARAM=V1,V2 (e.g. guidance_scale=4,7,10)", param_hint=option)
    values = tuple(v.strip() for v in next(csv.reader([rest], skipinitialspace=True)))
    if lora and not lora.isdigit():
        raise typer.BadParameter(f"{value!r}: use lora_weight:LORA_ID=0,0.5,1", param_hint=option)
    return GridAxis.of(param=param.strip(), values=values, lora_id=int(lora) if lora else None)


@app.command("formats")
def formats_list() -> None:
    """The ad formats ``generate --format`` accepts, with their exact pixel sizes."""
    table = Table("format", "channel", "size", "max KB", "label")
    for f in AD_FORMATS.values():
        table.add_row(f.key, f.channel, f"{f.width}x{f.height}", str(f.max_kb or ""), f.label)
    out.print(table)
    out.print(f"sizes last checked {LAST_CHECKED} (third-party guides and platform docs; re-check before a campaign)")


@app.command()
def grid(
    prompt: str,
    x: Annotated[str, typer.Option(help="X axis: PARAM=V1,V2 (seed, guidance_scale, num_inference_steps, "
                                   "scheduler, subseed_strength, prompt_sr, lora_weight:LORA_ID)")],
    y: Annotated[str | None, typer.Option(help="Y axis, same form")] = None,
    kit: Annotated[int | None, typer.Option(help="Brand kit id")] = None,
    steps: int = 20,
    cfg: Annotated[float, typer.Option(help="Guidance scale (CFG)")] = 7.0,
    scheduler: str = "Euler",
    seed: Annotated[int, typer.Option(help="-1 = random (the same for every cell)")] = -1,
    subseed: Annotated[int, typer.Option(help="Variation seed (-1 = random)")] = -1,
    subseed_strength: Annotated[float, typer.Option(help="Variation strength")] = 0.0,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the grid PNG here")] = None,
) -> None:
    """An X/Y grid of seed-locked variations: every cell is a recorded generation."""
    with studio_session() as studio:
        req = GenerateRequest.of(prompt=prompt, kit_id=kit, num_inference_steps=steps, guidance_scale=cfg,
                                 scheduler=scheduler, seed=seed, subseed=subseed, subseed_strength=subseed_strength)  # fmt: skip
        view = studio.generate_grid(req, parse_axis(x, "--x"), parse_axis(y, "--y") if y else None)
        sheet = view.generation.images[0]
        if out_file is not None:
            atomic_write_bytes(out_file, studio.read_blob(sheet.blob_sha256))
    for w in view.generation.warnings:
        err.print(f"warning: {w}", markup=False)
    out.print(f"grid {view.generation.id}: {view.columns}x{view.rows} cells "
              f"(generations {', '.join(str(c.id) for c in view.cells)}), file {sheet.blob_sha256[:12]}", markup=False)  # fmt: skip
