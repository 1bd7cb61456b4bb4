"""The brand-kit half of the Studio facade (a mixin of :class:`studio.api.Studio`): uploads, captions,
rights, style guide, versions, exports and archives. The UI and CLI still call only ``Studio``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import brand_kits
import storage
from studio import errors
from studio.boundary import translate_errors
from studio.schemas import (
    AssetView,
    CaptionBulkEdit,
    ExtractedStyleView,
    KitCreateRequest,
    KitVersionView,
    KitView,
    RightsRequest,
    StyleGuideRequest,
    StyleGuideView,
    SwatchView,
    UploadedFile,
)
from studio.views import asset_view, kit_view, photo_count

if TYPE_CHECKING:
    from studio.api import Studio
    from studio.models import ResolvedModel
    from studio.settings import Settings


class KitFacade:
    settings: Settings
    db: storage.Database
    blobs: storage.BlobStore

    @property
    def _studio(self) -> Studio:
        """This object as the Studio it always is a part of (for the curation procedures)."""
        return cast("Studio", self)

    if TYPE_CHECKING:

        def resolve(self, ref: str | None = None) -> ResolvedModel: ...

        def read_blob(self, sha256: str) -> bytes: ...

    # ----- brand kits ---------------------------------------------------------------------------
    def create_kit(self, req: KitCreateRequest, photos: Sequence[UploadedFile] = ()) -> KitView:
        """Create a kit (and optionally its first photos) in one transaction: all or nothing."""
        from studio import curation

        with translate_errors():
            ident = brand_kits.make_identity(req.name, req.trigger_token, req.class_noun, req.description)
            items = curation.ingest(self._studio, None, req.background_color, photos, "photo") if photos else []
            with self.db.session() as s:
                repo = storage.KitRepo(s)
                if repo.get_by_slug(ident.slug) is not None:
                    raise errors.Conflict(f"a brand kit named like {req.name!r} already exists", field="name")
                if repo.get_by_trigger(ident.trigger_token) is not None:
                    raise errors.Conflict(f"another kit already uses the trigger {ident.trigger_token!r}; "
                                          "each kit needs its own", field="trigger_token")  # fmt: skip
                kit = repo.create(ident.slug, ident.name, ident.trigger_token, ident.class_noun,
                                  ident.description, background_color=req.background_color.upper())  # fmt: skip
                curation.store_assets(self._studio, s, kit, "photo", items)
                kit = repo.require(kit.id)
                return kit_view(kit, photo_count(kit))

    def create_kit_from_folder(self, req: KitCreateRequest, folder: Path) -> KitView:
        with translate_errors():
            files = brand_kits.iter_folder_images(folder, brand_kits.IngestLimits())
        if not files:
            raise errors.InvalidInput(f"no PNG, JPEG or WebP images found in {folder}", field="folder")
        return self.create_kit(req, [UploadedFile(name=n, data=d) for n, d in files])

    def add_photos(self, kit_id: int, photos: Sequence[UploadedFile]) -> list[AssetView]:
        """Validate every photo first; one bad file refuses the whole upload and stores nothing."""
        return self._add_assets(kit_id, photos, "photo")

    def add_logos(self, kit_id: int, logos: Sequence[UploadedFile]) -> list[AssetView]:
        """Logos (PNG/WebP) keep their transparency; they are for overlays, not for training."""
        return self._add_assets(kit_id, logos, "logo")

    def _add_assets(self, kit_id: int, files: Sequence[UploadedFile], kind: Literal["photo", "logo"]) -> list[AssetView]:
        from studio import curation

        with translate_errors():
            kit = self.get_kit(kit_id)
            items = curation.ingest(self._studio, kit_id, kit.background_color, files, kind)
            with self.db.session() as s:
                return curation.store_assets(self._studio, s, storage.KitRepo(s).require(kit_id), kind, items)

    def remove_asset(self, kit_id: int, asset_id: int) -> None:
        with translate_errors(), self.db.session() as s:
            storage.AssetRepo(s).delete(kit_id, asset_id)

    def list_kits(self) -> list[KitView]:
        with translate_errors(), self.db.session() as s:
            return [kit_view(k, photo_count(k)) for k in storage.KitRepo(s).list()]

    def get_kit(self, kit_id: int) -> KitView:
        with translate_errors(), self.db.session() as s:
            kit = storage.KitRepo(s).get(kit_id)
            if kit is None:
                raise errors.NotFound(f"brand kit {kit_id} does not exist", field="kit_id")
            return kit_view(kit, photo_count(kit))

    def list_assets(self, kit_id: int, kind: Literal["photo", "logo"] | None = "photo") -> list[AssetView]:
        """A kit's photos (or logos), each with its upload and caption warnings."""
        from studio import curation

        self.get_kit(kit_id)
        with translate_errors(), self.db.session() as s:
            kit = storage.KitRepo(s).require(kit_id)
            guide = curation.style_guide_of(kit)
            return [asset_view(a, curation.caption_lint(self._studio, a.caption, kit.trigger_token, guide, a.kind))
                    for a in storage.AssetRepo(s).list_for_kit(kit_id, kind)]  # fmt: skip

    def set_caption(self, kit_id: int, asset_id: int, caption: str) -> AssetView:
        from studio import curation

        with translate_errors():
            return curation.set_captions(self._studio, kit_id, {asset_id: caption})[0]

    def set_captions(self, kit_id: int, captions: dict[int, str]) -> list[AssetView]:
        """Save several edited captions at once (one transaction)."""
        from studio import curation

        with translate_errors():
            return curation.set_captions(self._studio, kit_id, captions)

    def bulk_edit_captions(self, kit_id: int, edit: CaptionBulkEdit) -> list[AssetView]:
        from studio import curation

        with translate_errors():
            return curation.bulk_edit_captions(self._studio, kit_id, edit)

    def set_rights(self, kit_id: int, asset_id: int, rights: RightsRequest) -> AssetView:
        with translate_errors(), self.db.session() as s:
            row = storage.AssetRepo(s).set_rights(kit_id, asset_id, source=rights.source.strip(),
                                                  licence=rights.licence.strip(), consent=rights.consent)  # fmt: skip
            return asset_view(row)

    def get_style_guide(self, kit_id: int) -> StyleGuideView:
        from studio import curation

        with translate_errors(), self.db.session() as s:
            return curation.style_view(curation.style_guide_of(storage.KitRepo(s).require(kit_id)))

    def set_style_guide(self, kit_id: int, req: StyleGuideRequest) -> StyleGuideView:
        from studio import curation

        with translate_errors():
            return curation.set_style_guide(self._studio, kit_id, req)

    def extract_style_from_pdf(self, upload: UploadedFile) -> ExtractedStyleView:
        """Read colours, fonts and text from a PDF style guide (sandboxed); nothing is saved."""
        from studio import curation

        with translate_errors():
            return curation.extract_from_pdf(upload)

    def extract_palette(self, upload: UploadedFile) -> tuple[SwatchView, ...]:
        """The main colours of a reference image, named; nothing is saved."""
        from studio import curation

        with translate_errors():
            return curation.extract_palette(upload)

    def create_version(self, kit_id: int) -> KitVersionView:
        """Freeze the kit's current photos, captions, rights and style guide as an immutable version."""
        from studio import curation

        with translate_errors():
            return curation.make_version(self._studio, kit_id)

    def list_versions(self, kit_id: int) -> list[KitVersionView]:
        from studio import curation

        with translate_errors(), self.db.session() as s:
            return [curation.version_view(v) for v in storage.KitVersionRepo(s).list_for_kit(kit_id)]

    def export_training_set(self, kit_id: int, fmt: Literal["imagefolder", "kohya"], target: Path) -> Path:
        """Write the kit's training set as a Hugging Face imagefolder or a kohya folder."""
        from studio import curation

        with translate_errors():
            return curation.export_training_set(self._studio, kit_id, fmt, target)

    def export_training_zip(self, kit_id: int, fmt: Literal["imagefolder", "kohya"]) -> bytes:
        from studio import curation

        with translate_errors():
            return curation.export_training_zip(self._studio, kit_id, fmt)

    def export_kit_archive(self, kit_id: int, target: Path | None = None) -> bytes:
        """The kit as a portable archive (zip + manifest with hashes); also written to ``target``."""
        from studio import curation

        with translate_errors():
            if target is None:
                return curation.export_archive_bytes(self._studio, kit_id)
            return curation.export_archive(self._studio, kit_id, target).read_bytes()

    def import_kit_archive(self, data: bytes | Path) -> KitView:
        """Import a kit archive: fully validated first, then stored in one transaction, or refused."""
        from studio import curation

        with translate_errors():
            return curation.import_archive(self._studio, data)

    def token_counter(self) -> Callable[[str], int]:
        from studio.generation.tokens import token_counter

        return token_counter(self.resolve().path)
