"""Generation history pages: keyset order across ties, filters, no N+1, and index use at 100,000 rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect, select

from storage import (
    BlobRef,
    BlobRepo,
    BlobStore,
    Database,
    GenerationFilters,
    GenerationRepo,
    KitRepo,
    LoraRepo,
    PageCursor,
    make_engine,
)
from storage.migrate import downgrade, upgrade_to_head
from storage.models import BrandKit, Generation

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        model_ref="builtin:tiny", prompt="a bottle", scheduler="Euler", num_inference_steps=4,
        guidance_scale=7.0, width=64, height=64, seed=1, recipe={},
    )  # fmt: skip
    fields.update(overrides)
    return fields


def _image_sha(db: Database, store: BlobStore) -> str:
    ref = store.put_bytes(b"one image for every row")
    with db.session() as session:
        BlobRepo(session).record(ref, "image/png")
    return ref.sha256


def _add(db: Database, sha: str, created_at: datetime, loras: list[tuple[int, float]] = (), **fields: Any) -> int:  # type: ignore[assignment]
    image = {"index": 0, "seed": 1, "blob_sha256": sha, "pixel_sha256": "p" * 64, "parameters": "x"}
    with db.session() as session:
        row = GenerationRepo(session).create(images=[image], loras=list(loras), **_fields(created_at=created_at, **fields))
        return row.id


def _walk(db: Database, filters: GenerationFilters, limit: int) -> list[list[int]]:
    """Every page of ``filters``, following next cursors to the end."""
    pages: list[list[int]] = []
    cursor: PageCursor | None = None
    while True:
        with db.session(write=False) as session:
            rows, cursor = GenerationRepo(session).page(filters, cursor, limit)
        pages.append([r.id for r in rows])
        if cursor is None:
            return pages


def _expected(db: Database, filters: GenerationFilters) -> list[int]:
    with db.session(write=False) as session:
        rows, _ = GenerationRepo(session).page(filters, None, 10_000)
    return [r.id for r in rows]


def test_pages_follow_created_at_then_id_across_ties(db: Database, store: BlobStore) -> None:
    sha = _image_sha(db, store)
    # Three timestamps, several rows each, inserted out of order: the boundary often falls inside a tie.
    stamps = [T0, T0 + timedelta(seconds=1), T0, T0 + timedelta(microseconds=1), T0, T0 + timedelta(seconds=1)] * 3
    ids = {_add(db, sha, at, prompt=f"p{i}"): at for i, at in enumerate(stamps)}
    newest_first = sorted(ids, key=lambda i: (ids[i], i), reverse=True)

    for limit in (1, 2, 4, 5, 18, 50):
        pages = _walk(db, GenerationFilters(), limit)
        assert [i for page in pages for i in page] == newest_first, limit
        assert all(len(page) == limit for page in pages[:-1]) and 1 <= len(pages[-1]) <= limit
    with db.session(write=False) as session:  # a cursor is exclusive: the row it names is not repeated
        rows, nxt = GenerationRepo(session).page(GenerationFilters(), PageCursor(ids[newest_first[3]], newest_first[3]), 2)
        assert [r.id for r in rows] == newest_first[4:6] and nxt == PageCursor(ids[newest_first[5]], newest_first[5])
        with pytest.raises(ValueError, match="at least 1"):
            GenerationRepo(session).page(GenerationFilters(), None, 0)


def test_filters_and_count_agree(db: Database, store: BlobStore, kit: BrandKit) -> None:
    sha = _image_sha(db, store)
    with db.session() as session:
        other = KitRepo(session).create("other", "Other", "othertok", "cup")
        lora_a = LoraRepo(session).create("a", sha, "builtin:tiny", 4, 4.0).id
        lora_b = LoraRepo(session).create("b", sha, "builtin:tiny", 4, 4.0).id
    rows = [  # (kit, model, mode, minutes after T0, loras, prompt)
        (kit.id, "builtin:tiny", "txt2img", 0, [(lora_a, 1.0)], "Acme bottle on SLATE"),
        (kit.id, "builtin:tiny", "img2img", 10, [(lora_a, 0.5), (lora_b, 1.0)], "bottle 100% recycled"),
        (other.id, "other-model", "txt2img", 20, [], "cup on slate"),
        (None, "builtin:tiny", "txt2img", 30, [(lora_b, 1.0)], "plain_text bottle"),
        (kit.id, "other-model", "inpaint", 40, [], "bottle, beach"),
    ]
    ids = [_add(db, sha, T0 + timedelta(minutes=m), loras, kit_id=k, model_ref=model, mode=mode, prompt=p)
           for k, model, mode, m, loras, p in rows]  # fmt: skip
    cases = {
        GenerationFilters(): [4, 3, 2, 1, 0],
        GenerationFilters(kit_id=kit.id): [4, 1, 0],
        GenerationFilters(model_ref="other-model"): [4, 2],
        GenerationFilters(mode="txt2img"): [3, 2, 0],
        GenerationFilters(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)): [2, 1],  # [since, until)
        GenerationFilters(lora_id=lora_a): [1, 0],
        GenerationFilters(lora_id=lora_b, kit_id=kit.id): [1],
        GenerationFilters(text="slate"): [2, 0],  # case-insensitive
        GenerationFilters(text="100%"): [1],  # LIKE wildcards match literally
        GenerationFilters(text="n_t"): [3],
        GenerationFilters(text="%"): [1],
        GenerationFilters(kit_id=kit.id, mode="txt2img", model_ref="builtin:tiny", text="BOTTLE"): [0],
        GenerationFilters(kit_id=12345): [],
    }
    for filters, expected in cases.items():
        assert _expected(db, filters) == [ids[i] for i in expected], filters
        assert [i for page in _walk(db, filters, 1) for i in page] == [ids[i] for i in expected], filters
        with db.session(write=False) as session:
            assert GenerationRepo(session).count(filters) == len(expected), filters
    with db.session(write=False) as session:
        assert GenerationRepo(session).count(kit_id=kit.id) == 3 and GenerationRepo(session).count() == 5
        with pytest.raises(TypeError, match="not both"):
            GenerationRepo(session).count(GenerationFilters(), kit_id=kit.id)


@contextmanager
def _statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and parameters) the engine sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_page_loads_images_and_loras_without_n_plus_1(db: Database, store: BlobStore) -> None:
    sha = _image_sha(db, store)
    with db.session() as session:
        lora = LoraRepo(session).create("a", sha, "builtin:tiny", 4, 4.0).id
    for i in range(12):
        _add(db, sha, T0 + timedelta(seconds=i), [(lora, 1.0)])
    with _statements(db) as seen, db.session(write=False) as session:
        rows, _ = GenerationRepo(session).page(GenerationFilters(), None, 10)
    selects = [s for s, _ in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, selects  # the page, its images, its LoRA links: not 1 + 2 x 10
    assert all(len(r.images) == 1 and len(r.loras) == 1 for r in rows)  # readable after the session


def _bulk_insert(db: Database, count: int, kit_ids: list[int]) -> None:
    """``count`` generations in one driver-level executemany (values converted by the columns' own
    types); 1000 distinct timestamps, so most rows share theirs with 99 others."""
    rows = [
        _fields(id=i, created_at=T0 + timedelta(seconds=i // 100), kit_id=kit_ids[i % len(kit_ids)],
                model_ref=f"model-{i % 4}", mode=("txt2img", "img2img")[i % 2], prompt=f"bottle {i}", seed=i,
                model_hash="", negative_prompt="")
        for i in range(1, count + 1)
    ]  # fmt: skip
    columns = list(rows[0])
    table = Generation.__table__
    dialect = db.engine.dialect
    convert = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v) for name in columns]
    values = [tuple(f(row[name]) for name, f in zip(columns, convert, strict=True)) for row in rows]
    sql = f"INSERT INTO generations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    with db.engine.begin() as connection:
        connection.exec_driver_sql(sql, values)


def _plan(db: Database, statement: str, parameters: Any) -> str:
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return " | ".join(str(r[-1]) for r in rows)


def test_100k_rows_pages_are_index_range_scans(db: Database) -> None:
    with db.session() as session:
        kit_ids = [KitRepo(session).create(f"k{i}", f"K{i}", f"tok{i}", "cup").id for i in range(5)]
    started = time.perf_counter()
    _bulk_insert(db, 100_000, kit_ids)
    inserted_s = time.perf_counter() - started
    with db.session(write=False) as session:
        assert GenerationRepo(session).count() == 100_000
        offset_ids = [g.id for g in GenerationRepo(session).list_recent(limit=25, offset=90_000)]
        cursor_row = GenerationRepo(session).list_recent(limit=1, offset=89_999)[0]
    deep = PageCursor(cursor_row.created_at, cursor_row.id)
    since, until = T0 + timedelta(seconds=100), T0 + timedelta(seconds=900)
    cases = {
        "first": (GenerationFilters(), None, "ix_generations_created_at_id"),
        "deep": (GenerationFilters(), deep, "ix_generations_created_at_id"),
        "kit": (GenerationFilters(kit_id=kit_ids[2]), deep, "ix_generations_kit_id_created_at"),
        "model": (GenerationFilters(model_ref="model-1"), deep, "ix_generations_model_ref_created_at"),
        "mode": (GenerationFilters(mode="img2img"), None, "ix_generations_mode_created_at"),
        "dates": (GenerationFilters(since=since, until=until), None, "ix_generations_created_at_id"),
    }
    for name, (filters, cursor, index) in cases.items():
        with _statements(db) as seen, db.session(write=False) as session:
            rows, nxt = GenerationRepo(session).page(filters, cursor, 25)
        assert len(rows) == 25 and nxt is not None, name
        statement, parameters = next((s, p) for s, p in seen if "ORDER BY" in s and "FROM generations" in s)
        plan = _plan(db, statement, parameters)
        assert f"USING INDEX {index}" in plan, (name, plan)
        assert "TEMP B-TREE" not in plan and "SCAN generations" not in plan.replace(f"SCAN generations USING INDEX {index}", ""), (name, plan)
        if name == "deep":
            assert [r.id for r in rows] == offset_ids  # the cursor page is the OFFSET page
        if name == "dates":
            assert all(since <= r.created_at < until for r in rows)
    assert inserted_s < 120, "bulk insert should take seconds"  # a guard against row-by-row inserts, not a benchmark


def test_migration_0004_indexes_go_down_and_up(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade_to_head(engine, None)
        names = lambda: {ix["name"] for ix in inspect(engine).get_indexes("generations")}  # noqa: E731
        assert {"ix_generations_created_at_id", "ix_generations_mode_created_at"} <= names()
        assert "ix_generations_created_at" not in names()
        downgrade(engine, "0003")
        assert "ix_generations_created_at" in names() and not any(n.endswith("_created_at_id") for n in names())
        upgrade_to_head(engine, None)
        assert "ix_generations_kit_id_created_at" in names()
    finally:
        engine.dispose()


def test_paging_and_filters_on_postgresql(pg_url: str) -> None:
    database = Database.open(pg_url)
    try:
        with database.session() as session:
            kit = KitRepo(session).create("acme", "Acme", "acmebrand", "bottle").id
            blob = BlobRepo(session).record(BlobRef(sha256="c" * 64, size=3), "image/png").sha256
        stamps = [T0, T0, T0 + timedelta(microseconds=1), T0, T0 + timedelta(seconds=1)] * 2
        ids = {_add(database, blob, at, kit_id=kit if i % 2 else None, prompt=f"Bottle_{i}"): at
               for i, at in enumerate(stamps)}  # fmt: skip
        newest_first = sorted(ids, key=lambda i: (ids[i], i), reverse=True)
        assert [i for page in _walk(database, GenerationFilters(), 3) for i in page] == newest_first
        kit_rows = [i for page in _walk(database, GenerationFilters(kit_id=kit), 2) for i in page]
        assert kit_rows == [i for i in newest_first if i in set(list(ids)[1::2])]
        assert _expected(database, GenerationFilters(text="bottle_1")) == [list(ids)[1]]
        with database.session(write=False) as session:
            assert GenerationRepo(session).count(GenerationFilters(kit_id=kit)) == 5
            assert session.scalar(select(Generation.created_at).limit(1)).tzinfo is UTC  # type: ignore[union-attr]
    finally:
        database.dispose()
