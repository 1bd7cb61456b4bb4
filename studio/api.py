"""The Studio facade: the ONLY thing the UI and the CLI call.

``open_studio(settings)`` wires storage, the blob store, model resolution and (lazily) the generation
engine and trainer. Each user action is one DB transaction; files are written to the blob store
before the transaction that references them, so a crash can leave an orphan blob but never a row
without its file. Importing this module does not import torch.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import brand_kits
import storage
from studio import errors
from studio.models import ResolvedModel, read_safetensors_header, resolve_model
from studio.schemas import (
    AssetView,
    DoctorReport,
    GenerateRequest,
    GenerationView,
    KitCreateRequest,
    KitView,
    LoraView,
    ModelInfoView,
    TrainingRunView,
    TrainPresetView,
    TrainProgressView,
    TrainRequest,
    UploadedFile,
)
from studio.settings import Settings
from studio.views import asset_view, generation_view, kit_view, lora_view, photo_count, run_view

if TYPE_CHECKING:
    from studio.generation.engine import Engine

logger = logging.getLogger(__name__)

TrainProgressFn = Callable[[TrainProgressView], None]
StepProgressFn = Callable[[int, int], None]


def app_version() -> str:
    try:
        return version("brand-studio")
    except PackageNotFoundError:
        return "0.0.0+local"


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map lower layers' errors to the studio's error family (only at the facade boundary)."""
    try:
        yield
    except brand_kits.InvalidKitField as exc:
        raise errors.InvalidInput(str(exc), field=exc.field) from exc
    except brand_kits.KitError as exc:
        raise errors.InvalidInput(str(exc)) from exc
    except storage.StorageFull as exc:
        raise errors.StorageFull(str(exc)) from exc
    except storage.IntegrityViolation as exc:
        raise errors.Conflict(str(exc)) from exc
    except storage.RowNotFound as exc:
        raise errors.NotFound(str(exc)) from exc
    except (storage.SchemaTooNew, storage.DatabaseCorrupt, storage.ReadOnlyStorage) as exc:
        raise errors.StorageUnavailable(str(exc)) from exc
    except storage.BlobNotFound as exc:
        raise errors.NotFound(f"a stored file is missing: {exc}") from exc


def open_studio(settings: Settings | None = None) -> Studio:
    """Create the data folders, open (and migrate) the database, and return the facade."""
    settings = settings or Settings()
    with translate_errors():
        for folder in (settings.data_dir, settings.blobs_dir, settings.models_dir, settings.work_dir):
            folder.mkdir(parents=True, exist_ok=True)
        db = storage.Database.open(settings.resolved_database_url, backup_dir=settings.backups_dir)
        blobs = storage.BlobStore(settings.blobs_dir)
        blobs.cleanup_temp()
    return Studio(settings, db, blobs)


class Studio:
    """One per process. Thread-safe: the engine serialises generation; each call opens its own session."""

    def __init__(self, settings: Settings, db: storage.Database, blobs: storage.BlobStore) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self._lock = threading.Lock()
        self._models: dict[str, ResolvedModel] = {}
        self._engine: Engine | None = None

    def close(self) -> None:
        self.db.dispose()

    # ----- models -------------------------------------------------------------------------------
    def resolve(self, ref: str | None = None) -> ResolvedModel:
        ref = ref or self.settings.base_model
        with self._lock:
            if ref not in self._models:
                self._models[ref] = resolve_model(
                    ref,
                    models_dir=self.settings.models_dir,
                    search_dirs=self.settings.models_dirs,
                    single_file_config=self.settings.single_file_config,
                    offline=self.settings.hub_offline(),
                )
            return self._models[ref]

    def model_info(self) -> ModelInfoView:
        m = self.resolve()
        return ModelInfoView(
            ref=m.ref, name=m.name, kind=m.kind, family=m.family, short_hash=m.short_hash,
            is_placeholder=m.is_placeholder, default_size=m.default_size,
        )  # fmt: skip

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from studio.generation.engine import Engine

                self._engine = Engine(device=self.settings.device, dtype=self.settings.dtype)
            return self._engine

    # ----- brand kits ---------------------------------------------------------------------------
    def create_kit(self, req: KitCreateRequest, photos: Sequence[UploadedFile] = ()) -> KitView:
        """Create a kit (and optionally its first photos) in one transaction: all or nothing."""
        with translate_errors():
            ident = brand_kits.make_identity(req.name, req.trigger_token, req.class_noun, req.description)
            validated = self._validate_uploads(photos)
            refs = [self.blobs.put_bytes(v.png_bytes) for v in validated]
            with self.db.session() as s:
                if storage.KitRepo(s).get_by_slug(ident.slug) is not None:
                    raise errors.Conflict(f"a brand kit named like {req.name!r} already exists", field="name")
                kit = storage.KitRepo(s).create(
                    ident.slug, ident.name, ident.trigger_token, ident.class_noun, ident.description
                )
                self._add_assets(s, kit.id, ident.trigger_token, ident.class_noun, validated, refs)
                return kit_view(kit, len(validated))

    def create_kit_from_folder(self, req: KitCreateRequest, folder: Path) -> KitView:
        with translate_errors():
            files = brand_kits.iter_folder_images(folder, self._limits())
        if not files:
            raise errors.InvalidInput(f"no PNG, JPEG or WebP images found in {folder}", field="folder")
        return self.create_kit(req, [UploadedFile(name=n, data=d) for n, d in files])

    def add_photos(self, kit_id: int, photos: Sequence[UploadedFile]) -> list[AssetView]:
        """Validate every photo first; one bad file refuses the whole upload and stores nothing."""
        if not photos:
            raise errors.InvalidInput("no files were uploaded", field="photos")
        with translate_errors():
            kit = self.get_kit(kit_id)
            validated = self._validate_uploads(photos)
            refs = [self.blobs.put_bytes(v.png_bytes) for v in validated]
            with self.db.session() as s:
                return self._add_assets(s, kit.id, kit.trigger_token, kit.class_noun, validated, refs)

    def list_kits(self) -> list[KitView]:
        with translate_errors(), self.db.session() as s:
            return [kit_view(k, photo_count(k)) for k in storage.KitRepo(s).list()]

    def get_kit(self, kit_id: int) -> KitView:
        with translate_errors(), self.db.session() as s:
            kit = storage.KitRepo(s).get(kit_id)
            if kit is None:
                raise errors.NotFound(f"brand kit {kit_id} does not exist", field="kit_id")
            return kit_view(kit, photo_count(kit))

    def list_assets(self, kit_id: int) -> list[AssetView]:
        self.get_kit(kit_id)
        with translate_errors(), self.db.session() as s:
            return [asset_view(a) for a in storage.AssetRepo(s).list_for_kit(kit_id)]

    def _limits(self) -> brand_kits.IngestLimits:
        return brand_kits.IngestLimits(max_bytes=self.settings.max_upload_mb * 1024 * 1024)

    def _validate_uploads(self, photos: Sequence[UploadedFile]) -> list[brand_kits.ValidatedImage]:
        limits = self._limits()
        if len(photos) > limits.max_files:
            raise errors.InvalidInput(f"too many files ({len(photos)}); at most {limits.max_files} at once")
        out = []
        for photo in photos:
            try:
                out.append(brand_kits.validate_image(photo.data, photo.name, limits))
            except brand_kits.KitError as exc:
                label = brand_kits.safe_label(photo.name)
                raise errors.InvalidInput(f"{label}: {exc}; nothing was stored", field="photos") from exc
        return out

    def _add_assets(
        self,
        s: Any,
        kit_id: int,
        trigger: str,
        class_noun: str,
        validated: list[brand_kits.ValidatedImage],
        refs: list[storage.BlobRef],
    ) -> list[AssetView]:
        views = []
        for v, ref in zip(validated, refs, strict=True):
            storage.BlobRepo(s).record(ref, "image/png")
            asset = storage.AssetRepo(s).add(
                kit_id, ref.sha256, "photo", v.label, v.width, v.height,
                brand_kits.default_caption(trigger, class_noun),
            )  # fmt: skip
            views.append(asset_view(asset, v.warnings))
        return views

    # ----- training -----------------------------------------------------------------------------
    def train_lora(self, req: TrainRequest, progress: TrainProgressFn | None = None) -> TrainingRunView:
        """Train a LoRA on the kit's photos now (in this process) and register it."""
        from studio.training_run import run_training

        with translate_errors():
            return run_training(self, req, progress)

    def training_preset(self) -> TrainPresetView:
        """The settings one click uses for the current base model."""
        from studio.training_run import preset_for

        with translate_errors():
            return preset_for(self)

    def list_loras(self, kit_id: int | None = None) -> list[LoraView]:
        with translate_errors(), self.db.session() as s:
            return [lora_view(x, self._lora_short_hash(x.blob_sha256)) for x in storage.LoraRepo(s).list(kit_id)]

    def list_training_runs(self, kit_id: int) -> list[TrainingRunView]:
        with translate_errors(), self.db.session() as s:
            runs = storage.TrainingRunRepo(s).list_for_kit(kit_id)
            loras = {x.training_run_id: x for x in storage.LoraRepo(s).list(kit_id)}
            return [
                run_view(r, self._maybe_lora_view(loras.get(r.id))) for r in runs
            ]

    def _maybe_lora_view(self, row: Any) -> LoraView | None:
        return None if row is None else lora_view(row, self._lora_short_hash(row.blob_sha256))

    def lora_file(self, sha256: str) -> Path:
        """A ``.safetensors`` path for a stored LoRA (a hard link to its blob; loaders need the suffix)."""
        with translate_errors():
            blob = self.blobs.path_for(sha256)
            if not blob.is_file():
                raise storage.BlobNotFound(sha256)
        target = self.settings.work_dir / "loras" / f"{sha256}.safetensors"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".tmp-{secrets.token_hex(6)}")
            try:
                os.link(blob, tmp)
            except OSError:
                tmp.write_bytes(blob.read_bytes())
            os.replace(tmp, target)
        return target

    def _lora_short_hash(self, sha256: str) -> str:
        """A1111's LoRA hash: ``sshs_model_hash`` from the header, else the file's SHA-256 (12 hex)."""
        try:
            header = read_safetensors_header(self.blobs.path_for(sha256))
        except (errors.ModelError, OSError):
            return sha256[:12]
        meta = header.get("__metadata__") or {}
        value = meta.get("sshs_model_hash") if isinstance(meta, dict) else None
        return str(value)[:12] if value else sha256[:12]

    # ----- generation ---------------------------------------------------------------------------
    def generate(
        self, req: GenerateRequest, progress: StepProgressFn | None = None, *, parent_id: int | None = None
    ) -> GenerationView:
        """Seed-locked text-to-image: images into the blob store, the recipe into the database."""
        from studio.generation_run import run_generation

        with translate_errors():
            return run_generation(self, req, progress, parent_id=parent_id, seeds=None)

    def rerender(self, generation_id: int, progress: StepProgressFn | None = None) -> GenerationView:
        """Render a recorded generation again from its recipe: same pixels, new row pointing at it."""
        from studio.generation_run import rerender

        with translate_errors():
            return rerender(self, generation_id, progress)

    def get_generation(self, generation_id: int) -> GenerationView:
        with translate_errors(), self.db.session() as s:
            gen = storage.GenerationRepo(s).get(generation_id)
            if gen is None:
                raise errors.NotFound(f"generation {generation_id} does not exist", field="generation_id")
            return generation_view(gen)

    def list_generations(self, limit: int = 50, offset: int = 0, kit_id: int | None = None) -> list[GenerationView]:
        with translate_errors(), self.db.session() as s:
            return [generation_view(g) for g in storage.GenerationRepo(s).list_recent(limit, offset, kit_id)]

    def read_blob(self, sha256: str) -> bytes:
        with translate_errors():
            try:
                return self.blobs.read_bytes(sha256)
            except ValueError as exc:
                raise errors.InvalidInput(f"not a file id: {sha256!r}") from exc

    # ----- health -------------------------------------------------------------------------------
    def doctor(self) -> DoctorReport:
        from studio.doctor import run_checks

        return run_checks(self)
