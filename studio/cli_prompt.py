"""CLI: the composed prompt (``prompt``) and generation settings read back from a PNG (``read-png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from studio.cli_base import app, err, out, read_file, studio_session
from studio.schemas import GenerateRequest


@app.command("prompt")
def prompt_preview(
    prompt: str,
    negative: Annotated[str, typer.Option("--negative", help="Negative prompt")] = "",
    kit: Annotated[int | None, typer.Option(help="Brand kit id: adds its trigger, class noun, style and don'ts")] = None,
) -> None:
    """Show the final prompt and negative prompt the model reads, with token and chunk counts."""
    with studio_session() as studio:
        view = studio.compose_prompt(GenerateRequest.of(prompt=prompt, negative_prompt=negative, kit_id=kit))
    out.print(f"prompt ({view.prompt_tokens} tokens, {view.prompt_chunks} chunk(s) of {view.chunk_length}):",
              markup=False)  # fmt: skip
    out.print(f"  {view.prompt}", markup=False)
    out.print(f"negative prompt ({view.negative_tokens} tokens, {view.negative_chunks} chunk(s)):", markup=False)
    out.print(f"  {view.negative_prompt}", markup=False)
    for note in view.notes:
        err.print(f"note: {note}", markup=False)


@app.command("read-png")
def read_png(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A PNG made by us or by AUTOMATIC1111")],
    generate: Annotated[bool, typer.Option("--generate", help="Also generate with the settings read")] = False,
) -> None:
    """Read the generation settings of a PNG (ours: the JSON recipe; AUTOMATIC1111's: its parameters),
    print them as a request, say what could not be carried over, and optionally generate with them."""
    with studio_session() as studio:
        result = studio.request_from_png(read_file(file))
        out.print(result.request.model_dump_json(indent=2, exclude_defaults=True), markup=False, highlight=False)
        err.print(f"read from: {result.source}", markup=False)
        if result.unmapped:
            err.print(f"not carried over: {', '.join(result.unmapped)}", markup=False)
        for note in result.notes:
            err.print(f"note: {note}", markup=False)
        if generate:
            gen = studio.generate(result.request)
            out.print(f"generation {gen.id}: {len(gen.images)} image(s), seed {gen.seed}, {gen.width}x{gen.height}",
                      markup=False)  # fmt: skip
