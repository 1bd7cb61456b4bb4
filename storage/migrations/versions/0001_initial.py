"""Initial schema: blobs, brand kits and assets, jobs, training runs, LoRA adapters, generations.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Mirrors storage/models.py exactly (tests/storage/test_migrations.py diffs them with autogenerate).
Timestamps are plain ``DateTime(timezone=True)`` columns here: ``storage.models.UTCDateTime`` is a
Python-side TypeDecorator over that type, so the stored schema is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS_CHECK = "status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')"


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Parents before children, so every foreign key points at an existing table.
    for create in (
        _create_blobs_kits_jobs,
        _create_generations,
        _create_kit_assets,
        _create_training_runs,
        _create_generation_images,
        _create_lora_adapters,
        _create_generation_loras,
    ):
        create()


def _create_blobs_kits_jobs() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("length(sha256) = 64", name="ck_blobs_sha256_len"),
        sa.CheckConstraint("size >= 0", name="ck_blobs_size_nonneg"),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "brand_kits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("trigger_token", sa.String(length=64), nullable=False),
        sa.Column("class_noun", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brand_kits")),
        sa.UniqueConstraint("slug", name=op.f("uq_brand_kits_slug")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        _ts("lease_expires_at", nullable=True),
        _ts("heartbeat_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(_STATUS_CHECK, name="ck_jobs_status"),
        sa.CheckConstraint("progress >= 0 and progress <= 1", name="ck_jobs_progress"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_jobs_idempotency_key")),
    )
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])


def _create_generations() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kit_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("model_ref", sa.String(length=500), nullable=False),
        sa.Column("model_hash", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=False),
        sa.Column("scheduler", sa.String(length=64), nullable=False),
        sa.Column("num_inference_steps", sa.Integer(), nullable=False),
        sa.Column("guidance_scale", sa.Float(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("num_inference_steps > 0", name="ck_generations_steps"),
        sa.CheckConstraint("width > 0 and height > 0", name="ck_generations_size"),
        sa.ForeignKeyConstraint(
            ["kit_id"], ["brand_kits.id"], name=op.f("fk_generations_kit_id_brand_kits"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["generations.id"],
            name=op.f("fk_generations_parent_id_generations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
    )
    op.create_index(op.f("ix_generations_created_at"), "generations", ["created_at"])
    op.create_index(op.f("ix_generations_kit_id"), "generations", ["kit_id"])


def _create_kit_assets() -> None:
    op.create_table(
        "kit_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kit_id", sa.Integer(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("kind in ('photo', 'logo')", name="ck_kit_assets_kind"),
        sa.CheckConstraint("width > 0 and height > 0", name="ck_kit_assets_size"),
        sa.ForeignKeyConstraint(
            ["blob_sha256"], ["blobs.sha256"], name=op.f("fk_kit_assets_blob_sha256_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["kit_id"], ["brand_kits.id"], name=op.f("fk_kit_assets_kit_id_brand_kits"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kit_assets")),
        # Its index also serves "assets of kit X" lookups (kit_id is the leading column).
        sa.UniqueConstraint("kit_id", "blob_sha256", "kind", name="uq_kit_assets_kit_blob_kind"),
    )


def _create_training_runs() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kit_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("base_model_ref", sa.String(length=500), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(_STATUS_CHECK, name="ck_training_runs_status"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_training_runs_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["kit_id"],
            ["brand_kits.id"],
            name=op.f("fk_training_runs_kit_id_brand_kits"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    op.create_index(op.f("ix_training_runs_kit_id"), "training_runs", ["kit_id"])


def _create_generation_images() -> None:
    op.create_table(
        "generation_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("pixel_sha256", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_sha256"], ["blobs.sha256"], name=op.f("fk_generation_images_blob_sha256_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_images_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_images")),
        sa.UniqueConstraint("generation_id", "index", name="uq_generation_images_index"),
    )


def _create_lora_adapters() -> None:
    op.create_table(
        "lora_adapters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kit_id", sa.Integer(), nullable=True),
        sa.Column("training_run_id", sa.Integer(), nullable=True),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("base_model_ref", sa.String(length=500), nullable=False),
        sa.Column("trigger_phrase", sa.String(length=200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("rank > 0", name="ck_lora_adapters_rank"),
        sa.ForeignKeyConstraint(
            ["blob_sha256"], ["blobs.sha256"], name=op.f("fk_lora_adapters_blob_sha256_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["kit_id"],
            ["brand_kits.id"],
            name=op.f("fk_lora_adapters_kit_id_brand_kits"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_runs.id"],
            name=op.f("fk_lora_adapters_training_run_id_training_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lora_adapters")),
        sa.UniqueConstraint("name", name=op.f("uq_lora_adapters_name")),
    )
    op.create_index(op.f("ix_lora_adapters_kit_id"), "lora_adapters", ["kit_id"])


def _create_generation_loras() -> None:
    op.create_table(
        "generation_loras",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("lora_id", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_loras_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lora_id"],
            ["lora_adapters.id"],
            name=op.f("fk_generation_loras_lora_id_lora_adapters"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("generation_id", "lora_id", name=op.f("pk_generation_loras")),
    )
    op.create_index(op.f("ix_generation_loras_lora_id"), "generation_loras", ["lora_id"])


def downgrade() -> None:
    # Children before parents, so no foreign key ever points at a dropped table.
    op.drop_index(op.f("ix_generation_loras_lora_id"), table_name="generation_loras")
    op.drop_table("generation_loras")
    op.drop_index(op.f("ix_lora_adapters_kit_id"), table_name="lora_adapters")
    op.drop_table("lora_adapters")
    op.drop_table("generation_images")
    op.drop_index(op.f("ix_training_runs_kit_id"), table_name="training_runs")
    op.drop_table("training_runs")
    op.drop_table("kit_assets")
    op.drop_index(op.f("ix_generations_kit_id"), table_name="generations")
    op.drop_index(op.f("ix_generations_created_at"), table_name="generations")
    op.drop_table("generations")
    op.drop_index("ix_jobs_status_created_at", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("brand_kits")
    op.drop_table("blobs")
