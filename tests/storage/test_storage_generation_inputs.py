"""Generation inputs (0005): input images, masks and control images are references blob GC keeps;
the migration fills them in from existing recipes on SQLite and PostgreSQL; lineage uses an index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, Engine, bindparam, delete, inspect, text
from sqlalchemy.orm import Session

from storage import BlobRepo, BlobStore, Database, GenerationRepo, IntegrityViolation, make_engine
from storage.migrate import downgrade, upgrade_to_head
from storage.models import Generation

SHAS = {name: (str(i) * 64) for i, name in enumerate(("image", "photo", "mask", "control", "gone", "grid"), 1)}


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        model_ref="builtin:tiny", prompt="a bottle", scheduler="Euler", num_inference_steps=4,
        guidance_scale=7.0, width=64, height=64, seed=1, recipe={}, mode="inpaint",
    )  # fmt: skip
    fields.update(overrides)
    return fields


def _blob(db: Database, store: BlobStore, data: bytes) -> str:
    ref = store.put_bytes(data)
    with db.session() as session:
        BlobRepo(session).record(ref, "image/png")
    return ref.sha256


def _image(sha: str) -> dict[str, Any]:
    return {"index": 0, "seed": 1, "blob_sha256": sha, "pixel_sha256": "e" * 64, "parameters": "p"}


def test_inputs_are_references_that_gc_keeps_until_the_generation_goes(db: Database, store: BlobStore) -> None:
    image, photo, mask, control, orphan = (_blob(db, store, d) for d in (b"out", b"photo", b"mask", b"edges", b"x"))
    with db.session() as session:
        gen = GenerationRepo(session).create(images=[_image(image)], inputs={"init_image": photo, "mask": mask},
                                             **_fields())  # fmt: skip
        other = GenerationRepo(session).create(images=[], inputs={"control_image": control}, **_fields(mode="controlnet"))
        gen_id, other_id = gen.id, other.id
    with db.session(write=False) as session:
        loaded = GenerationRepo(session).get(gen_id)
        assert loaded is not None
        assert [(i.role, i.blob_sha256) for i in loaded.inputs] == [("init_image", photo), ("mask", mask)]
        assert BlobRepo(session).referenced_shas() == {image, photo, mask, control}
    later = datetime.now(UTC) + timedelta(days=1)  # past every grace period
    with db.session() as session:
        assert BlobRepo(session).delete_unreferenced(later) == [orphan]  # the check can fail: orphans go
    with db.session() as session:  # the inputs go with their generation (cascade), then GC takes them
        session.execute(delete(Generation).where(Generation.id.in_([gen_id, other_id])))
    with db.session() as session:
        assert sorted(BlobRepo(session).delete_unreferenced(later)) == sorted([image, photo, mask, control])


def test_input_rows_are_validated(db: Database, store: BlobStore) -> None:
    photo = _blob(db, store, b"photo")
    with pytest.raises(ValueError, match="unknown generation input role 'depth'"), db.session() as session:
        GenerationRepo(session).create(images=[], inputs={"depth": photo}, **_fields())
    with pytest.raises(ValueError, match="not a blob id"), db.session() as session:
        GenerationRepo(session).create(images=[], inputs={"mask": "../etc/passwd"}, **_fields())
    with pytest.raises(IntegrityViolation), db.session() as session:  # the blob must be recorded
        GenerationRepo(session).create(images=[], inputs={"mask": "f" * 64}, **_fields())
    with db.session() as session:
        gen_id = GenerationRepo(session).create(images=[], inputs={"mask": photo}, **_fields()).id
    for role in ("mask", "depth"):  # unique per (generation, role); the role check holds in SQL too
        with pytest.raises(IntegrityViolation), db.session() as session:
            session.execute(text("INSERT INTO generation_inputs VALUES (:g, :r, :s)"),
                            {"g": gen_id, "r": role, "s": photo})  # fmt: skip


def test_find_by_pixels_is_an_index_lookup(db: Database, store: BlobStore) -> None:
    image = _blob(db, store, b"out")
    with db.session() as session:
        gen_id = GenerationRepo(session).create(images=[_image(image)], **_fields(mode="txt2img")).id
    with db.session(write=False) as session:
        found = GenerationRepo(session).find_by_pixels("e" * 64)
        assert found is not None and found.id == gen_id
        assert GenerationRepo(session).find_by_pixels("d" * 64) is None
        plan = session.execute(
            text("EXPLAIN QUERY PLAN SELECT generation_id FROM generation_images WHERE pixel_sha256 = :p"), {"p": "e" * 64}
        ).all()  # fmt: skip
    assert any("ix_generation_images_pixel_sha256" in str(row) for row in plan), plan


# ----- migration 0005 on both backends -------------------------------------------------------------
def _old_rows(engine: Engine) -> None:
    """Rows as the 0004 app wrote them: inputs named only in the recipe JSON."""
    def recipe(**keys: str) -> dict[str, Any]:
        return {"seed": 1, "init_image_sha256": None, "mask_sha256": None, "control_image_sha256": None, **keys}

    with engine.begin() as conn:
        for name in ("image", "photo", "mask", "control", "grid"):  # "gone" was collected: no row
            conn.execute(text("INSERT INTO blobs (sha256, size, media_type, created_at) VALUES (:s, 3, 'image/png', "
                              "CURRENT_TIMESTAMP)"), {"s": SHAS[name]})  # fmt: skip
        generations = [
            (1, "inpaint", recipe(init_image_sha256=SHAS["photo"], mask_sha256=SHAS["mask"])),
            (2, "controlnet", recipe(control_image_sha256=SHAS["control"])),
            (3, "img2img", recipe(init_image_sha256=SHAS["gone"])),
            (4, "txt2img", {"seed": 1}),
            (5, "grid", recipe(init_image_sha256=SHAS["grid"])),  # a grid's inputs belong to its cells
            (6, "img2img", recipe(init_image_sha256="not-a-hash")),
        ]
        for gen_id, mode, body in generations:
            conn.execute(text(
                "INSERT INTO generations (id, mode, model_ref, model_hash, prompt, negative_prompt, scheduler, "
                "num_inference_steps, guidance_scale, width, height, seed, recipe, created_at) VALUES (:id, :mode, "
                "'builtin:tiny', '', 'p', '', 'Euler', 4, 7.0, 64, 64, 1, :recipe, CURRENT_TIMESTAMP)"
            ).bindparams(bindparam("recipe", type_=JSON)), {"id": gen_id, "mode": mode, "recipe": body})  # fmt: skip
            conn.execute(text("INSERT INTO generation_images (generation_id, \"index\", seed, blob_sha256, pixel_sha256, "
                              "parameters) VALUES (:g, 0, 1, :s, :p, 'x')"),
                         {"g": gen_id, "s": SHAS["image"], "p": f"{gen_id:064d}"})  # fmt: skip


def _check_0005_upgrade_backfills_and_downgrade_keeps_data(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade_to_head(engine, None)
        downgrade(engine, "0004")
        assert "generation_inputs" not in inspect(engine).get_table_names()
        assert "ix_generation_images_pixel_sha256" not in {ix["name"] for ix in inspect(engine).get_indexes("generation_images")}
        _old_rows(engine)
        upgrade_to_head(engine, None)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT generation_id, role, blob_sha256 FROM generation_inputs "
                                     "ORDER BY generation_id, role")).all()  # fmt: skip
        assert [tuple(r) for r in rows] == [
            (1, "init_image", SHAS["photo"]), (1, "mask", SHAS["mask"]), (2, "control_image", SHAS["control"]),
        ]  # fmt: skip
        assert "ix_generation_images_pixel_sha256" in {ix["name"] for ix in inspect(engine).get_indexes("generation_images")}
        with Session(engine) as session:
            assert {SHAS["photo"], SHAS["mask"], SHAS["control"]} <= BlobRepo(session).referenced_shas()
            found = GenerationRepo(session).find_by_pixels(f"{2:064d}")
            assert found is not None and found.id == 2
        downgrade(engine, "0004")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM generations")).scalar_one() == 6
            assert "generation_inputs" not in inspect(conn).get_table_names()
        upgrade_to_head(engine, None)  # and up again: the backfill runs again, same rows
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM generation_inputs")).scalar_one() == 3
    finally:
        engine.dispose()


def test_0005_upgrade_backfills_from_recipes_and_downgrades_on_sqlite(db_url: str) -> None:
    _check_0005_upgrade_backfills_and_downgrade_keeps_data(db_url)


def test_0005_upgrade_backfills_from_recipes_and_downgrades_on_postgresql(pg_url: str) -> None:
    _check_0005_upgrade_backfills_and_downgrade_keeps_data(pg_url)
