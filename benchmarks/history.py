"""History pages at 100,000 generations: keyset cursor pages vs the same pages by OFFSET.

A fresh SQLite database (migrated like the app's) gets 100,000 generations with one image each, in
1,000 distinct timestamps (ties included), spread over 5 kits. Timed, alternating, after a warm-up:
the first page, a deep page (rows 90,001-90,025) by cursor and by ``OFFSET 90000``, and the same for
one kit's list (rows 18,001-18,025 of 20,000). Both sides use the same ORM query shape with the images
and LoRAs loaded (``GenerationRepo.page`` vs ``GenerationRepo.list_recent``); each run opens its own
read transaction. Also timed: ``Studio.history`` (views and cursor included) for the deep page, and
the deep page's ids alone by both methods (the index work without the ORM's fixed cost per page).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROWS = 100_000
PAGE = 25
DEEP = 90_000
KITS = 5
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def insert_generations(db: Any, count: int, kit_ids: list[int], image_sha: str) -> None:
    """``count`` generations (+ one image each) by driver-level executemany, values converted by the
    columns' own types (so they are stored exactly as the ORM stores them)."""
    from storage.models import Generation, GenerationImage

    def rows_of(i: int) -> dict[str, Any]:
        return dict(id=i, created_at=T0 + timedelta(seconds=i // 100), kit_id=kit_ids[i % len(kit_ids)],
                    mode="txt2img", model_ref="builtin:tiny", model_hash="", prompt=f"bottle {i}", negative_prompt="",
                    scheduler="Euler", num_inference_steps=20, guidance_scale=7.0, width=512, height=512, seed=i,
                    recipe={"seed": i})  # fmt: skip

    def image_of(i: int) -> dict[str, Any]:
        return dict(generation_id=i, index=0, seed=i, blob_sha256=image_sha, pixel_sha256="0" * 64, parameters="x")

    for model, make in ((Generation, rows_of), (GenerationImage, image_of)):
        rows = [make(i) for i in range(1, count + 1)]
        columns = list(rows[0])
        dialect = db.engine.dialect
        table = model.__table__
        convert = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v) for c in columns]
        values = [tuple(f(row[c]) for c, f in zip(columns, convert, strict=True)) for row in rows]
        quoted = ", ".join(f'"{c}"' for c in columns)  # "index" is an SQL keyword
        sql = f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' * len(columns))})"
        with db.engine.begin() as connection:
            connection.exec_driver_sql(sql, values)


def run(runs: int = 9, warmup: int = 2) -> dict[str, Any]:
    import storage
    from studio.api import open_studio
    from studio.history import encode_cursor
    from studio.schemas import HistoryQuery
    from studio.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        studio = open_studio(Settings(data_dir=Path(tmp) / "data", base_model="builtin:tiny"))
        db = studio.db
        ref = studio.blobs.put_bytes(b"a generated image")
        with db.session() as s:
            storage.BlobRepo(s).record(ref, "image/png")
            kit_ids = [storage.KitRepo(s).create(f"k{i}", f"K{i}", f"tok{i}", "cup").id for i in range(KITS)]
        started = time.perf_counter()
        insert_generations(db, ROWS, kit_ids, ref.sha256)
        insert_s = time.perf_counter() - started

        def cursor_at(offset: int, kit_id: int | None) -> storage.PageCursor:
            with db.session(write=False) as s:
                row = storage.GenerationRepo(s).list_recent(limit=1, offset=offset - 1, kit_id=kit_id)[0]
            return storage.PageCursor(row.created_at, row.id)

        everything, one_kit = storage.GenerationFilters(), storage.GenerationFilters(kit_id=kit_ids[0])
        deep, kit_deep = cursor_at(DEEP, None), cursor_at(DEEP // KITS, kit_ids[0])

        def keyset(filters: storage.GenerationFilters, cursor: storage.PageCursor | None) -> Callable[[], list[int]]:
            def call() -> list[int]:
                with db.session(write=False) as s:
                    return [g.id for g in storage.GenerationRepo(s).page(filters, cursor, PAGE)[0]]

            return call

        def offset(skip: int, kit_id: int | None) -> Callable[[], list[int]]:
            def call() -> list[int]:
                with db.session(write=False) as s:
                    return [g.id for g in storage.GenerationRepo(s).list_recent(PAGE, skip, kit_id)]

            return call

        def ids(cursor: storage.PageCursor | None, skip: int) -> Callable[[], list[int]]:
            """The page's ids only (no ORM objects, no images): the index work without the fixed costs."""
            from sqlalchemy import select, tuple_

            from storage.models import Generation

            query = select(Generation.id).order_by(Generation.created_at.desc(), Generation.id.desc())
            if cursor is not None:
                query = query.where(tuple_(Generation.created_at, Generation.id) < (cursor.created_at, cursor.id))
            query = query.limit(PAGE).offset(skip)

            def call() -> list[int]:
                with db.session(write=False) as s:
                    return list(s.scalars(query).all())

            return call

        facade_query = HistoryQuery.of(limit=PAGE, cursor=encode_cursor(deep, everything))
        sides = {
            "first_page_keyset": keyset(everything, None), "first_page_offset": offset(0, None),
            "deep_page_keyset": keyset(everything, deep), "deep_page_offset": offset(DEEP, None),
            "kit_deep_page_keyset": keyset(one_kit, kit_deep), "kit_deep_page_offset": offset(DEEP // KITS, kit_ids[0]),
            "deep_page_studio_history": lambda: [g.id for g in studio.history(facade_query).items],
            "deep_ids_keyset": ids(deep, 0), "deep_ids_offset": ids(None, DEEP),
        }  # fmt: skip
        assert sides["deep_page_keyset"]() == sides["deep_page_offset"]() == sides["deep_page_studio_history"]()
        assert sides["kit_deep_page_keyset"]() == sides["kit_deep_page_offset"]()
        assert sides["deep_ids_keyset"]() == sides["deep_ids_offset"]() == sides["deep_page_keyset"]()
        times = _alternate(sides, runs, warmup)
        studio.close()
    ms = {name: round(statistics.median(t) * 1000, 3) for name, t in times.items()}
    return {
        "rows": ROWS, "page": PAGE, "deep_offset": DEEP, "runs": runs, "database": "sqlite (WAL)",
        "insert_100k_s": round(insert_s, 2), **{f"{k}_median_ms": v for k, v in ms.items()},
        "ratio_deep_offset_over_keyset": round(ms["deep_page_offset"] / ms["deep_page_keyset"], 1),
        "ratio_kit_deep_offset_over_keyset": round(ms["kit_deep_page_offset"] / ms["kit_deep_page_keyset"], 1),
        "ratio_deep_over_first_keyset": round(ms["deep_page_keyset"] / ms["first_page_keyset"], 2),
        "ratio_deep_ids_offset_over_keyset": round(ms["deep_ids_offset"] / ms["deep_ids_keyset"], 1),
    }  # fmt: skip


def _alternate(sides: dict[str, Callable[[], Any]], runs: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for call in sides.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(runs):
        for name, call in sides.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times
