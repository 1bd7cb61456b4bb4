"""Facade procedures for turning a kit into a clean training set: uploads, captions, rights, style guide,
immutable versions, exports and kit archives. Called only through :class:`studio.api.Studio`.
"""

from __future__ import annotations

import io
import logging
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import brand_kits
import storage
from studio import errors
from studio.schemas import (
    AssetView,
    CaptionBulkEdit,
    ExtractedStyleView,
    KitVersionView,
    KitView,
    PaletteEntry,
    StyleGuideRequest,
    StyleGuideView,
    SwatchView,
    UploadedFile,
)
from studio.views import asset_view, kit_view, photo_count

if TYPE_CHECKING:
    from studio.api import Studio

logger = logging.getLogger(__name__)

ExportFormat = Literal["imagefolder", "kohya"]
#: The side each base-model family trains at; smaller uploads get a warning (never a silent resize).
TRAIN_SIDE = {"sd1": 512, "sd2": 768, "sdxl": 1024}
NEAR_DUPLICATE_DISTANCE = 6
KOHYA_REPEATS = 10


def hex_rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


# ----- uploads ------------------------------------------------------------------------------------
def ingest(studio: Studio, kit_id: int | None, background: str, files: Sequence[UploadedFile],
           kind: Literal["photo", "logo"]) -> list[tuple[brand_kits.ValidatedImage, str, list[str]]]:  # fmt: skip
    """Validate every file (all or nothing) and compute its perceptual hash and extra warnings."""
    limits = brand_kits.IngestLimits(
        max_bytes=studio.settings.max_upload_mb * 1024 * 1024,
        recommended_side=TRAIN_SIDE.get(studio.resolve().family, 512),
    )
    if not files:
        raise errors.InvalidInput("no files were uploaded", field="photos")
    if len(files) > limits.max_files:
        raise errors.InvalidInput(f"too many files ({len(files)}); at most {limits.max_files} at once", field="photos")
    out = []
    for f in files:
        try:
            if kind == "logo" and not f.data.startswith((b"\x89PNG", b"RIFF")):
                raise brand_kits.UnsupportedImageFormat("logos must be PNG or WebP (to keep their transparency)")
            valid = brand_kits.validate_image(f.data, f.name, limits, hex_rgb(background), keep_alpha=kind == "logo")
        except brand_kits.KitError as exc:
            label = brand_kits.safe_label(f.name)
            raise errors.InvalidInput(f"{label}: {exc}; nothing was stored", field="photos") from exc
        out.append((valid, brand_kits.perceptual_hash(valid.png_bytes), list(valid.warnings)))
    _flag_near_duplicates(studio, kit_id, out)
    return out


def _flag_near_duplicates(
    studio: Studio, kit_id: int | None, items: list[tuple[brand_kits.ValidatedImage, str, list[str]]]
) -> None:
    existing: list[tuple[str, str]] = []
    if kit_id is not None:
        with studio.db.session() as s:
            existing = [(a.original_name, a.phash) for a in storage.AssetRepo(s).list_for_kit(kit_id) if a.phash]
    seen = list(existing)
    for valid, phash, warnings in items:
        for label, other in seen:
            distance = brand_kits.hamming(phash, other)
            if distance <= NEAR_DUPLICATE_DISTANCE:
                warnings.append(f"looks like a near-duplicate of {label} (distance {distance}); duplicates "
                                "make the LoRA overfit that shot")  # fmt: skip
                break
        seen.append((valid.label, phash))


def store_assets(studio: Studio, s: Any, kit: Any, kind: Literal["photo", "logo"],
                 items: list[tuple[brand_kits.ValidatedImage, str, list[str]]]) -> list[AssetView]:  # fmt: skip
    """Write the blobs (before the rows that name them) and add the asset rows in session ``s``."""
    views = []
    guide = style_guide_of(kit)
    for valid, phash, warnings in items:
        ref = studio.blobs.put_bytes(valid.png_bytes)
        storage.BlobRepo(s).record(ref, "image/png")
        mask_sha = None
        if valid.mask_png is not None:
            mask_ref = studio.blobs.put_bytes(valid.mask_png)
            storage.BlobRepo(s).record(mask_ref, "image/png")
            mask_sha = mask_ref.sha256
        caption = brand_kits.default_caption(kit.trigger_token, kit.class_noun) if kind == "photo" else ""
        row = storage.AssetRepo(s).add(kit.id, ref.sha256, kind, valid.label, valid.width, valid.height, caption,
                                       mask_sha256=mask_sha, phash=phash, warnings=warnings)  # fmt: skip
        views.append(asset_view(row, caption_lint(studio, row.caption, kit.trigger_token, guide, kind)))
    return views


# ----- captions and rights ------------------------------------------------------------------------
def caption_lint(studio: Studio, caption: str, trigger: str, guide: brand_kits.StyleGuide,
                 kind: str = "photo") -> tuple[str, ...]:  # fmt: skip
    if kind != "photo":
        return ()
    return tuple(brand_kits.lint_caption(caption, trigger, banned_terms=guide.banned_terms,
                                         token_count=studio.token_counter()))  # fmt: skip


def set_captions(studio: Studio, kit_id: int, captions: dict[int, str]) -> list[AssetView]:
    clean = {asset_id: brand_kits.validate_caption(text) for asset_id, text in captions.items()}
    with studio.db.session() as s:
        kit = storage.KitRepo(s).require(kit_id)
        rows = storage.AssetRepo(s).set_captions(kit_id, clean)
        guide = style_guide_of(kit)
        return [asset_view(r, caption_lint(studio, r.caption, kit.trigger_token, guide)) for r in rows]


def bulk_edit_captions(studio: Studio, kit_id: int, edit: CaptionBulkEdit) -> list[AssetView]:
    with studio.db.session() as s:
        photos = storage.AssetRepo(s).list_for_kit(kit_id, "photo")
        current = {a.id: a.caption for a in photos}
    if not current:
        raise errors.InvalidInput("this kit has no photos to caption", field="kit_id")
    edited = brand_kits.apply_bulk_edit(current, prefix=edit.prefix, suffix=edit.suffix, find=edit.find,
                                        replace=edit.replace)  # fmt: skip
    return set_captions(studio, kit_id, edited)


# ----- style guide --------------------------------------------------------------------------------
def style_guide_of(kit: Any) -> brand_kits.StyleGuide:
    return brand_kits.StyleGuide.from_dict(kit.style_guide or {})


def style_view(guide: brand_kits.StyleGuide) -> StyleGuideView:
    return StyleGuideView(
        palette=tuple(PaletteEntry(hex=c.hex, name=c.name) for c in guide.palette), fonts=guide.fonts,
        tone_words=guide.tone_words, dos=guide.dos, donts=guide.donts, required_terms=guide.required_terms,
        banned_terms=guide.banned_terms, style_fragment=brand_kits.style_fragment(guide),
        negative_prompt=brand_kits.negative_prompt(guide),
    )  # fmt: skip


def set_style_guide(studio: Studio, kit_id: int, req: StyleGuideRequest) -> StyleGuideView:
    guide = brand_kits.make_style_guide(
        palette=[(p.hex, p.name) for p in req.palette], fonts=req.fonts, tone_words=req.tone_words, dos=req.dos,
        donts=req.donts, required_terms=req.required_terms, banned_terms=req.banned_terms,
    )  # fmt: skip
    with studio.db.session() as s:
        storage.KitRepo(s).update(kit_id, style_guide=guide.to_dict())
    return style_view(guide)


def extract_from_pdf(upload: UploadedFile) -> ExtractedStyleView:
    found = brand_kits.extract_pdf_guide(upload.data)
    return ExtractedStyleView(
        text_excerpt=found.text[:4000],
        colors=tuple(PaletteEntry(hex=h, name=brand_kits.nearest_color_name(h)) for h in found.colors),
        fonts=found.fonts, pages=found.pages, warnings=found.warnings,
    )  # fmt: skip


def extract_palette(upload: UploadedFile, k: int = 6) -> tuple[SwatchView, ...]:
    return tuple(SwatchView(hex=sw.hex, name=sw.name, share=sw.share)
                 for sw in brand_kits.extract_palette(upload.data, k=k))  # fmt: skip


# ----- versions -----------------------------------------------------------------------------------
def snapshot_of(kit: Any, assets: Sequence[Any]) -> brand_kits.KitSnapshot:
    records = tuple(
        brand_kits.AssetRecord(sha256=a.blob_sha256, kind=a.kind, label=a.original_name, caption=a.caption,
                               width=a.width, height=a.height, source=a.source, licence=a.licence,
                               consent=a.consent, mask_sha256=a.mask_sha256)  # fmt: skip
        for a in assets
    )
    return brand_kits.KitSnapshot(name=kit.name, slug=kit.slug, trigger_token=kit.trigger_token,
                                  class_noun=kit.class_noun, description=kit.description,
                                  background=kit.background_color, style_guide=dict(kit.style_guide or {}),
                                  assets=records)  # fmt: skip


def make_version(studio: Studio, kit_id: int) -> KitVersionView:
    """Freeze the kit as it is now (same content -> the same version, never a duplicate)."""
    with studio.db.session() as s:
        kit = storage.KitRepo(s).require(kit_id)
        snap = snapshot_of(kit, storage.AssetRepo(s).list_for_kit(kit_id))
        shas = {a.sha256 for a in snap.assets} | {a.mask_sha256 for a in snap.assets if a.mask_sha256}
        version, _ = storage.KitVersionRepo(s).create_or_get(kit_id, snap.to_dict(), snap.manifest_sha256(), shas)
        return version_view(version)


def version_view(version: Any) -> KitVersionView:
    count = sum(1 for a in version.manifest.get("assets", []) if a.get("kind") == "photo")
    return KitVersionView(id=version.id, kit_id=version.kit_id, number=version.number,
                          manifest_sha256=version.manifest_sha256, photo_count=count,
                          created_at=version.created_at)  # fmt: skip


def version_snapshot(studio: Studio, version_id: int) -> brand_kits.KitSnapshot:
    with studio.db.session() as s:
        version = storage.KitVersionRepo(s).get(version_id)
        if version is None:
            raise errors.NotFound(f"kit version {version_id} does not exist", field="version_id")
        return brand_kits.KitSnapshot.from_dict(version.manifest)


def training_items(studio: Studio, snap: brand_kits.KitSnapshot) -> list[brand_kits.TrainingItem]:
    return [brand_kits.TrainingItem(stem=f"photo_{i:04d}_{a.sha256[:8]}", png_bytes=studio.read_blob(a.sha256),
                                    caption=a.caption)
            for i, a in enumerate(a for a in snap.assets if a.kind == "photo")]  # fmt: skip


def rights_metadata(snap: brand_kits.KitSnapshot) -> dict[str, str]:
    photos = [a for a in snap.assets if a.kind == "photo"]
    licences = sorted({a.licence for a in photos if a.licence}) or ["unspecified"]
    missing = sum(1 for a in photos if not a.consent)
    return {
        "modelspec.license": ", ".join(licences),
        "ss_training_comment": f"Brand Studio kit {snap.slug}: {len(photos)} photos; licences "
                               f"{', '.join(licences)}; {missing} without recorded consent",
    }  # fmt: skip


# ----- exports and archives -----------------------------------------------------------------------
def export_training_set(studio: Studio, kit_id: int, fmt: ExportFormat, target: Path) -> Path:
    version = make_version(studio, kit_id)
    snap = version_snapshot(studio, version.id)
    items = training_items(studio, snap)
    if not items:
        raise errors.InvalidInput("this kit has no photos to export", field="kit_id")
    if fmt == "imagefolder":
        return brand_kits.write_imagefolder(items, target)
    return brand_kits.write_kohya_folder(items, target, repeats=KOHYA_REPEATS, trigger_token=snap.trigger_token,
                                         class_noun=snap.class_noun)  # fmt: skip


def export_training_zip(studio: Studio, kit_id: int, fmt: ExportFormat) -> bytes:
    """The exported folder as zip bytes (for a browser download)."""
    with tempfile.TemporaryDirectory(dir=studio.settings.work_dir) as tmp:
        root = Path(tmp) / "export"
        export_training_set(studio, kit_id, fmt, root)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                zf.write(path, path.relative_to(root).as_posix())
        return buffer.getvalue()


def export_archive(studio: Studio, kit_id: int, target: Path) -> Path:
    version = make_version(studio, kit_id)
    snap = version_snapshot(studio, version.id)
    return brand_kits.export_kit_archive(snap, studio.read_blob, target)


def export_archive_bytes(studio: Studio, kit_id: int) -> bytes:
    with tempfile.TemporaryDirectory(dir=studio.settings.work_dir) as tmp:
        return export_archive(studio, kit_id, Path(tmp) / "kit.zip").read_bytes()


def import_archive(studio: Studio, data: bytes | Path) -> KitView:
    """All or nothing: the archive is fully validated in memory before anything is stored."""
    imported = brand_kits.read_kit_archive(data)
    snap = imported.snapshot
    with studio.db.session() as s:
        if storage.KitRepo(s).get_by_slug(snap.slug) is not None or storage.KitRepo(s).get_by_trigger(
            snap.trigger_token
        ):
            raise errors.Conflict(f"a kit named {snap.slug!r} or with trigger {snap.trigger_token!r} already exists "
                                  "here; rename or delete it first, then import again")  # fmt: skip
    refs = {sha: studio.blobs.put_bytes(data) for sha, data in sorted(imported.blobs.items())}
    with studio.db.session() as s:
        for ref in refs.values():
            storage.BlobRepo(s).record(ref, "image/png")
        kit = storage.KitRepo(s).create(snap.slug, snap.name, snap.trigger_token, snap.class_noun,
                                        snap.description, background_color=snap.background,
                                        style_guide=snap.style_guide)  # fmt: skip
        for a in snap.assets:
            storage.AssetRepo(s).add(kit.id, a.sha256, a.kind, a.label, a.width, a.height, a.caption,
                                     mask_sha256=a.mask_sha256, source=a.source, licence=a.licence,
                                     consent=a.consent, phash=brand_kits.perceptual_hash(imported.blobs[a.sha256]))  # fmt: skip
        kit = storage.KitRepo(s).require(kit.id)
        return kit_view(kit, photo_count(kit))
