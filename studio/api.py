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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import storage
from studio import errors
from studio.boundary import translate_errors
from studio.campaign_facade import CampaignFacade
from studio.grid_schemas import GridAxis, GridView
from studio.history_schemas import HistoryPage, HistoryQuery, PngReadResult
from studio.kit_facade import KitFacade
from studio.models import ResolvedModel, read_safetensors_header, resolve_model
from studio.schemas import (
    ComposedPromptView,
    DoctorReport,
    GenerateRequest,
    GenerationView,
    JobView,
    LoraView,
    ModelInfoView,
    TrainingRunView,
    TrainingSampleView,
    TrainPlanView,
    TrainPresetView,
    TrainProgressView,
    TrainRequest,
    UploadedFile,
)
from studio.settings import Settings
from studio.views import generation_view, lora_view, run_view

if TYPE_CHECKING:
    from studio.generation.engine import Engine

logger = logging.getLogger(__name__)

TrainProgressFn = Callable[[TrainProgressView], None]
StepProgressFn = Callable[[int, int], None]


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


class Studio(KitFacade, CampaignFacade):
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
            is_placeholder=m.is_placeholder, default_size=m.default_size, is_demo=m.is_demo,
            default_guidance=m.default_guidance,
        )  # fmt: skip

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from studio.generation.engine import Engine

                self._engine = Engine(device=self.settings.device, dtype=self.settings.dtype)
            return self._engine

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

    def training_preset(self, kit_id: int | None = None) -> TrainPresetView:
        """The settings one click uses for the base model, this machine's device memory tier and the
        kit's photo count (1 photo when no kit is given)."""
        from studio.train_presets import preset_for

        with translate_errors():
            photos = self.get_kit(kit_id).photo_count if kit_id is not None else 1
            return preset_for(self, max(1, photos))

    def training_plan(self, req: TrainRequest) -> TrainPlanView:
        """Preflight without starting: the preset, the peak-memory estimate on this machine and any
        downgrades; raises ``TrainingError`` explaining why it cannot fit."""
        from studio.training_run import preview_plan

        with translate_errors():
            return preview_plan(self, req)

    def list_training_samples(self, run_id: int) -> list[TrainingSampleView]:
        """The validation images of each checkpoint of a run, by step."""
        from studio.training_samples import list_samples

        with translate_errors():
            return list_samples(self, run_id)

    def pick_checkpoint(self, run_id: int, step: int, name: str | None = None) -> LoraView:
        """Register the LoRA of one sampled checkpoint of a finished run (with its kohya-format copy)."""
        from studio.training_samples import pick_checkpoint

        with translate_errors():
            return pick_checkpoint(self, run_id, step, name)

    def lora_export(self, lora_id: int, fmt: str = "diffusers") -> tuple[str, bytes]:
        """``(file name, bytes)`` of a LoRA to download: ``diffusers`` (PEFT keys, loads with
        ``load_lora_weights``) or ``kohya`` (``lora_unet_*`` keys for AUTOMATIC1111 / ComfyUI)."""
        with translate_errors(), self.db.session() as s:
            row = storage.LoraRepo(s).get(lora_id)
            if row is None:
                raise errors.NotFound(f"LoRA {lora_id} does not exist")
            if fmt not in ("diffusers", "kohya"):
                raise errors.InvalidInput("format must be 'diffusers' or 'kohya'", field="format")
            sha = row.blob_sha256 if fmt == "diffusers" else row.kohya_sha256
            if sha is None:
                raise errors.NotFound(f"LoRA {row.name} has no kohya-format copy (nothing in it maps to kohya names)")
            name = f"{row.name}.safetensors" if fmt == "diffusers" else f"{row.name}.kohya.safetensors"
        return name, self.read_blob(sha)

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

    def compose_prompt(self, req: GenerateRequest) -> ComposedPromptView:
        """The final prompt and negative prompt ``req`` would run with (kit trigger, class noun, style
        fragment and don'ts added), with token and chunk counts from the base model's tokenizer."""
        from studio.prompt_preview import preview_prompt

        with translate_errors():
            return preview_prompt(self, req)

    def rerender(self, generation_id: int, progress: StepProgressFn | None = None) -> GenerationView:
        """Render a recorded generation again from its recipe: same pixels, new row pointing at it."""
        from studio.generation_run import rerender

        with translate_errors():
            return rerender(self, generation_id, progress)

    def generate_grid(
        self, req: GenerateRequest, x: GridAxis, y: GridAxis | None = None, progress: StepProgressFn | None = None
    ) -> GridView:
        """An X/Y grid of seed-locked variations of ``req``: each cell a recorded generation, plus the
        labelled sheet as one more generation (mode ``grid``; re-rendering it re-renders the cells)."""
        from studio.grid import generate_grid

        with translate_errors():
            return generate_grid(self, req, x, y, progress)

    def upload_input_image(self, file: UploadedFile) -> str:
        """Store an image to use as an img2img/inpaint/outpaint or ControlNet input (validated like kit
        uploads, normalised to an RGB PNG); returns the SHA-256 a GenerateRequest names it by."""
        from studio.generation_modes import upload_input_image

        with translate_errors():
            return upload_input_image(self, file)

    def upload_mask(self, file: UploadedFile) -> str:
        """Store an inpainting mask (white = repaint, black or transparent = keep) as a grayscale PNG;
        returns its SHA-256 for ``GenerateRequest.mask``. It must have the input image's size."""
        from studio.generation_modes import upload_mask

        with translate_errors():
            return upload_mask(self, file)

    def send_to(self, generation_id: int, image_index: int, mode: str) -> GenerateRequest:
        """"Use as input": a request prefilled from one of our images (prompt, kit, LoRAs, settings, its
        seed) with the image as the input of ``mode`` (img2img, inpaint, outpaint or controlnet). The
        generation records the image's generation as its parent. Inpaint still needs ``mask``, outpaint
        its sides, controlnet its ``controlnet`` model."""
        from studio.generation_modes import send_to

        with translate_errors():
            return send_to(self, generation_id, image_index, mode)

    def get_generation(self, generation_id: int) -> GenerationView:
        with translate_errors(), self.db.session() as s:
            gen = storage.GenerationRepo(s).get(generation_id)
            if gen is None:
                raise errors.NotFound(f"generation {generation_id} does not exist", field="generation_id")
            return generation_view(gen)

    def list_generations(self, limit: int = 50, offset: int = 0, kit_id: int | None = None) -> list[GenerationView]:
        with translate_errors(), self.db.session() as s:
            return [generation_view(g) for g in storage.GenerationRepo(s).list_recent(limit, offset, kit_id)]

    def history(self, query: HistoryQuery) -> HistoryPage:
        """One page of generations, newest first, filtered; pass ``next_cursor`` back for the next page.
        Keyset pagination: a deep page costs what the first does (100k+ rows)."""
        from studio.history import history_page

        with translate_errors():
            return history_page(self, query)

    def count_history(self, query: HistoryQuery) -> int:
        """How many generations match the query's filters."""
        from studio.history import history_count

        with translate_errors():
            return history_count(self, query)

    def request_from_png(self, data: bytes) -> PngReadResult:
        """The generation request a PNG was made with (our recipe, or AUTOMATIC1111's ``parameters``),
        with what could not be carried over. Hostile files are refused; nothing is stored."""
        from studio.png_readback import request_from_png

        with translate_errors():
            return request_from_png(self, data)

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
