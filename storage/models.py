"""SQLAlchemy 2.0 typed models: the studio's domain as far as the skeleton needs it.

Every schema change is a new Alembic migration under ``storage/migrations/versions`` with a real
downgrade. Timestamps are timezone-aware UTC. Files are never stored in the DB: rows name blobs by
their sha256 (see :mod:`storage.blobs`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Constraint/index names are deterministic so later (batch) migrations can drop or alter them by
#: name on every backend. Check constraints are named explicitly in the models, so no "ck" rule.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that really is timezone-aware UTC on every backend.

    SQLite has no timezone type: plain ``DateTime(timezone=True)`` stores an aware value's wall time
    (dropping its offset) and reads back naive datetimes, which then fail to compare with
    :func:`utcnow`. This type converts aware values to UTC before storing, refuses naive ones, and
    returns aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value!r} cannot be stored: pass a timezone-aware value "
                "(e.g. datetime.now(UTC))"
            )
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Blob(Base):
    """A content-addressed file in the blob store (one row per distinct content)."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        CheckConstraint("length(sha256) = 64", name="ck_blobs_sha256_len"),
        CheckConstraint("size >= 0", name="ck_blobs_size_nonneg"),
    )


class BrandKit(Base):
    __tablename__ = "brand_kits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    trigger_token: Mapped[str] = mapped_column(String(64), nullable=False)
    class_noun: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    #: Transparent pixels of uploads are composited onto this colour ("#RRGGBB"). (0002)
    background_color: Mapped[str] = mapped_column(String(7), default="#FFFFFF", nullable=False)
    #: brand_kits.StyleGuide.to_dict(): palette, fonts, tone words, do's, don'ts, terms. (0002)
    style_guide: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    #: studio.editing.checks.CheckThresholds overrides for the brand checks ({} = defaults). (0007)
    check_thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
    assets: Mapped[list[KitAsset]] = relationship(
        back_populates="kit", cascade="all, delete-orphan", order_by="KitAsset.id"
    )
    __table_args__ = (UniqueConstraint("trigger_token", name="uq_brand_kits_trigger_token"),)


class KitAsset(Base):
    """A photo or logo in a kit. ``original_name`` is only a label; the file is the blob."""

    __tablename__ = "kit_assets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kit_id: Mapped[int] = mapped_column(ForeignKey("brand_kits.id", ondelete="CASCADE"), nullable=False)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    original_name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    caption: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Rights ledger (0002): where the photo came from, under which licence, and whether the people or
    # owners shown consented. Carried into the LoRA's metadata.
    source: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    licence: Mapped[str] = mapped_column(String(100), default="", nullable=False)
    consent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    #: The upload's alpha channel as an L-mode PNG blob, when it had transparency. (0002)
    mask_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    #: 64-bit perceptual hash (16 hex) for near-duplicate warnings. (0002)
    phash: Mapped[str | None] = mapped_column(String(16), nullable=True)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    kit: Mapped[BrandKit] = relationship(back_populates="assets")
    __table_args__ = (
        UniqueConstraint("kit_id", "blob_sha256", "kind", name="uq_kit_assets_kit_blob_kind"),
        CheckConstraint("kind in ('photo', 'logo')", name="ck_kit_assets_kind"),
        CheckConstraint("width > 0 and height > 0", name="ck_kit_assets_size"),
    )


class KitVersion(Base):
    """An immutable snapshot of a kit (identity, style guide, photos, captions, rights). (0002)

    Training always uses a version, so a LoRA names exactly what it learned from. ``manifest`` is
    brand_kits.KitSnapshot.to_dict(); the blobs it names are pinned in ``kit_version_blobs``.
    """

    __tablename__ = "kit_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kit_id: Mapped[int] = mapped_column(ForeignKey("brand_kits.id", ondelete="RESTRICT"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    manifest_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        UniqueConstraint("kit_id", "number", name="uq_kit_versions_kit_id_number"),
        CheckConstraint("number > 0", name="ck_kit_versions_number"),
    )


class KitVersionBlob(Base):
    """A blob a kit version needs (photo, logo or mask): blob GC keeps it while the version exists."""

    __tablename__ = "kit_version_blobs"
    version_id: Mapped[int] = mapped_column(
        ForeignKey("kit_versions.id", ondelete="CASCADE"), primary_key=True
    )
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), primary_key=True)


class Job(Base):
    """A unit of background work (training, batch generation). Claimed by a worker with a lease."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    message: Mapped[str] = mapped_column(Text, default="", nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
    __table_args__ = (
        CheckConstraint(
            "status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="ck_jobs_status"
        ),
        CheckConstraint("progress >= 0 and progress <= 1", name="ck_jobs_progress"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )


class TrainingRun(Base):
    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kit_id: Mapped[int] = mapped_column(
        ForeignKey("brand_kits.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    kit_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("kit_versions.id", ondelete="RESTRICT"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)
    base_model_ref: Mapped[str] = mapped_column(String(500), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        CheckConstraint(
            "status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_training_runs_status",
        ),
    )


class LoraAdapter(Base):
    __tablename__ = "lora_adapters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    kit_id: Mapped[int | None] = mapped_column(
        ForeignKey("brand_kits.id", ondelete="SET NULL"), nullable=True, index=True
    )
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL"), nullable=True
    )
    kit_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("kit_versions.id", ondelete="RESTRICT"), nullable=True
    )
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    base_model_ref: Mapped[str] = mapped_column(String(500), nullable=False)
    trigger_phrase: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    alpha: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    #: the kohya-format copy (A1111 / ComfyUI key names), when one was made
    kohya_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    #: the training step of the checkpoint this LoRA came from (None: the run's final weights)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __table_args__ = (CheckConstraint("rank > 0", name="ck_lora_adapters_rank"),)


class TrainingSample(Base):
    """One validation image: a fixed prompt and seed rendered with the LoRA of one checkpoint."""

    __tablename__ = "training_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    training_run_id: Mapped[int] = mapped_column(
        ForeignKey("training_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    lora_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        CheckConstraint("step > 0", name="ck_training_samples_step"),
        UniqueConstraint("training_run_id", "step", "seed", name="uq_training_samples_run_step_seed"),
    )


class Generation(Base):
    """One press of Generate: a recipe and the images it produced."""

    __tablename__ = "generations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kit_id: Mapped[int | None] = mapped_column(
        ForeignKey("brand_kits.id", ondelete="SET NULL"), nullable=True, index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), nullable=True
    )
    mode: Mapped[str] = mapped_column(String(16), default="txt2img", nullable=False)
    model_ref: Mapped[str] = mapped_column(String(500), nullable=False)
    model_hash: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    negative_prompt: Mapped[str] = mapped_column(Text, default="", nullable=False)
    scheduler: Mapped[str] = mapped_column(String(64), nullable=False)
    num_inference_steps: Mapped[int] = mapped_column(Integer, nullable=False)
    guidance_scale: Mapped[float] = mapped_column(Float, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    #: History pages are keyset-paginated newest first on (created_at, id); see storage.history. (0004)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    images: Mapped[list[GenerationImage]] = relationship(
        back_populates="generation", cascade="all, delete-orphan", order_by="GenerationImage.index"
    )
    loras: Mapped[list[GenerationLora]] = relationship(
        back_populates="generation", cascade="all, delete-orphan"
    )
    inputs: Mapped[list[GenerationInput]] = relationship(
        back_populates="generation", cascade="all, delete-orphan", order_by="GenerationInput.role"
    )
    __table_args__ = (
        CheckConstraint("num_inference_steps > 0", name="ck_generations_steps"),
        CheckConstraint("width > 0 and height > 0", name="ck_generations_size"),
        # (0004) one index per history filter, each ending in the page order, so a filtered page is one
        # index range scan with no sort, however deep the page.
        Index("ix_generations_created_at_id", "created_at", "id"),
        Index("ix_generations_kit_id_created_at", "kit_id", "created_at", "id"),
        Index("ix_generations_model_ref_created_at", "model_ref", "created_at", "id"),
        Index("ix_generations_mode_created_at", "mode", "created_at", "id"),
    )


class GenerationImage(Base):
    __tablename__ = "generation_images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), nullable=False
    )
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    #: SHA-256 of the decoded RGB pixels; indexed for the lineage look-up (GenerationRepo.find_by_pixels). (0005)
    pixel_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    parameters: Mapped[str] = mapped_column(Text, nullable=False)
    generation: Mapped[Generation] = relationship(back_populates="images")
    __table_args__ = (UniqueConstraint("generation_id", "index", name="uq_generation_images_index"),)


#: What an input blob is to the generation that read it (studio.generation.modes).
INPUT_ROLES: tuple[str, ...] = ("init_image", "mask", "control_image")


class GenerationInput(Base):
    """An input image a generation read (img2img/inpaint/outpaint source, mask, ControlNet control image).

    The recipe JSON names the same blobs; this row makes them references the blob GC keeps, so
    "re-render" still finds them. Written in the generation's own transaction. (0005)
    """

    __tablename__ = "generation_inputs"
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False, index=True)
    generation: Mapped[Generation] = relationship(back_populates="inputs")
    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{role}'" for role in INPUT_ROLES) + ")", name="ck_generation_inputs_role"
        ),
    )


class GenerationLora(Base):
    __tablename__ = "generation_loras"
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    lora_id: Mapped[int] = mapped_column(
        ForeignKey("lora_adapters.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    weight: Mapped[float] = mapped_column(Float, nullable=False)
    generation: Mapped[Generation] = relationship(back_populates="loras")
