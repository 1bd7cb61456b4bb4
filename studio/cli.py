"""``brand-studio``: every UI action as a command calling the same facade method.

Errors a user can fix exit with code 2 and a one-line message; nothing prints a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from studio.api import Studio, open_studio
from studio.errors import StudioError
from studio.fileio import atomic_write_bytes
from studio.schemas import (
    CaptionBulkEdit,
    GenerateRequest,
    GenerationView,
    KitCreateRequest,
    LoraChoice,
    RightsRequest,
    StyleGuideRequest,
    TrainRequest,
    UploadedFile,
)
from studio.settings import Settings

app = typer.Typer(help="Brand Studio: brand kit -> LoRA -> seed-locked, on-brand images.", no_args_is_help=True)
kit_app = typer.Typer(help="Brand kits: product photos, trigger token, class noun.", no_args_is_help=True)
app.add_typer(kit_app, name="kit")
out = Console()
err = Console(stderr=True)
T = TypeVar("T")


@contextmanager
def studio_session() -> Iterator[Studio]:
    """Open the studio, turn a StudioError into exit code 2, always close the database."""
    studio = None
    try:
        studio = open_studio(Settings())
        yield studio
    except StudioError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    finally:
        if studio is not None:
            studio.close()


def _placeholder_note(studio: Studio) -> None:
    if studio.model_info().is_placeholder:
        err.print(
            "note: the built-in model is a placeholder (random weights, draws noise). "
            "Set BRAND_STUDIO_BASE_MODEL to a real model for real images."
        )


@app.command()
def doctor() -> None:
    """Check the install: torch, device, bitsandbytes, model, database, disk. Exit 1 if broken."""
    with studio_session() as studio:
        report = studio.doctor()
    table = Table("check", "ok", "detail")
    for c in report.checks:
        table.add_row(c.name, "yes" if c.ok else "NO", c.detail)
    out.print(table)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def model() -> None:
    """Show the base model in use."""
    with studio_session() as studio:
        info = studio.model_info()
    out.print(f"{info.ref}: {info.name} [{info.kind}, {info.family}, hash {info.short_hash}, {info.default_size}px]")
    if info.is_placeholder:
        out.print("placeholder model: images are coloured noise. Set BRAND_STUDIO_BASE_MODEL for real ones.")


@kit_app.command("create")
def kit_create(
    name: str,
    trigger: Annotated[str, typer.Option(help="Rare token that names the product, e.g. brx_bottle")],
    class_noun: Annotated[str, typer.Option(help="What the product is, e.g. bottle")],
    description: str = "",
    from_folder: Annotated[Path | None, typer.Option(help="Folder of product photos to add")] = None,
) -> None:
    """Create a brand kit, optionally with the photos in a folder."""
    with studio_session() as studio:
        req = KitCreateRequest.of(name=name, trigger_token=trigger, class_noun=class_noun, description=description)
        kit = studio.create_kit_from_folder(req, from_folder) if from_folder else studio.create_kit(req)
    out.print(f"kit {kit.id} '{kit.name}' ({kit.slug}) with {kit.photo_count} photos", markup=False)


@kit_app.command("add-photos")
def kit_add_photos(kit_id: int, files: list[Path]) -> None:
    """Add product photos to a kit (all or nothing)."""
    with studio_session() as studio:
        uploads = [UploadedFile(name=f.name, data=_read_file(f)) for f in files]
        assets = studio.add_photos(kit_id, uploads)
    for a in assets:
        out.print(f"photo {a.id}: {a.label} {a.width}x{a.height}" + "".join(f" [warn: {w}]" for w in a.warnings), markup=False)


@kit_app.command("add-logos")
def kit_add_logos(kit_id: int, files: list[Path]) -> None:
    """Add logos (PNG/WebP, transparency kept; not used for training)."""
    with studio_session() as studio:
        assets = studio.add_logos(kit_id, [UploadedFile(name=f.name, data=_read_file(f)) for f in files])
    for a in assets:
        out.print(f"logo {a.id}: {a.label} {a.width}x{a.height}", markup=False)


@kit_app.command("show")
def kit_show(kit_id: int) -> None:
    """A kit's photos with captions, warnings and rights, its style guide and versions."""
    with studio_session() as studio:
        kit = studio.get_kit(kit_id)
        photos = studio.list_assets(kit_id)
        style = studio.get_style_guide(kit_id)
        versions = studio.list_versions(kit_id)
    out.print(f"kit {kit.id} '{kit.name}': trigger {kit.trigger_token}, class {kit.class_noun}, "
              f"{kit.photo_count} photos, {kit.logo_count} logos, background {kit.background_color}", markup=False)  # fmt: skip
    table = Table("id", "label", "size", "caption", "rights", "warnings")
    for a in photos:
        rights = f"{a.licence or '-'} / {'consent' if a.consent else 'no consent'}"
        table.add_row(str(a.id), a.label, f"{a.width}x{a.height}", a.caption, rights,
                      "; ".join(a.warnings + a.caption_warnings))  # fmt: skip
    out.print(table)
    out.print(f"style fragment: {style.style_fragment or '-'}", markup=False)
    out.print(f"negative prompt: {style.negative_prompt or '-'}", markup=False)
    out.print("versions: " + (", ".join(f"v{v.number} ({v.photo_count} photos)" for v in versions) or "none"))


@kit_app.command("caption")
def kit_caption(
    kit_id: int,
    asset_id: Annotated[int | None, typer.Option("--photo", help="One photo's id (else: all photos)")] = None,
    text: Annotated[str | None, typer.Option(help="New caption for --photo")] = None,
    prefix: str = "",
    suffix: str = "",
    find: str = "",
    replace: str = "",
) -> None:
    """Edit captions: one photo (--photo ID --text ...) or all at once (prefix/suffix, find/replace)."""
    with studio_session() as studio:
        if asset_id is not None:
            if text is None:
                raise StudioError("give the new caption with --text", field="text")
            rows = [studio.set_caption(kit_id, asset_id, text)]
        else:
            edit = CaptionBulkEdit.of(prefix=prefix, suffix=suffix, find=find, replace=replace)
            rows = studio.bulk_edit_captions(kit_id, edit)
    for a in rows:
        out.print(f"photo {a.id}: {a.caption}" + "".join(f" [warn: {w}]" for w in a.caption_warnings), markup=False)


@kit_app.command("rights")
def kit_rights(kit_id: int, asset_id: int, source: str = "", licence: str = "", consent: bool = False) -> None:
    """Record a photo's source, licence and consent (carried into the LoRA's metadata)."""
    with studio_session() as studio:
        a = studio.set_rights(kit_id, asset_id, RightsRequest.of(source=source, licence=licence, consent=consent))
    out.print(f"photo {a.id}: source '{a.source}', licence '{a.licence}', consent {a.consent}", markup=False)


@kit_app.command("style")
def kit_style(
    kit_id: int,
    from_json: Annotated[Path | None, typer.Option(help="Style guide JSON: palette, fonts, tone_words, dos, "
                                                        "donts, required_terms, banned_terms")] = None,  # fmt: skip
    from_pdf: Annotated[Path | None, typer.Option(help="Show what a PDF style guide contains (not saved)")] = None,
    palette_from: Annotated[Path | None, typer.Option(help="Show a reference image's palette (not saved)")] = None,
) -> None:
    """Show, set (--from-json) or extract (--from-pdf, --palette-from) a kit's style guide."""
    with studio_session() as studio:
        if from_pdf is not None:
            found = studio.extract_style_from_pdf(UploadedFile(name=from_pdf.name, data=_read_file(from_pdf)))
            out.print(f"{found.pages} pages; colours: " + ", ".join(f"{c.hex} {c.name}" for c in found.colors), markup=False)
            out.print("fonts: " + ", ".join(found.fonts), markup=False)
            return
        if palette_from is not None:
            swatches = studio.extract_palette(UploadedFile(name=palette_from.name, data=_read_file(palette_from)))
            out.print(", ".join(f"{sw.hex} {sw.name} {sw.share:.0%}" for sw in swatches), markup=False)
            return
        if from_json is not None:
            try:
                data = json.loads(_read_file(from_json))
            except ValueError as exc:
                raise StudioError(f"{from_json.name} is not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise StudioError(f"{from_json.name} must hold a JSON object")
            studio.set_style_guide(kit_id, StyleGuideRequest.of(**data))
        style = studio.get_style_guide(kit_id)
    out.print(json.dumps(style.model_dump(), indent=2), markup=False)


@kit_app.command("version")
def kit_version(kit_id: int) -> None:
    """Freeze the kit as an immutable version (training does this by itself)."""
    with studio_session() as studio:
        v = studio.create_version(kit_id)
    out.print(f"kit {kit_id} version {v.number}: {v.photo_count} photos, manifest {v.manifest_sha256[:12]}")


@kit_app.command("export")
def kit_export(
    kit_id: int,
    out_path: Annotated[Path, typer.Option("--out", help="Target folder (training sets) or .zip (archive)")],
    fmt: Annotated[str, typer.Option("--format", help="imagefolder, kohya or archive")] = "imagefolder",
) -> None:
    """Export the training set (Hugging Face imagefolder / kohya folders) or the whole kit as an archive."""
    with studio_session() as studio:
        if fmt == "archive":
            studio.export_kit_archive(kit_id, out_path)
        elif fmt in ("imagefolder", "kohya"):
            studio.export_training_set(kit_id, fmt, out_path)  # type: ignore[arg-type]
        else:
            raise StudioError("use imagefolder, kohya or archive", field="format")
    out.print(f"exported kit {kit_id} as {fmt} to {out_path}", markup=False)


@kit_app.command("import")
def kit_import(archive: Path) -> None:
    """Import a kit archive made by `kit export --format archive` (all or nothing)."""
    with studio_session() as studio:
        kit = studio.import_kit_archive(_read_file(archive))
    out.print(f"imported kit {kit.id} '{kit.name}' with {kit.photo_count} photos", markup=False)


@kit_app.command("list")
def kit_list() -> None:
    """List brand kits."""
    with studio_session() as studio:
        kits = studio.list_kits()
    table = Table("id", "name", "trigger", "class", "photos")
    for k in kits:
        table.add_row(str(k.id), k.name, k.trigger_token, k.class_noun, str(k.photo_count))
    out.print(table)


@app.command()
def train(
    kit_id: int,
    steps: Annotated[int | None, typer.Option(help="Default: the preset for the base model")] = None,
    rank: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    lr: Annotated[float | None, typer.Option(help="Default: the preset")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    resolution: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    seed: int = 0,
    name: Annotated[str | None, typer.Option(help="LoRA name; default <kit>-vN")] = None,
) -> None:
    """Train a LoRA on a kit's photos and register it."""
    with studio_session() as studio:
        req = TrainRequest.of(kit_id=kit_id, max_train_steps=steps, rank=rank, learning_rate=lr,
                              train_batch_size=batch_size, resolution=resolution, seed=seed, name=name)  # fmt: skip
        total = steps or studio.training_preset().max_train_steps
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("training", total=total)
            run = studio.train_lora(req, lambda p: bar.update(task, completed=p.step, description=f"loss {p.loss:.4f}"))
    lora = run.lora
    assert lora is not None  # a succeeded run always has its LoRA
    out.print(f"LoRA {lora.id} '{lora.name}' sha256 {lora.sha256[:12]}: {run.steps} steps, "
              f"loss {run.first_loss:.4f} -> {run.final_loss:.4f}", markup=False)  # fmt: skip


@app.command("loras")
def loras_list(kit: Annotated[int | None, typer.Option(help="Only this kit's LoRAs")] = None) -> None:
    """List registered LoRAs."""
    with studio_session() as studio:
        rows = studio.list_loras(kit)
    table = Table("id", "name", "kit", "rank", "hash", "trigger")
    for x in rows:
        table.add_row(str(x.id), x.name, str(x.kit_id or ""), str(x.rank), x.short_hash, x.trigger_phrase)
    out.print(table)


def _parse_lora(value: str) -> LoraChoice:
    lora_id, _, weight = value.partition(":")
    try:
        return LoraChoice(lora_id=int(lora_id), weight=float(weight) if weight else 1.0)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use LORA_ID or LORA_ID:WEIGHT, e.g. 3:0.8") from None


@app.command()
def generate(
    prompt: str,
    negative: Annotated[str, typer.Option("--negative", help="Negative prompt")] = "",
    kit: Annotated[int | None, typer.Option(help="Brand kit id: adds its trigger and class noun")] = None,
    lora: Annotated[list[str] | None, typer.Option(help="LORA_ID[:WEIGHT], repeatable")] = None,
    steps: int = 20,
    cfg: Annotated[float, typer.Option(help="Guidance scale (CFG)")] = 7.0,
    scheduler: str = "Euler",
    width: int | None = None,
    height: int | None = None,
    seed: Annotated[int, typer.Option(help="-1 = random (recorded)")] = -1,
    batch_size: int = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Also write the PNGs here")] = None,
) -> None:
    """Generate seed-locked images; each is stored with its recipe."""
    with studio_session() as studio:
        req = GenerateRequest.of(
            prompt=prompt, negative_prompt=negative, kit_id=kit, loras=tuple(_parse_lora(v) for v in lora or []),
            num_inference_steps=steps, guidance_scale=cfg, scheduler=scheduler, width=width, height=height,
            seed=seed, batch_size=batch_size,
        )  # fmt: skip
        _placeholder_note(studio)
        gen = _with_steps_bar(steps, lambda cb: studio.generate(req, cb))
        _report_generation(studio, gen, out_dir)


@app.command()
def rerender(
    generation_id: int, out_dir: Annotated[Path | None, typer.Option("--out", help="Also write the PNGs here")] = None
) -> None:
    """Render a recorded generation again from its recipe (identical pixels on the same machine)."""
    with studio_session() as studio:
        original = studio.get_generation(generation_id)
        gen = _with_steps_bar(original.num_inference_steps, lambda cb: studio.rerender(generation_id, cb))
        _report_generation(studio, gen, out_dir)
        same = [a.pixel_sha256 == b.pixel_sha256 for a, b in zip(original.images, gen.images, strict=True)]
    out.print("identical pixels" if all(same) else "PIXELS DIFFER from the original", markup=False)
    if not all(same):
        raise typer.Exit(1)


@app.command()
def history(limit: int = 20, kit: int | None = None) -> None:
    """Recent generations, newest first."""
    with studio_session() as studio:
        gens = studio.list_generations(limit=limit, kit_id=kit)
    table = Table("id", "when", "seed", "size", "images", "prompt")
    for g in gens:
        table.add_row(str(g.id), g.created_at.strftime("%Y-%m-%d %H:%M"), str(g.seed), f"{g.width}x{g.height}",
                      str(len(g.images)), g.prompt[:60])  # fmt: skip
    out.print(table)


def _with_steps_bar(total: int, run: Callable[[Callable[[int, int], None]], T]) -> T:
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating", total=total)
        return run(lambda step, _total: bar.update(task, completed=step))


def _report_generation(studio: Studio, gen: GenerationView, out_dir: Path | None) -> None:
    out.print(f"generation {gen.id}: {len(gen.images)} image(s), seed {gen.seed}, {gen.width}x{gen.height}")
    for w in gen.warnings:
        err.print(f"warning: {w}", markup=False)
    for img in gen.images:
        line = f"  image {img.index}: seed {img.seed} file {img.blob_sha256[:12]}"
        if out_dir is not None:
            target = out_dir / f"gen{gen.id}-{img.index}-{img.seed}.png"
            atomic_write_bytes(target, studio.read_blob(img.blob_sha256))
            line += f" -> {target}"
        out.print(line, markup=False)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StudioError(f"cannot read {path}: {exc.strerror}") from None


def main() -> None:
    logging.basicConfig(level=Settings().log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    app()


if __name__ == "__main__":
    main()
