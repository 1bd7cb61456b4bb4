"""Generations record the input blobs they read, so blob GC keeps them; lineage look-ups use an index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

- ``generation_inputs``: one row per input image a generation read (role ``init_image``, ``mask`` or
  ``control_image``; the blob's sha256). Until now only the recipe JSON named them, so blob garbage
  collection (``BlobRepo.delete_unreferenced``) could drop them and "re-render" would fail. Rows of
  existing databases are filled in from each image-mode generation's recipe (``init_image_sha256``,
  ``mask_sha256``, ``control_image_sha256``), for blobs that are still recorded.
- ``ix_generation_images_pixel_sha256``: ``GenerationRepo.find_by_pixels`` (an input's lineage) is an
  index look-up instead of a table scan.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: role -> the recipe key that names its blob (studio.generation.mode_recipe)
RECIPE_KEYS: dict[str, str] = {
    "init_image": "init_image_sha256",
    "mask": "mask_sha256",
    "control_image": "control_image_sha256",
}
#: Modes whose recipes name no input of their own (a grid's recipe copies its first cell's keys).
NO_INPUT_MODES = ("txt2img", "grid")
BATCH = 1000

_generations = sa.table("generations", sa.column("id", sa.Integer), sa.column("mode", sa.String),
                        sa.column("recipe", sa.JSON))  # fmt: skip
_blobs = sa.table("blobs", sa.column("sha256", sa.String))
_inputs = sa.table("generation_inputs", sa.column("generation_id", sa.Integer), sa.column("role", sa.String),
                   sa.column("blob_sha256", sa.String))  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "generation_inputs",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint("role IN ('init_image', 'mask', 'control_image')", name="ck_generation_inputs_role"),
        sa.ForeignKeyConstraint(["generation_id"], ["generations.id"],
                                name=op.f("fk_generation_inputs_generation_id_generations"), ondelete="CASCADE"),  # fmt: skip
        sa.ForeignKeyConstraint(["blob_sha256"], ["blobs.sha256"], name=op.f("fk_generation_inputs_blob_sha256_blobs")),
        sa.PrimaryKeyConstraint("generation_id", "role", name=op.f("pk_generation_inputs")),
    )
    op.create_index(op.f("ix_generation_inputs_blob_sha256"), "generation_inputs", ["blob_sha256"])
    op.create_index(op.f("ix_generation_images_pixel_sha256"), "generation_images", ["pixel_sha256"])
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index(op.f("ix_generation_images_pixel_sha256"), table_name="generation_images")
    op.drop_index(op.f("ix_generation_inputs_blob_sha256"), table_name="generation_inputs")
    op.drop_table("generation_inputs")


def backfill(connection: sa.Connection) -> int:
    """Insert the input rows of existing generations from their recipes; return how many were added.

    Only blobs the database still records are linked (the foreign key needs the row; a blob already
    collected cannot be re-rendered either way). Recipes are read in id order, a batch at a time.
    """
    added = 0
    for batch in _input_batches(connection):
        shas = {row["blob_sha256"] for row in batch}
        recorded = set(connection.scalars(sa.select(_blobs.c.sha256).where(_blobs.c.sha256.in_(shas))))
        rows = [row for row in batch if row["blob_sha256"] in recorded]
        if rows:
            connection.execute(sa.insert(_inputs), rows)
            added += len(rows)
    return added


def _input_batches(connection: sa.Connection) -> Iterator[list[dict[str, Any]]]:
    last_id = 0
    while True:
        query = (
            sa.select(_generations.c.id, _generations.c.recipe)
            .where(_generations.c.id > last_id, _generations.c.mode.not_in(NO_INPUT_MODES))
            .order_by(_generations.c.id)
            .limit(BATCH)
        )
        found = connection.execute(query).all()
        if not found:
            return
        last_id = found[-1].id
        rows = [
            {"generation_id": gen_id, "role": role, "blob_sha256": sha}
            for gen_id, recipe in found
            for role, key in RECIPE_KEYS.items()
            if isinstance(recipe, dict) and isinstance(sha := recipe.get(key), str) and _is_sha256(sha)
        ]
        if rows:
            yield rows


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
