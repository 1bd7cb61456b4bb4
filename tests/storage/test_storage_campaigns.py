"""Campaign storage (0006): campaigns, creatives, variants with unique cell ids, the review log with its
compare-and-set, all-or-nothing results, export packs, blob GC, and the migration — on SQLite and on a
real PostgreSQL server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, inspect, text
from sqlalchemy.orm import Session

from storage import (
    HEAD,
    BlobRepo,
    BlobStore,
    CampaignRepo,
    ConcurrentUpdate,
    CreativeRepo,
    Database,
    ExportRepo,
    GenerationRepo,
    IntegrityViolation,
    KitRepo,
    RowNotFound,
    VariantRepo,
    make_engine,
)
from storage.campaigns import Campaign, Variant
from storage.migrate import downgrade, upgrade_to_head
from storage.models import BrandKit, Generation

CAMPAIGN_TABLES = {"campaigns", "creatives", "variants", "variant_reviews", "campaign_exports"}


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")
    database = Database.open(url, backup_dir=tmp_path / "backups")
    yield database
    database.dispose()


@dataclass(frozen=True)
class World:
    kit_id: int
    generation_id: int
    master: str
    mask: str
    images: tuple[str, ...]  #: variant image blobs
    zip: str


def _blob(session: Session, store: BlobStore, data: bytes) -> str:
    ref = store.put_bytes(data)
    BlobRepo(session).record(ref, "image/png")
    return ref.sha256


def _generation(session: Session, kit_id: int | None, image: str) -> Generation:
    return GenerationRepo(session).create(
        images=[{"index": 0, "seed": 7, "blob_sha256": image, "pixel_sha256": "e" * 64, "parameters": "p"}],
        kit_id=kit_id, model_ref="builtin:tiny", prompt="a bottle", scheduler="Euler", num_inference_steps=4,
        guidance_scale=7.0, width=64, height=64, seed=7, recipe={"seed": 7},
    )  # fmt: skip


def _world(db: Database, store: BlobStore) -> World:
    with db.session() as s:
        kit = KitRepo(s).create("acme", "Acme", "acmebrand", "bottle")
        master, mask, zip_, *images = (_blob(s, store, d) for d in (b"master", b"mask", b"zip", b"v1", b"v2", b"v3"))
        generation = _generation(s, kit.id, master)
        return World(kit.id, generation.id, master, mask, tuple(images), zip_)


def _campaign(db: Database, w: World, slug: str = "spring") -> tuple[int, int]:
    """A campaign with one creative: (campaign id, creative id)."""
    with db.session() as s:
        campaign = CampaignRepo(s).create(w.kit_id, "Spring", slug, "more clicks")
        creative = CreativeRepo(s).create(campaign.id, "hero", w.generation_id, 0, w.master, w.mask, {"cta": "Buy"})
        return campaign.id, creative.id


def _variant(s: Session, creative_id: int, image: str, **fields: Any) -> Variant:
    return VariantRepo(s).create(creative_id=creative_id, factor="background", value="beach",
                                 hypothesis="sand sells", group_key="g1", image_sha256=image, **fields)  # fmt: skip


# ----- campaigns and creatives ----------------------------------------------------------------------
def test_campaigns_round_trip_with_slugs_unique_per_kit(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    with any_db.session() as s:
        other_kit = KitRepo(s).create("other", "Other", "othertok", "cup").id
        first = CampaignRepo(s).create(w.kit_id, "Spring", "spring", "more clicks", "cvr").id
        second = CampaignRepo(s).create(w.kit_id, "Summer", "summer").id
        CampaignRepo(s).create(other_kit, "Spring", "spring")  # the same slug in another kit is fine
    with any_db.session(write=False) as s:
        repo = CampaignRepo(s)
        got = repo.require(first)
        assert (got.kit_id, got.name, got.slug, got.objective, got.metric) == (w.kit_id, "Spring", "spring", "more clicks", "cvr")
        assert got.created_at.tzinfo is UTC
        assert [c.id for c in repo.list(w.kit_id)] == [second, first]  # newest first
        assert len(repo.list()) == 3
        found = repo.by_slug(w.kit_id, "summer")
        assert found is not None and found.id == second and repo.by_slug(w.kit_id, "autumn") is None
        assert repo.get(9999) is None
        with pytest.raises(RowNotFound, match="campaign 9999 does not exist"):
            repo.require(9999)
    with pytest.raises(IntegrityViolation, match="slug"), any_db.session() as s:
        CampaignRepo(s).create(w.kit_id, "Spring again", "spring")
    with pytest.raises(ValueError, match="unknown campaign metric 'roi'"), any_db.session() as s:
        CampaignRepo(s).create(w.kit_id, "ROI", "roi", metric="roi")
    with pytest.raises(IntegrityViolation), any_db.session() as s:  # the metric rule holds in SQL too
        s.execute(text("UPDATE campaigns SET metric = 'roi' WHERE id = :id"), {"id": first})


def test_creatives_round_trip_and_need_recorded_blobs(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    campaign_id, creative_id = _campaign(any_db, w)
    with any_db.session() as s:
        repo = CreativeRepo(s)
        second = repo.create(campaign_id, "plain", w.generation_id, 0, w.master).id
        repo.set_product_mask(second, w.mask)
        repo.set_overlay(creative_id, {"headline": "Fresh", "cta": "Shop"})
        repo.set_product_mask(creative_id, None)
    with any_db.session(write=False) as s:
        repo = CreativeRepo(s)
        assert [(c.id, c.name) for c in repo.list(campaign_id)] == [(creative_id, "hero"), (second, "plain")]
        got = repo.require(creative_id)
        assert (got.overlay, got.product_mask_sha256, got.image_index) == ({"headline": "Fresh", "cta": "Shop"}, None, 0)
        assert repo.require(second).product_mask_sha256 == w.mask
        with pytest.raises(RowNotFound, match="creative 9999"):
            repo.require(9999)
    with pytest.raises(IntegrityViolation), any_db.session() as s:  # a blob nobody recorded
        CreativeRepo(s).create(campaign_id, "ghost", w.generation_id, 0, "f" * 64)
    with pytest.raises(ValueError, match="not a blob id"), any_db.session() as s:
        CreativeRepo(s).create(campaign_id, "bad", w.generation_id, 0, "../etc/passwd")
    with pytest.raises(IntegrityViolation), any_db.session() as s:
        CreativeRepo(s).create(campaign_id, "neg", w.generation_id, -1, w.master)


# ----- variants ---------------------------------------------------------------------------------------
def test_cell_ids_count_up_within_the_campaign_and_are_unique(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    campaign_id, creative_id = _campaign(any_db, w)
    other_campaign, other_creative = _campaign(any_db, w, slug="autumn")
    with any_db.session() as s:
        second_creative = CreativeRepo(s).create(campaign_id, "alt", w.generation_id, 0, w.master).id
        cells = [_variant(s, creative_id, w.images[0]).cell_id, _variant(s, creative_id, w.images[1]).cell_id,
                 _variant(s, second_creative, w.images[2]).cell_id,
                 _variant(s, creative_id, w.images[0], cell_id="hand-made").cell_id,
                 _variant(s, creative_id, w.images[0]).cell_id, _variant(s, other_creative, w.images[0]).cell_id]  # fmt: skip
    assert cells == [f"C{creative_id}-1", f"C{creative_id}-2", f"C{second_creative}-3", "hand-made",
                     f"C{creative_id}-4", f"C{other_creative}-1"]  # fmt: skip
    with pytest.raises(IntegrityViolation, match="cell_id"), any_db.session() as s:
        _variant(s, creative_id, w.images[0], cell_id=f"C{creative_id}-2")
    with pytest.raises(ValueError, match=f"belongs to campaign {campaign_id}, not {other_campaign}"), any_db.session() as s:
        _variant(s, creative_id, w.images[0], campaign_id=other_campaign)
    with pytest.raises(TypeError, match=r"unknown \['status'\], missing \['image_sha256'\]"), any_db.session() as s:
        VariantRepo(s).create(creative_id=creative_id, factor="copy", value="x", status="approved")
    with pytest.raises(RowNotFound, match="creative 9999"), any_db.session() as s:
        _variant(s, 9999, w.images[0])
    with any_db.session(write=False) as s:
        repo = VariantRepo(s)
        variants = repo.list(campaign_id)
        assert [v.cell_id for v in variants] == [cells[i] for i in (0, 1, 3, 4, 2)]  # by creative, then order
        assert [v.cell_id for v in repo.list(campaign_id, creative_id=second_creative)] == [cells[2]]
        first = repo.by_cell(campaign_id, cells[0])
        assert first is not None and repo.by_cell(campaign_id, "nope") is None
        assert (first.status, first.checks_status, first.checks, first.overlay, first.campaign_id) == (
            "draft", "pending", [], {}, campaign_id)  # fmt: skip
        assert (first.factor, first.value, first.hypothesis, first.group_key) == ("background", "beach", "sand sells", "g1")


def test_cell_ids_are_retried_when_a_concurrent_insert_took_one_on_postgresql(pg_url: str, store: BlobStore) -> None:
    """B computes the same next cell id as A's uncommitted insert, waits on the unique index, loses, retries."""
    db = Database.open(pg_url)
    try:
        w = _world(db, store)
        _, creative_id = _campaign(db, w)
        got: dict[str, Any] = {}

        def insert_b() -> None:
            try:
                with db.session() as s:
                    got["b"] = _variant(s, creative_id, w.images[1]).cell_id
            except Exception as err:  # reported in the main thread's assertion
                got["error"] = err

        with db.session() as a:
            got["a"] = _variant(a, creative_id, w.images[0]).cell_id
            b = threading.Thread(target=insert_b)
            b.start()
            _wait_for_lock_waiters(db.engine, 1)  # B is blocked on A's uncommitted cell id
        b.join(30)
        assert "error" not in got and (got["a"], got["b"]) == (f"C{creative_id}-1", f"C{creative_id}-2")
    finally:
        db.dispose()


def _wait_for_lock_waiters(engine: Engine, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND datname = current_database()")).scalar_one()  # fmt: skip
            conn.rollback()
            if waiting >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"no {count} session(s) waited on a lock within {timeout_s}s")


def test_checks_and_the_review_log(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    _, creative_id = _campaign(any_db, w)
    checks = [{"name": "palette", "status": "fail", "value": 23.5, "detail": "far", "numbers": {"mean": 23.5}}]
    region = {"x": 4, "y": 8, "w": 16, "h": 16, "instruction": "remove the glare"}
    with any_db.session() as s:
        repo = VariantRepo(s)
        vid = _variant(s, creative_id, w.images[0]).id
        assert repo.set_checks(vid, checks, "fail").checks == checks
        repo.transition(vid, "in_review", "ann", "please look", expected_status="draft")
    with pytest.raises(ValueError, match="failed its brand checks; approving it needs an override reason"), any_db.session() as s:
        VariantRepo(s).transition(vid, "approved", "bob", override_reason="  ", expected_status="in_review")
    with any_db.session() as s:
        moved = VariantRepo(s).transition(vid, "approved", "bob", "ok for the test", override_reason="legal signed off",
                                          expected_status="in_review")  # fmt: skip
        assert (moved.status, moved.override_reason, moved.override_by) == ("approved", "legal signed off", "bob")
        VariantRepo(s).transition(vid, "in_review", "cat", "glare on the cap", region=region, expected_status="approved")
        note = VariantRepo(s).add_review_note(vid, "dan", "region -> cell C1-9", region=region)
        assert (note.from_status, note.to_status) == ("in_review", "in_review")
    with any_db.session(write=False) as s:
        repo = VariantRepo(s)
        log = [(r.from_status, r.to_status, r.reviewer, r.comment, r.region, r.override_reason) for r in repo.reviews(vid)]
        assert log == [
            ("draft", "in_review", "ann", "please look", None, None),
            ("in_review", "approved", "bob", "ok for the test", None, "legal signed off"),
            ("approved", "in_review", "cat", "glare on the cap", region, None),
            ("in_review", "in_review", "dan", "region -> cell C1-9", region, None),
        ]
        assert repo.require(vid).status == "in_review"  # a note moves nothing
        assert all(r.created_at.tzinfo is UTC for r in repo.reviews(vid))
        assert [v.id for v in repo.list(_campaign_of(s, creative_id), status="in_review")] == [vid]
        assert repo.list(_campaign_of(s, creative_id), status="approved") == []
    refused = ((dict(to_status="done"), "unknown review status 'done'"), (dict(reviewer=" "), "reviewer is empty"),
               (dict(expected_status="gone"), "unknown expected review status 'gone'"))  # fmt: skip
    for bad, message in refused:
        args: dict[str, Any] = {"to_status": "approved", "reviewer": "bob", "expected_status": "in_review", **bad}
        with pytest.raises(ValueError, match=message), any_db.session() as s:
            VariantRepo(s).transition(vid, **args)
    with pytest.raises(RowNotFound, match="variant 9999"), any_db.session() as s:
        VariantRepo(s).add_review_note(9999, "dan", "lost")
    with pytest.raises(ValueError, match="unknown checks status 'meh'"), any_db.session() as s:
        VariantRepo(s).set_checks(vid, [], "meh")
    for sql in ("UPDATE variants SET status = 'done'", "UPDATE variants SET checks_status = 'meh'"):
        with pytest.raises(IntegrityViolation), any_db.session() as s:  # the rules hold in SQL too
            s.execute(text(sql))


def _campaign_of(s: Session, creative_id: int) -> int:
    return CreativeRepo(s).require(creative_id).campaign_id


def test_two_reviewers_racing_cannot_both_move_a_variant(any_db: Database, store: BlobStore) -> None:
    """Both saw "in_review" and decided; the compare-and-set lets exactly one through, the other gets
    ConcurrentUpdate and writes nothing (no status change, no review row)."""
    w = _world(any_db, store)
    _, creative_id = _campaign(any_db, w)
    with any_db.session() as s:
        vid = _variant(s, creative_id, w.images[0]).id
        VariantRepo(s).transition(vid, "in_review", "ann", expected_status="draft")
    with any_db.session(write=False) as s:
        seen = VariantRepo(s).require(vid).status
    start, outcomes = threading.Barrier(2), {}

    def review(reviewer: str, to_status: str) -> None:
        start.wait()
        try:
            with any_db.session() as s:
                VariantRepo(s).transition(vid, to_status, reviewer, expected_status=seen)
            outcomes[reviewer] = "moved"
        except ConcurrentUpdate as err:
            outcomes[reviewer] = str(err)

    threads = [threading.Thread(target=review, args=args) for args in (("bob", "approved"), ("cat", "rejected"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winner = next(name for name, outcome in outcomes.items() if outcome == "moved")
    (loss,) = [outcome for name, outcome in outcomes.items() if name != winner]
    assert "someone else reviewed it meanwhile" in loss and "not 'in_review'" in loss
    with any_db.session(write=False) as s:
        assert VariantRepo(s).require(vid).status == {"bob": "approved", "cat": "rejected"}[winner]
        assert [r.reviewer for r in VariantRepo(s).reviews(vid)] == ["ann", winner]
    assert issubclass(ConcurrentUpdate, IntegrityViolation)  # the facade maps it to Conflict


def test_a_reviewer_waiting_on_the_row_lock_loses_on_postgresql(pg_url: str, store: BlobStore) -> None:
    """Slow's UPDATE waits for fast's uncommitted move of the same row, then re-checks the status and
    matches nothing: ConcurrentUpdate, and only fast's review row exists."""
    db = Database.open(pg_url)
    try:
        w = _world(db, store)
        _, creative_id = _campaign(db, w)
        with db.session() as s:
            vid = _variant(s, creative_id, w.images[0]).id
            VariantRepo(s).transition(vid, "in_review", "ann", expected_status="draft")
        got: dict[str, Any] = {}

        def slow() -> None:
            try:
                with db.session() as s:
                    VariantRepo(s).transition(vid, "rejected", "cat", expected_status="in_review")
            except Exception as err:  # checked in the main thread
                got["error"] = err

        with db.session() as fast:
            VariantRepo(fast).transition(vid, "approved", "bob", expected_status="in_review")
            thread = threading.Thread(target=slow)
            thread.start()
            _wait_for_lock_waiters(db.engine, 1)  # slow is blocked on fast's row lock
        thread.join(30)
        assert isinstance(got.get("error"), ConcurrentUpdate), got
        assert "is 'approved' now, not 'in_review'" in str(got["error"])
        with db.session(write=False) as s:
            assert [r.to_status for r in VariantRepo(s).reviews(vid)] == ["in_review", "approved"]
    finally:
        db.dispose()


def test_results_are_imported_all_or_nothing(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    campaign_id, creative_id = _campaign(any_db, w)
    with any_db.session() as s:
        a, b = (_variant(s, creative_id, image).cell_id for image in w.images[:2])
        updated = VariantRepo(s).set_results(campaign_id, [(b, 2**40, 900, 12), (a, 1000, 31, 2)])
        assert [v.cell_id for v in updated] == [b, a]
    bad_batches = [
        ([(a, 5, 1, 0), ("C9-9", 5, 1, 0)], RowNotFound, r"no cells \['C9-9'\]; nothing was imported"),
        ([(a, 5, 1, 0), (b, 5, -1, 0)], ValueError, f"cell {b}: clicks must be a whole number >= 0, got -1"),
        ([(a, 5, 1, 0), (a, 6, 1, 0)], ValueError, "appear more than once"),
        ([(a, 5, True, 0)], ValueError, "clicks must be a whole number"),
        ([(a, 5.5, 1, 0)], ValueError, "impressions must be a whole number"),
        ([(a, 2**63, 1, 0)], ValueError, "impressions must be a whole number"),
        ([(a, 5, 1)], ValueError, "must be \\(cell_id, impressions, clicks, conversions\\)"),
    ]
    for rows, error, message in bad_batches:
        with pytest.raises(error, match=message), any_db.session() as s:
            VariantRepo(s).set_results(campaign_id, rows)  # type: ignore[arg-type]
    with any_db.session(write=False) as s:
        got = {v.cell_id: (v.impressions, v.clicks, v.conversions) for v in VariantRepo(s).list(campaign_id)}
        assert got == {a: (1000, 31, 2), b: (2**40, 900, 12)}  # untouched by every refused batch
        imported = VariantRepo(s).require(VariantRepo(s).by_cell(campaign_id, a).id).results_imported_at  # type: ignore[union-attr]
        assert imported is not None and imported.tzinfo is UTC
    with pytest.raises(IntegrityViolation), any_db.session() as s:
        s.execute(text("UPDATE variants SET conversions = -1"))


def test_exports_are_listed_and_found_by_snapshot(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    campaign_id, _ = _campaign(any_db, w)
    with any_db.session() as s:
        repo = ExportRepo(s)
        first = repo.create(campaign_id, w.zip, "a" * 64, ["meta_feed", "iab_300x250"], [3, 1]).id
        second = repo.create(campaign_id, w.zip, "a" * 64, ("meta_feed",), (3,)).id
        third = repo.create(campaign_id, w.zip, "b" * 64, ["x_post"], [1]).id
    with any_db.session(write=False) as s:
        repo = ExportRepo(s)
        assert [e.id for e in repo.list(campaign_id)] == [third, second, first]
        latest = repo.latest_for_snapshot(campaign_id, "a" * 64)
        assert latest is not None and (latest.id, latest.channels, latest.variant_ids) == (second, ["meta_feed"], [3])
        assert repo.latest_for_snapshot(campaign_id, "c" * 64) is None
        assert repo.list(campaign_id + 100) == []
        got = repo.require(first)
        assert (repo.get(first), got.channels, got.variant_ids, got.zip_sha256) == (got, ["meta_feed", "iab_300x250"], [3, 1], w.zip)
        with pytest.raises(RowNotFound, match="export 9999 does not exist"):
            repo.require(9999)
    with pytest.raises(IntegrityViolation), any_db.session() as s:
        ExportRepo(s).create(campaign_id, "d" * 64, "a" * 64, [], [])


# ----- deletes, blob GC -------------------------------------------------------------------------------
def test_blob_gc_keeps_campaign_blobs_until_their_rows_go(any_db: Database, store: BlobStore) -> None:
    w = _world(any_db, store)
    campaign_id, creative_id = _campaign(any_db, w)
    with any_db.session() as s:
        orphan = _blob(s, store, b"orphan")
        parent = _variant(s, creative_id, w.images[0]).id
        child = _variant(s, creative_id, w.images[1], parent_variant_id=parent).id
        ExportRepo(s).create(campaign_id, w.zip, "a" * 64, ["meta_feed"], [parent])
    later = datetime.now(UTC) + timedelta(days=1)
    with any_db.session() as s:
        assert {w.mask, w.zip, *w.images[:2]} <= BlobRepo(s).referenced_shas()
        assert sorted(BlobRepo(s).delete_unreferenced(later)) == sorted([orphan, w.images[2]])  # the check can fail
    with any_db.session() as s:
        assert BlobRepo(s).recorded_shas() == {w.master, w.mask, w.zip, *w.images[:2]}
        s.execute(delete(Variant).where(Variant.id == parent))
    with any_db.session(write=False) as s:  # a region child outlives its parent (SET NULL)
        assert VariantRepo(s).require(child).parent_variant_id is None
    for table in (BrandKit, Generation):  # kits and masters with campaigns are not deleted silently
        with pytest.raises(IntegrityViolation), any_db.session() as s:
            s.execute(delete(table))
    with any_db.session() as s:  # the campaign goes with everything in it; its blobs are then collectable
        s.execute(delete(Campaign).where(Campaign.id == campaign_id))
    with any_db.session() as s:
        assert sorted(BlobRepo(s).delete_unreferenced(later)) == sorted([w.mask, w.zip, *w.images[:2]])
        assert s.execute(text("SELECT count(*) FROM variant_reviews")).scalar_one() == 0
        assert BlobRepo(s).recorded_shas() == {w.master}  # still the generation's image


# ----- migration 0006 ---------------------------------------------------------------------------------
def _rows_of_0005(engine: Engine) -> None:
    """A kit, a blob and a generation as the 0005 app wrote them."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO blobs (sha256, size, media_type, created_at) VALUES (:s, 3, 'image/png', "
                          "CURRENT_TIMESTAMP)"), {"s": "a" * 64})  # fmt: skip
        conn.execute(text("INSERT INTO brand_kits (id, slug, name, trigger_token, class_noun, description, "
                          "background_color, style_guide, created_at, updated_at) VALUES (1, 'old', 'Old', "
                          "'oldtok', 'cup', '', '#FFFFFF', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))  # fmt: skip
        conn.execute(text(
            "INSERT INTO generations (id, kit_id, mode, model_ref, model_hash, prompt, negative_prompt, scheduler, "
            "num_inference_steps, guidance_scale, width, height, seed, recipe, created_at) VALUES (1, 1, 'txt2img', "
            "'builtin:tiny', '', 'p', '', 'Euler', 4, 7.0, 64, 64, 1, '{}', CURRENT_TIMESTAMP)"))  # fmt: skip
        conn.execute(text("INSERT INTO generation_images (generation_id, \"index\", seed, blob_sha256, pixel_sha256, "
                          "parameters) VALUES (1, 0, 1, :s, :s, 'x')"), {"s": "a" * 64})  # fmt: skip


def _counts(engine: Engine, tables: tuple[str, ...]) -> list[int]:
    with engine.connect() as conn:
        return [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables]  # noqa: S608


def _check_0006_up_from_0005_with_data_and_down(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade_to_head(engine, None)
        downgrade(engine, "0005")
        assert not CAMPAIGN_TABLES & set(inspect(engine).get_table_names())
        _rows_of_0005(engine)
        report = upgrade_to_head(engine, None)
        assert (report.from_revision, report.to_revision) == ("0005", HEAD)
        assert CAMPAIGN_TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:  # 0007: the old kit gets the default thresholds ({})
            stored = conn.execute(text("SELECT check_thresholds FROM brand_kits")).scalar_one()
            assert (json.loads(stored) if isinstance(stored, str) else stored) == {}
        indexes = {ix["name"] for t in ("variants", "variant_reviews") for ix in inspect(engine).get_indexes(t)}
        assert {"ix_variants_campaign_id_status", "ix_variants_creative_id",
                "ix_variant_reviews_variant_id_created_at"} <= indexes  # fmt: skip
        with Session(engine) as s, s.begin():  # the new tables work with the old rows
            campaign = CampaignRepo(s).create(1, "Old", "old")
            creative = CreativeRepo(s).create(campaign.id, "m", 1, 0, "a" * 64)
            variant = VariantRepo(s).create(creative_id=creative.id, factor="control", value="master", image_sha256="a" * 64)
            VariantRepo(s).transition(variant.id, "in_review", "ann", expected_status="draft")
            ExportRepo(s).create(campaign.id, "a" * 64, "b" * 64, ["meta_feed"], [variant.id])
            assert variant.cell_id == f"C{creative.id}-1"
        assert _counts(engine, tuple(sorted(CAMPAIGN_TABLES))) == [1, 1, 1, 1, 1]
        downgrade(engine, "0005")  # drops the campaign tables with their rows, keeps everything else
        assert not CAMPAIGN_TABLES & set(inspect(engine).get_table_names())
        assert _counts(engine, ("brand_kits", "generations", "generation_images", "blobs")) == [1, 1, 1, 1]
        upgrade_to_head(engine, None)
        assert _counts(engine, ("campaigns", "variants")) == [0, 0]
    finally:
        engine.dispose()


def test_0006_upgrades_from_0005_with_data_and_downgrades_on_sqlite(db_url: str) -> None:
    _check_0006_up_from_0005_with_data_and_down(db_url)


def test_0006_upgrades_from_0005_with_data_and_downgrades_on_postgresql(pg_url: str) -> None:
    _check_0006_up_from_0005_with_data_and_down(pg_url)


def test_variant_list_by_status_is_an_index_lookup(db: Database) -> None:
    with db.session(write=False) as s:
        plan = s.execute(text("EXPLAIN QUERY PLAN SELECT id FROM variants WHERE campaign_id = 1 AND status = 'draft'")).all()
    assert any("ix_variants_campaign_id_status" in str(row) for row in plan), plan
