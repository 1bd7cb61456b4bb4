"""Generation history stays fast at 100,000+ rows: one index per history filter, in page order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

History pages are keyset-paginated newest first on ``(created_at, id)`` (storage/history.py). Each
index ends in that order, so the first page, a deep page and a filtered page are all one index range
scan with no sort:

- ``ix_generations_created_at_id`` (replaces ``ix_generations_created_at``): no filter, date range;
- ``ix_generations_kit_id_created_at``, ``ix_generations_model_ref_created_at``,
  ``ix_generations_mode_created_at``: the kit, model and mode filters.

``ix_generations_kit_id`` stays: it is the foreign key's index (kit deletes set kit_id to NULL).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: name -> columns of the indexes this revision creates
INDEXES: dict[str, list[str]] = {
    "ix_generations_created_at_id": ["created_at", "id"],
    "ix_generations_kit_id_created_at": ["kit_id", "created_at", "id"],
    "ix_generations_model_ref_created_at": ["model_ref", "created_at", "id"],
    "ix_generations_mode_created_at": ["mode", "created_at", "id"],
}


def upgrade() -> None:
    op.drop_index("ix_generations_created_at", table_name="generations")
    for name, columns in INDEXES.items():
        op.create_index(name, "generations", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="generations")
    op.create_index("ix_generations_created_at", "generations", ["created_at"])
