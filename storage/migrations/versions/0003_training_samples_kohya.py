"""Training runs keep their validation samples, and LoRAs their kohya-format copy and checkpoint step.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

- ``training_samples``: the fixed validation prompts and seeds rendered from each checkpoint of a run
  (the checkpoint's LoRA file and the image are blobs), so a marketer picks a checkpoint by looking.
- ``lora_adapters.kohya_sha256``: the blob of the kohya-format copy (A1111 / ComfyUI names), when made.
- ``lora_adapters.step``: the training step of the checkpoint this LoRA was registered from.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("training_run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("lora_sha256", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("step > 0", name="ck_training_samples_step"),
        sa.ForeignKeyConstraint(["training_run_id"], ["training_runs.id"],
                                name=op.f("fk_training_samples_training_run_id_training_runs"), ondelete="CASCADE"),  # fmt: skip
        sa.ForeignKeyConstraint(["lora_sha256"], ["blobs.sha256"],
                                name=op.f("fk_training_samples_lora_sha256_blobs")),  # fmt: skip
        sa.ForeignKeyConstraint(["image_sha256"], ["blobs.sha256"],
                                name=op.f("fk_training_samples_image_sha256_blobs")),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_samples")),
        sa.UniqueConstraint("training_run_id", "step", "seed", name="uq_training_samples_run_step_seed"),
    )
    op.create_index(op.f("ix_training_samples_training_run_id"), "training_samples", ["training_run_id"])
    with op.batch_alter_table("lora_adapters") as batch:
        batch.add_column(sa.Column("kohya_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_lora_adapters_kohya_sha256_blobs"), "blobs", ["kohya_sha256"], ["sha256"])


def downgrade() -> None:
    with op.batch_alter_table("lora_adapters") as batch:
        batch.drop_constraint(op.f("fk_lora_adapters_kohya_sha256_blobs"), type_="foreignkey")
        batch.drop_column("step")
        batch.drop_column("kohya_sha256")
    op.drop_index(op.f("ix_training_samples_training_run_id"), table_name="training_samples")
    op.drop_table("training_samples")
