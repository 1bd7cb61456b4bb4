"""Thin typed repositories over one Session. The caller (the facade) owns the transaction.

Repositories add and query rows and flush so new rows have ids; they never commit. Objects they
return stay readable after the session's transaction ends (sessions use ``expire_on_commit=False``,
and relationships callers need are loaded eagerly).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Subquery, delete, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from storage.blobs import BlobRef, validate_sha256
from storage.campaigns import CampaignExport, Creative, Variant
from storage.errors import RowNotFound, StorageError
from storage.history import GenerationFilters, PageCursor, count_query, cursor_of, page_query
from storage.jobs import FINAL_STATUSES, JOB_STATUSES, JobRepo, JobStatus
from storage.models import (
    INPUT_ROLES,
    Blob,
    Generation,
    GenerationImage,
    GenerationInput,
    GenerationLora,
    KitAsset,
    KitVersionBlob,
    LoraAdapter,
    TrainingRun,
    TrainingSample,
    utcnow,
)

__all__ = [
    "AssetKind",
    "BlobRepo",
    "GenerationRepo",
    "JobRepo",
    "JobStatus",
    "LoraRepo",
    "TrainingSampleRepo",
    "TrainingRunRepo",
]

AssetKind = Literal["photo", "logo"]
_Row = TypeVar("_Row")
IMAGE_FIELDS = frozenset({"index", "seed", "blob_sha256", "pixel_sha256", "parameters"})
GENERATION_FIELDS = frozenset(c.key for c in Generation.__table__.columns) - {"id"}


def _insert_or_get(session: Session, row: _Row, lookup: Callable[[], _Row | None]) -> tuple[_Row, bool]:
    """Insert ``row`` inside a SAVEPOINT; if a concurrent insert of the same key won, return that row."""
    existing = lookup()
    if existing is not None:
        return existing, False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = lookup()
        if existing is None:
            raise  # a different rule was broken (missing parent row, bad value): let it surface
        return existing, False
    return row, True


class BlobRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, ref: BlobRef, media_type: str) -> Blob:
        """The row for a stored blob, created on first use (idempotent)."""
        validate_sha256(ref.sha256)
        blob, _ = _insert_or_get(
            self.session,
            Blob(sha256=ref.sha256, size=ref.size, media_type=media_type),
            lambda: self.session.get(Blob, ref.sha256),
        )
        if blob.size != ref.size:
            raise StorageError(
                f"blob {ref.sha256} is recorded with size {blob.size} but was stored with {ref.size}; "
                "run a blob verification before using it"
            )
        return blob

    def get(self, sha256: str) -> Blob | None:
        return self.session.get(Blob, sha256)

    def referenced_shas(self) -> set[str]:
        """Blobs some row still uses (kit assets, LoRA adapters and their kohya copies, training samples,
        generated images and the input images, masks and control images generations read, campaign
        masters and product masks, variant images, export zips)."""
        return set(self.session.scalars(select(_referenced().c[0])).all())

    def recorded_shas(self) -> set[str]:
        """Every blob the database has a row for (the files blob GC must keep)."""
        return set(self.session.scalars(select(Blob.sha256)).all())

    def delete_unreferenced(self, created_before: datetime) -> list[str]:
        """Delete blob rows no other row uses, recorded before ``created_before``; return their ids.

        The cut-off is the grace period for an upload recorded in a transaction that has not yet
        linked the blob. Delete files afterwards with ``BlobStore.delete_unreferenced(recorded_shas())``.
        """
        doomed = select(Blob.sha256).where(
            Blob.created_at < created_before, Blob.sha256.not_in(select(_referenced().c[0]))
        )
        shas = builtins.list(self.session.scalars(doomed).all())
        if shas:
            self.session.execute(
                delete(Blob).where(Blob.sha256.in_(shas)).execution_options(synchronize_session="fetch")
            )
        return shas


def _referenced() -> Subquery:
    return union(
        select(KitAsset.blob_sha256),
        select(KitAsset.mask_sha256).where(KitAsset.mask_sha256.is_not(None)),
        select(KitVersionBlob.blob_sha256),
        select(LoraAdapter.blob_sha256),
        select(LoraAdapter.kohya_sha256).where(LoraAdapter.kohya_sha256.is_not(None)),
        select(TrainingSample.lora_sha256),
        select(TrainingSample.image_sha256),
        select(GenerationImage.blob_sha256),
        select(GenerationInput.blob_sha256),
        select(Creative.image_sha256),
        select(Creative.product_mask_sha256).where(Creative.product_mask_sha256.is_not(None)),
        select(Variant.image_sha256),
        select(CampaignExport.zip_sha256),
    ).subquery()


class TrainingRunRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        kit_id: int,
        base_model_ref: str,
        config: Mapping[str, Any],
        job_id: int | None = None,
        kit_version_id: int | None = None,
    ) -> TrainingRun:
        run = TrainingRun(
            kit_id=kit_id, base_model_ref=base_model_ref, config=dict(config), job_id=job_id, status="queued",
            kit_version_id=kit_version_id,
        )  # fmt: skip
        self.session.add(run)
        self.session.flush()
        return run

    def get(self, id: int) -> TrainingRun | None:
        return self.session.get(TrainingRun, id)

    def list_for_kit(self, kit_id: int) -> builtins.list[TrainingRun]:
        """A kit's runs, newest first."""
        query = (
            select(TrainingRun)
            .where(TrainingRun.kit_id == kit_id)
            .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
        )
        return builtins.list(self.session.scalars(query).all())

    def mark(
        self,
        run_id: int,
        status: JobStatus,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> TrainingRun:
        """Move a run to ``status``: running sets started_at (first time), a final status sets
        finished_at. ``metrics`` are merged into the stored ones; ``error`` replaces the old one."""
        if status not in JOB_STATUSES:
            raise ValueError(f"unknown training run status {status!r}; use one of {sorted(JOB_STATUSES)}")
        run = self.session.get(TrainingRun, run_id)
        if run is None:
            raise RowNotFound(f"training run {run_id} does not exist")
        now = utcnow()
        run.status = status
        if status == "running" and run.started_at is None:
            run.started_at = now
        run.finished_at = now if status in FINAL_STATUSES else None
        if metrics:
            run.metrics = {**run.metrics, **metrics}
        run.error = error
        self.session.flush()
        return run


class LoraRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        name: str,
        blob_sha256: str,
        base_model_ref: str,
        rank: int,
        alpha: float,
        kit_id: int | None = None,
        training_run_id: int | None = None,
        trigger_phrase: str = "",
        kit_version_id: int | None = None,
        kohya_sha256: str | None = None,
        step: int | None = None,
    ) -> LoraAdapter:
        lora = LoraAdapter(
            kit_version_id=kit_version_id,
            kohya_sha256=kohya_sha256,
            step=step,
            name=name,
            blob_sha256=blob_sha256,
            base_model_ref=base_model_ref,
            rank=rank,
            alpha=alpha,
            kit_id=kit_id,
            training_run_id=training_run_id,
            trigger_phrase=trigger_phrase,
        )
        self.session.add(lora)
        self.session.flush()
        return lora

    def get(self, id: int) -> LoraAdapter | None:
        return self.session.get(LoraAdapter, id)

    def get_by_name(self, name: str) -> LoraAdapter | None:
        return self.session.scalars(select(LoraAdapter).where(LoraAdapter.name == name)).one_or_none()

    def list(self, kit_id: int | None = None) -> builtins.list[LoraAdapter]:
        """Adapters, newest first, optionally only those of one kit."""
        query = select(LoraAdapter)
        if kit_id is not None:
            query = query.where(LoraAdapter.kit_id == kit_id)
        query = query.order_by(LoraAdapter.created_at.desc(), LoraAdapter.id.desc())
        return builtins.list(self.session.scalars(query).all())


class TrainingSampleRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, run_id: int, step: int, lora_sha256: str, prompt: str, seed: int, image_sha256: str) -> TrainingSample:
        """Record one validation image (each seed of a step has its own prompt); the same (run, step,
        seed) again returns the existing row (a resumed run re-samples a checkpoint it had sampled)."""
        existing = self.session.scalars(
            select(TrainingSample).where(
                TrainingSample.training_run_id == run_id, TrainingSample.step == step, TrainingSample.seed == seed,
            )
        ).one_or_none()  # fmt: skip
        if existing is not None:
            return existing
        row = TrainingSample(training_run_id=run_id, step=step, lora_sha256=lora_sha256, prompt=prompt, seed=seed,
                             image_sha256=image_sha256)  # fmt: skip
        self.session.add(row)
        self.session.flush()
        return row

    def list_for_run(self, run_id: int) -> builtins.list[TrainingSample]:
        """The run's samples by step, then prompt order of creation."""
        query = select(TrainingSample).where(TrainingSample.training_run_id == run_id)
        return builtins.list(self.session.scalars(query.order_by(TrainingSample.step, TrainingSample.id)).all())


class GenerationRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        *,
        images: Sequence[Mapping[str, Any]],
        loras: Sequence[tuple[int, float]] = (),
        inputs: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> Generation:
        """Record one Generate press: ``fields`` are Generation columns; ``images`` dicts have
        index, seed, blob_sha256, pixel_sha256, parameters; ``loras`` are (lora_id, weight); ``inputs``
        maps a role (init_image, mask, control_image) to the sha256 of the recorded blob it read."""
        unknown = set(fields) - GENERATION_FIELDS
        if unknown:
            raise TypeError(
                f"unknown generation fields {sorted(unknown)}; allowed: {sorted(GENERATION_FIELDS)}"
            )
        generation = Generation(**fields)
        for image in images:
            keys = set(image)
            if keys != IMAGE_FIELDS:
                raise ValueError(
                    f"generation image needs exactly {sorted(IMAGE_FIELDS)}; "
                    f"missing {sorted(IMAGE_FIELDS - keys)}, unexpected {sorted(keys - IMAGE_FIELDS)}"
                )
            generation.images.append(GenerationImage(**image))
        for lora_id, weight in loras:
            generation.loras.append(GenerationLora(lora_id=lora_id, weight=weight))
        for role, sha in (inputs or {}).items():
            if role not in INPUT_ROLES:
                raise ValueError(f"unknown generation input role {role!r}; use one of {list(INPUT_ROLES)}")
            validate_sha256(sha)
            generation.inputs.append(GenerationInput(role=role, blob_sha256=sha))
        self.session.add(generation)
        self.session.flush()
        return generation

    def get(self, id: int) -> Generation | None:
        return self.session.get(
            Generation,
            id,
            options=[selectinload(Generation.images), selectinload(Generation.loras), selectinload(Generation.inputs)],
        )

    def list_recent(
        self, limit: int = 50, offset: int = 0, kit_id: int | None = None
    ) -> builtins.list[Generation]:
        """Generations newest first, with their images and LoRAs loaded."""
        query = select(Generation).options(selectinload(Generation.images), selectinload(Generation.loras))
        if kit_id is not None:
            query = query.where(Generation.kit_id == kit_id)
        query = query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit).offset(offset)
        return builtins.list(self.session.scalars(query).all())

    def page(
        self, filters: GenerationFilters, cursor: PageCursor | None = None, limit: int = 20
    ) -> tuple[builtins.list[Generation], PageCursor | None]:
        """One history page, newest first, and the cursor of the next page (None on the last page).

        Keyset pagination (storage.history): every page, however deep, is one index range scan.
        """
        if limit < 1:
            raise ValueError(f"page limit must be at least 1, got {limit}")
        rows = builtins.list(self.session.scalars(page_query(filters, cursor, limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, cursor_of(rows[-1]) if more else None

    def count(self, filters: GenerationFilters | None = None, *, kit_id: int | None = None) -> int:
        """How many generations match ``filters`` (or only ``kit_id``; all without either)."""
        if filters is None:
            filters = GenerationFilters(kit_id=kit_id)
        elif kit_id is not None:
            raise TypeError("pass kit_id inside filters, not both")
        return int(self.session.scalar(count_query(filters)) or 0)

    def find_by_pixels(self, pixel_sha256: str) -> Generation | None:
        """The first generation that produced an image with these decoded pixels (None if none did):
        an input image's lineage ("use as input" of one of our images, or its PNG uploaded back)."""
        query = (
            select(Generation)
            .join(GenerationImage, GenerationImage.generation_id == Generation.id)
            .where(GenerationImage.pixel_sha256 == pixel_sha256)
            .order_by(Generation.id)
            .limit(1)
        )
        return self.session.scalars(query).first()
