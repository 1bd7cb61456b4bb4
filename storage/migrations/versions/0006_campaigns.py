"""Campaigns, creatives, A/B variants, their review history and export packs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

- ``campaigns``: per brand kit (RESTRICT: a kit with campaigns cannot be deleted silently), slug
  unique per kit, the metric that decides the winner (ctr / cvr).
- ``creatives``: a campaign's master images (a generation's image, its product mask, the overlay).
- ``variants``: test cells; cell id unique per campaign; review status and brand-check status as
  CHECKed choices; imported ad-platform results (impressions / clicks / conversions >= 0).
- ``variant_reviews``: append-only review history (status moves, reviewer, comment, marked region).
- ``campaign_exports``: export zips and the snapshot hash they were built from.

Every image, mask and zip is a blob reference (a foreign key to ``blobs``), so blob GC keeps them.
New tables only: the downgrade drops them (and their rows) and touches nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVIEW = "'draft', 'in_review', 'approved', 'rejected'"
CHECKS = "'pass', 'warn', 'fail', 'pending'"


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    """The foreign key ``table.column -> target`` ("blobs.sha256"), named as the models' convention does."""
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{referred}"),
                                   ondelete=ondelete)  # fmt: skip


def _id_and_created(table: str) -> tuple[Any, ...]:
    """The id primary key and created_at column every table here starts with."""
    return (sa.Column("id", sa.Integer(), nullable=False), sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")))  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "campaigns",
        *_id_and_created("campaigns"),
        sa.Column("kit_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(length=8), nullable=False),
        sa.CheckConstraint("metric IN ('ctr', 'cvr')", name="ck_campaigns_metric"),
        _fk("campaigns", "kit_id", "brand_kits.id", "RESTRICT"),
        sa.UniqueConstraint("kit_id", "slug", name="uq_campaigns_kit_id_slug"),
    )
    op.create_table(
        "creatives",
        *_id_and_created("creatives"),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("image_index", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("product_mask_sha256", sa.String(length=64), nullable=True),
        sa.Column("overlay", sa.JSON(), nullable=False),
        sa.CheckConstraint("image_index >= 0", name="ck_creatives_image_index"),
        _fk("creatives", "campaign_id", "campaigns.id", "CASCADE"),
        _fk("creatives", "generation_id", "generations.id", "RESTRICT"),
        _fk("creatives", "image_sha256", "blobs.sha256"),
        _fk("creatives", "product_mask_sha256", "blobs.sha256"),
    )
    op.create_index(op.f("ix_creatives_campaign_id"), "creatives", ["campaign_id"])
    _create_variants()
    op.create_table(
        "variant_reviews",
        *_id_and_created("variant_reviews"),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=False),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("reviewer", sa.String(length=120), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("region", sa.JSON(), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(f"from_status IN ({REVIEW})", name="ck_variant_reviews_from_status"),
        sa.CheckConstraint(f"to_status IN ({REVIEW})", name="ck_variant_reviews_to_status"),
        _fk("variant_reviews", "variant_id", "variants.id", "CASCADE"),
    )
    op.create_index("ix_variant_reviews_variant_id_created_at", "variant_reviews", ["variant_id", "created_at"])
    op.create_table(
        "campaign_exports",
        *_id_and_created("campaign_exports"),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("zip_sha256", sa.String(length=64), nullable=False),
        sa.Column("snapshot_hash", sa.String(length=64), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("variant_ids", sa.JSON(), nullable=False),
        _fk("campaign_exports", "campaign_id", "campaigns.id", "CASCADE"),
        _fk("campaign_exports", "zip_sha256", "blobs.sha256"),
    )
    op.create_index("ix_campaign_exports_campaign_id_snapshot_hash", "campaign_exports", ["campaign_id", "snapshot_hash"])


def _create_variants() -> None:
    results = " AND ".join(f"({c} IS NULL OR {c} >= 0)" for c in ("impressions", "clicks", "conversions"))
    op.create_table(
        "variants",
        *_id_and_created("variants"),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("creative_id", sa.Integer(), nullable=False),
        sa.Column("cell_id", sa.String(length=40), nullable=False),
        sa.Column("factor", sa.String(length=24), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("group_key", sa.String(length=40), nullable=False),
        sa.Column("parent_variant_id", sa.Integer(), nullable=True),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("overlay", sa.JSON(), nullable=False),
        sa.Column("format_key", sa.String(length=64), nullable=True),
        sa.Column("recipe_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("checks_status", sa.String(length=8), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("override_by", sa.String(length=120), nullable=True),
        sa.Column("invariance", sa.JSON(), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=True),
        sa.Column("clicks", sa.BigInteger(), nullable=True),
        sa.Column("conversions", sa.BigInteger(), nullable=True),
        sa.Column("results_imported_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"status IN ({REVIEW})", name="ck_variants_status"),
        sa.CheckConstraint(f"checks_status IN ({CHECKS})", name="ck_variants_checks_status"),
        sa.CheckConstraint(results, name="ck_variants_results"),
        _fk("variants", "campaign_id", "campaigns.id", "CASCADE"),
        _fk("variants", "creative_id", "creatives.id", "CASCADE"),
        _fk("variants", "parent_variant_id", "variants.id", "SET NULL"),
        _fk("variants", "generation_id", "generations.id", "RESTRICT"),
        _fk("variants", "image_sha256", "blobs.sha256"),
        sa.UniqueConstraint("campaign_id", "cell_id", name="uq_variants_campaign_id_cell_id"),
    )
    op.create_index(op.f("ix_variants_creative_id"), "variants", ["creative_id"])
    op.create_index(op.f("ix_variants_parent_variant_id"), "variants", ["parent_variant_id"])
    op.create_index("ix_variants_campaign_id_status", "variants", ["campaign_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_campaign_exports_campaign_id_snapshot_hash", table_name="campaign_exports")
    op.drop_table("campaign_exports")
    op.drop_index("ix_variant_reviews_variant_id_created_at", table_name="variant_reviews")
    op.drop_table("variant_reviews")
    for name in ("ix_variants_campaign_id_status", "ix_variants_parent_variant_id", "ix_variants_creative_id"):
        op.drop_index(name, table_name="variants")
    op.drop_table("variants")
    op.drop_index(op.f("ix_creatives_campaign_id"), table_name="creatives")
    op.drop_table("creatives")
    op.drop_table("campaigns")
