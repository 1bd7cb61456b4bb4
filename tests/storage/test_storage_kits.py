"""Migration 0002 (style guide, rights, masks, versions) on real data, and the kit repositories."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import (
    HEAD,
    AssetRepo,
    BlobRef,
    BlobRepo,
    Database,
    IntegrityViolation,
    KitRepo,
    KitVersionRepo,
    RowNotFound,
    make_engine,
)
from storage.migrate import downgrade, upgrade_to_head
from storage.models import BrandKit


def _sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_0002_upgrades_existing_rows_with_safe_defaults_and_downgrades_keeping_data(
    db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    upgrade_to_head(engine, None)
    downgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO blobs VALUES (:s, 3, 'image/png', '2026-01-01 00:00:00')"), {"s": _sha(1)})
        conn.execute(text("INSERT INTO brand_kits (id, slug, name, trigger_token, class_noun, description, "
                          "created_at, updated_at) VALUES (1, 'old', 'Old', 'old_tok', 'cup', '', "
                          "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))  # fmt: skip
        conn.execute(text("INSERT INTO kit_assets (kit_id, blob_sha256, kind, original_name, width, height, "
                          "caption, created_at) VALUES (1, :s, 'photo', 'a.png', 64, 64, 'cap', "
                          "'2026-01-01 00:00:00')"), {"s": _sha(1)})  # fmt: skip
    report = upgrade_to_head(engine, tmp_path / "backups")
    assert (report.from_revision, report.to_revision) == ("0001", HEAD) and report.backup_path is not None
    with engine.connect() as conn:
        kit = conn.execute(text("SELECT background_color, style_guide FROM brand_kits")).one()
        asset = conn.execute(text("SELECT source, licence, consent, warnings, mask_sha256, caption FROM kit_assets")).one()
    assert tuple(kit) == ("#FFFFFF", "{}")
    assert tuple(asset) == ("", "", 0, "[]", None, "cap")
    downgrade(engine, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT caption FROM kit_assets")).scalar_one() == "cap"
        assert "kit_versions" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    engine.dispose()


def test_trigger_tokens_are_unique_across_kits(db: Database, kit: BrandKit) -> None:
    with pytest.raises(IntegrityViolation, match="trigger_token"), db.session() as s:
        KitRepo(s).create("other", "Other", kit.trigger_token, "cup")
    with db.session() as s:
        assert [k.slug for k in KitRepo(s).list()] == ["acme"]


def test_versions_are_numbered_deduplicated_and_pin_their_blobs(db: Database, kit: BrandKit) -> None:
    with db.session() as s:
        for n in (1, 2):
            BlobRepo(s).record(BlobRef(_sha(n), 10), "image/png")
        repo = KitVersionRepo(s)
        v1, created1 = repo.create_or_get(kit.id, {"assets": [_sha(1)]}, "a" * 64, [_sha(1)])
        same, created_again = repo.create_or_get(kit.id, {"assets": [_sha(1)]}, "a" * 64, [_sha(1)])
        v2, _ = repo.create_or_get(kit.id, {"assets": [_sha(1), _sha(2)]}, "b" * 64, [_sha(1), _sha(2)])
        assert (created1, created_again) == (True, False) and same.id == v1.id
        assert (v1.number, v2.number) == (1, 2)
        assert [v.number for v in repo.list_for_kit(kit.id)] == [2, 1]
        # A version's blobs stay referenced (blob GC keeps them) even when no asset row uses them.
        assert {_sha(1), _sha(2)} <= BlobRepo(s).referenced_shas()


def test_asset_captions_rights_and_delete_stay_inside_their_kit(db: Database, kit: BrandKit) -> None:
    with db.session() as s:
        BlobRepo(s).record(BlobRef(_sha(1), 10), "image/png")
        other = KitRepo(s).create("zeta", "Zeta", "zeta_tok", "shoe")
        asset = AssetRepo(s).add(kit.id, _sha(1), "photo", "a.png", 64, 64, "old", phash="0f" * 8,
                                 warnings=["small"])  # fmt: skip
        asset_id, other_id = asset.id, other.id
    with db.session() as s:
        AssetRepo(s).set_captions(kit.id, {asset_id: "new caption"})
        AssetRepo(s).set_rights(kit.id, asset_id, source="studio shoot", licence="owned", consent=True)
    with pytest.raises(RowNotFound), db.session() as s:
        AssetRepo(s).set_captions(other_id, {asset_id: "hijack"})
    with db.session() as s:
        row = AssetRepo(s).require(asset_id)
        assert (row.caption, row.source, row.licence, row.consent, row.warnings) == (
            "new caption", "studio shoot", "owned", True, ["small"])  # fmt: skip
        AssetRepo(s).delete(kit.id, asset_id)
        assert AssetRepo(s).list_for_kit(kit.id) == []


def test_kit_update_only_touches_editable_fields(db: Database, kit: BrandKit) -> None:
    with db.session() as s:
        KitRepo(s).update(kit.id, style_guide={"tone_words": ["bold"]}, background_color="#112233")
        with pytest.raises(ValueError, match="cannot edit"):
            KitRepo(s).update(kit.id, trigger_token="sneaky")
    with db.session() as s:
        row = KitRepo(s).require(kit.id)
        assert row.style_guide == {"tone_words": ["bold"]} and row.background_color == "#112233"
        assert row.trigger_token == "acmebrand"


def test_claiming_a_specific_job_is_exclusive(db: Database) -> None:
    from storage import JobRepo

    with db.session() as s:
        job, _ = JobRepo(s).enqueue("train", {"kit_id": 1})
        other, _ = JobRepo(s).enqueue("train", {"kit_id": 2})
    with db.session() as s:
        claimed = JobRepo(s).claim(job.id, "worker-a", 30)
        assert claimed is not None and claimed.attempts == 1 and claimed.lease_owner == "worker-a"
    with db.session() as s:
        assert JobRepo(s).claim(job.id, "worker-b", 30) is None  # leased: not claimable
        assert JobRepo(s).get(other.id).status == "queued"  # type: ignore[union-attr]
