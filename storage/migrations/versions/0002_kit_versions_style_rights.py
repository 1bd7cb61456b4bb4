"""Brand kits grow up: style guide, background colour, unique trigger, rights ledger, masks,
perceptual hashes, upload warnings, and immutable kit versions that training runs and LoRAs name.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Existing rows get safe defaults (empty style guide, white background, no rights recorded,
no consent) through server defaults that are dropped again once the columns are filled, so the
schema matches storage/models.py exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Column = tuple[str, "sa.types.TypeEngine[Any]", "sa.ColumnElement[Any] | sa.TextClause"]
KIT_COLUMNS: tuple[Column, ...] = (
    ("background_color", sa.String(length=7), sa.text("'#FFFFFF'")),
    ("style_guide", sa.JSON(), sa.text("'{}'")),
)
ASSET_COLUMNS: tuple[Column, ...] = (
    ("source", sa.String(length=500), sa.text("''")),
    ("licence", sa.String(length=100), sa.text("''")),
    ("consent", sa.Boolean(), sa.false()),
    ("warnings", sa.JSON(), sa.text("'[]'")),
)


def _add_filled(table: str, columns: tuple[Column, ...]) -> None:
    """Add NOT NULL columns filled for existing rows, then drop the temporary server defaults."""
    with op.batch_alter_table(table) as batch:
        for name, type_, default in columns:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default=default))
    with op.batch_alter_table(table) as batch:
        for name, type_, _ in columns:
            batch.alter_column(name, existing_type=type_, server_default=None)


def upgrade() -> None:
    op.create_table(
        "kit_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kit_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("number > 0", name="ck_kit_versions_number"),
        sa.ForeignKeyConstraint(["kit_id"], ["brand_kits.id"], name=op.f("fk_kit_versions_kit_id_brand_kits"),
                                ondelete="RESTRICT"),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kit_versions")),
        sa.UniqueConstraint("kit_id", "number", name="uq_kit_versions_kit_id_number"),
    )
    op.create_table(
        "kit_version_blobs",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["blobs.sha256"],
                                name=op.f("fk_kit_version_blobs_blob_sha256_blobs")),  # fmt: skip
        sa.ForeignKeyConstraint(["version_id"], ["kit_versions.id"],
                                name=op.f("fk_kit_version_blobs_version_id_kit_versions"), ondelete="CASCADE"),  # fmt: skip
        sa.PrimaryKeyConstraint("version_id", "blob_sha256", name=op.f("pk_kit_version_blobs")),
    )
    _add_filled("brand_kits", KIT_COLUMNS)
    with op.batch_alter_table("brand_kits") as batch:
        batch.create_unique_constraint("uq_brand_kits_trigger_token", ["trigger_token"])
    _add_filled("kit_assets", ASSET_COLUMNS)
    with op.batch_alter_table("kit_assets") as batch:
        batch.add_column(sa.Column("mask_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("phash", sa.String(length=16), nullable=True))
        batch.create_foreign_key(op.f("fk_kit_assets_mask_sha256_blobs"), "blobs", ["mask_sha256"], ["sha256"])
    for table in ("training_runs", "lora_adapters"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("kit_version_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(op.f(f"fk_{table}_kit_version_id_kit_versions"), "kit_versions",
                                     ["kit_version_id"], ["id"], ondelete="RESTRICT")  # fmt: skip


def downgrade() -> None:
    for table in ("lora_adapters", "training_runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_kit_version_id_kit_versions"), type_="foreignkey")
            batch.drop_column("kit_version_id")
    with op.batch_alter_table("kit_assets") as batch:
        batch.drop_constraint(op.f("fk_kit_assets_mask_sha256_blobs"), type_="foreignkey")
        for name in ("phash", "mask_sha256", *(c[0] for c in ASSET_COLUMNS)):
            batch.drop_column(name)
    with op.batch_alter_table("brand_kits") as batch:
        batch.drop_constraint("uq_brand_kits_trigger_token", type_="unique")
        for name, _, _ in KIT_COLUMNS:
            batch.drop_column(name)
    op.drop_table("kit_version_blobs")
    op.drop_table("kit_versions")
