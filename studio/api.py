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
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import brand_kits
import storage
from studio import errors
from studio.models import ResolvedModel, read_safetensors_header, resolve_model
from studio.schemas import (
    AssetView,
    CaptionBulkEdit,
    DoctorReport,
    ExtractedStyleView,
    GenerateRequest,
    GenerationView,
    JobView,
    KitCreateRequest,
    KitVersionView,
    KitView,
    LoraView,
    ModelInfoView,
    RightsRequest,
    StyleGuideRequest,
    StyleGuideView,
    SwatchView,
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
        from studio import curation

        with translate_errors():
            ident = brand_kits.make_identity(req.name, req.trigger_token, req.class_noun, req.description)
            items = curation.ingest(self, None, req.background_color, photos, "photo") if photos else []
            with self.db.session() as s:
                repo = storage.KitRepo(s)
                if repo.get_by_slug(ident.slug) is not None:
                    raise errors.Conflict(f"a brand kit named like {req.name!r} already exists", field="name")
                if repo.get_by_trigger(ident.trigger_token) is not None:
                    raise errors.Conflict(f"another kit already uses the trigger {ident.trigger_token!r}; "
                                          "each kit needs its own", field="trigger_token")  # fmt: skip
                kit = repo.create(ident.slug, ident.name, ident.trigger_token, ident.class_noun,
                                  ident.description, background_color=req.background_color.upper())  # fmt: skip
                curation.store_assets(self, s, kit, "photo", items)
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
            items = curation.ingest(self, kit_id, kit.background_color, files, kind)
            with self.db.session() as s:
                return curation.store_assets(self, s, storage.KitRepo(s).require(kit_id), kind, items)

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
            return [asset_view(a, curation.caption_lint(self, a.caption, kit.trigger_token, guide, a.kind))
                    for a in storage.AssetRepo(s).list_for_kit(kit_id, kind)]  # fmt: skip

    def set_caption(self, kit_id: int, asset_id: int, caption: str) -> AssetView:
        from studio import curation

        with translate_errors():
            return curation.set_captions(self, kit_id, {asset_id: caption})[0]

    def set_captions(self, kit_id: int, captions: dict[int, str]) -> list[AssetView]:
        """Save several edited captions at once (one transaction)."""
        from studio import curation

        with translate_errors():
            return curation.set_captions(self, kit_id, captions)

    def bulk_edit_captions(self, kit_id: int, edit: CaptionBulkEdit) -> list[AssetView]:
        from studio import curation

        with translate_errors():
            return curation.bulk_edit_captions(self, kit_id, edit)

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
            return curation.set_style_guide(self, kit_id, req)

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
            return curation.make_version(self, kit_id)

    def list_versions(self, kit_id: int) -> list[KitVersionView]:
        from studio import curation

        with translate_errors(), self.db.session() as s:
            return [curation.version_view(v) for v in storage.KitVersionRepo(s).list_for_kit(kit_id)]

    def export_training_set(self, kit_id: int, fmt: Literal["imagefolder", "kohya"], target: Path) -> Path:
        """Write the kit's training set as a Hugging Face imagefolder or a kohya folder."""
        from studio import curation

        with translate_errors():
            return curation.export_training_set(self, kit_id, fmt, target)

    def export_training_zip(self, kit_id: int, fmt: Literal["imagefolder", "kohya"]) -> bytes:
        from studio import curation

        with translate_errors():
            return curation.export_training_zip(self, kit_id, fmt)

    def export_kit_archive(self, kit_id: int, target: Path | None = None) -> bytes:
        """The kit as a portable archive (zip + manifest with hashes); also written to ``target``."""
        from studio import curation

        with translate_errors():
            if target is None:
                return curation.export_archive_bytes(self, kit_id)
            return curation.export_archive(self, kit_id, target).read_bytes()

    def import_kit_archive(self, data: bytes | Path) -> KitView:
        """Import a kit archive: fully validated first, then stored in one transaction, or refused."""
        from studio import curation

        with translate_errors():
            return curation.import_archive(self, data)

    def token_counter(self) -> Callable[[str], int]:
        from studio.generation.tokens import token_counter

        return token_counter(self.resolve().path)

    # ----- training -----------------------------------------------------------------------------
    def train_lora(self, req: TrainRequest, progress: TrainProgressFn | None = None) -> TrainingRunView:
        """Train a LoRA on the kit's photos now (in this process) and register it."""
        from studio.training_run import run_training

        with translate_errors():
            return run_training(self, req, progress)

    def enqueue_training(self, req: TrainRequest) -> JobView:
        """Queue one-click training for a worker; a double click returns the same job."""
        from studio import training_run

        with translate_errors():
            return training_run.enqueue(self, req)

    def get_job(self, job_id: int) -> JobView:
        from studio.training_run import job_view

        with translate_errors(), self.db.session() as s:
            job = storage.JobRepo(s).get(job_id)
            if job is None:
                raise errors.NotFound(f"job {job_id} does not exist", field="job_id")
            return job_view(job)

    def list_jobs(self, limit: int = 20) -> list[JobView]:
        from studio.training_run import job_view

        with translate_errors(), self.db.session() as s:
            return [job_view(j) for j in storage.JobRepo(s).list(limit=limit)]

    def cancel_job(self, job_id: int) -> bool:
        with translate_errors(), self.db.session() as s:
            return storage.JobRepo(s).cancel(job_id)

    def ensure_worker(self) -> bool:
        """Start a background worker process if none is alive; True if one was started."""
        from studio.worker import worker_alive

        if worker_alive(self):
            return False
        log_dir = self.settings.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "worker.log").open("ab") as log:
            subprocess.Popen([sys.executable, "-m", "studio.worker"], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        return True

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
