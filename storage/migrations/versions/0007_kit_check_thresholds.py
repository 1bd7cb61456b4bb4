"""Brand-check thresholds live in the kit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

``brand_kits.check_thresholds``: a JSON object of overrides for the A/B cells' brand checks (palette
ΔE00, text contrast, product SSIM; see ``studio.editing.checks.CheckThresholds``). ``{}`` keeps the
defaults, so existing kits need no backfill.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("brand_kits", sa.Column("check_thresholds", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("brand_kits") as batch:
        batch.drop_column("check_thresholds")
