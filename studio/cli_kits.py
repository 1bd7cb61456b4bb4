"""``brand-studio kit ...``: brand-kit commands (registered on the main CLI's ``kit`` group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from studio.cli_base import kit_app, out, read_file, studio_session
from studio.errors import StudioError
from studio.schemas import (
    CaptionBulkEdit,
    KitCreateRequest,
    RightsRequest,
    StyleGuideRequest,
    UploadedFile,
)


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
        uploads = [UploadedFile(name=f.name, data=read_file(f)) for f in files]
        assets = studio.add_photos(kit_id, uploads)
    for a in assets:
        out.print(f"photo {a.id}: {a.label} {a.width}x{a.height}" + "".join(f" [warn: {w}]" for w in a.warnings), markup=False)


@kit_app.command("add-logos")
def kit_add_logos(kit_id: int, files: list[Path]) -> None:
    """Add logos (PNG/WebP, transparency kept; not used for training)."""
    with studio_session() as studio:
        assets = studio.add_logos(kit_id, [UploadedFile(name=f.name, data=read_file(f)) for f in files])
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
            found = studio.extract_style_from_pdf(UploadedFile(name=from_pdf.name, data=read_file(from_pdf)))
            out.print(f"{found.pages} pages; colours: " + ", ".join(f"{c.hex} {c.name}" for c in found.colors), markup=False)
            out.print("fonts: " + ", ".join(found.fonts), markup=False)
            return
        if palette_from is not None:
            swatches = studio.extract_palette(UploadedFile(name=palette_from.name, data=read_file(palette_from)))
            out.print(", ".join(f"{sw.hex} {sw.name} {sw.share:.0%}" for sw in swatches), markup=False)
            return
        if from_json is not None:
            try:
                data = json.loads(read_file(from_json))
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
        kit = studio.import_kit_archive(read_file(archive))
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
