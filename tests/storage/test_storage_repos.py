"""Repositories: get-or-create semantics, ordering, eager loading, constraints through the ORM."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from storage import (
    AssetRepo,
    BlobRef,
    BlobRepo,
    BlobStore,
    Database,
    GenerationRepo,
    IntegrityViolation,
    JobRepo,
    KitRepo,
    LoraRepo,
    RowNotFound,
    StorageError,
    TrainingRunRepo,
    TrainingSampleRepo,
)
from storage.models import Blob, BrandKit, Generation, KitAsset, LoraAdapter
from storage.repos import _insert_or_get


def _blob(db: Database, store: BlobStore, data: bytes, media_type: str = "image/png") -> str:
    ref = store.put_bytes(data)
    with db.session() as session:
        BlobRepo(session).record(ref, media_type)
    return ref.sha256


def _generation_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model_ref": "builtin:tiny",
        "prompt": "a bottle on a beach",
        "scheduler": "euler",
        "num_inference_steps": 4,
        "guidance_scale": 7.5,
        "width": 64,
        "height": 64,
        "seed": 1234,
        "recipe": {"prompt": "a bottle on a beach"},
    }
    fields.update(overrides)
    return fields


def _image(index: int, sha: str) -> dict[str, Any]:
    return {
        "index": index,
        "seed": 1234 + index,
        "blob_sha256": sha,
        "pixel_sha256": "p" * 64,
        "parameters": "{}",
    }


def test_blob_record_is_idempotent(db: Database, store: BlobStore) -> None:
    ref = store.put_bytes(b"png bytes")
    with db.session() as session:
        first = BlobRepo(session).record(ref, "image/png")
        again = BlobRepo(session).record(ref, "image/png")
        assert first is again
    with db.session() as session:
        assert BlobRepo(session).record(ref, "image/png").created_at == first.created_at
        assert session.scalar(select(func.count()).select_from(Blob)) == 1
    with pytest.raises(StorageError, match="recorded with size"), db.session() as session:
        BlobRepo(session).record(BlobRef(ref.sha256, ref.size + 1), "image/png")
    with pytest.raises(ValueError), db.session() as session:
        BlobRepo(session).record(BlobRef("../etc", 1), "image/png")


def test_same_upload_twice_concurrently_gives_one_blob_two_references(
    db: Database, store: BlobStore, db_url: str
) -> None:
    """Bad input 13: the same image uploaded by two sessions at once."""
    ref = store.put_bytes(b"the same photo")
    with db.session() as session:
        kits = [KitRepo(session).create(f"kit-{i}", f"Kit {i}", f"tok2_{i}", "cup") for i in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def upload(kit_id: int) -> None:
        database = Database(db_url)
        try:
            start.wait()
            for _ in range(5):  # and a few browser retries
                with database.session() as session:
                    BlobRepo(session).record(ref, "image/png")
                    AssetRepo(session).add(kit_id, ref.sha256, "photo", "photo.jpg", 64, 48)
        except BaseException as err:
            errors.append(err)
        finally:
            database.dispose()

    threads = [threading.Thread(target=upload, args=(k.id,)) for k in kits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Blob)) == 1
        assert session.scalar(select(func.count()).select_from(KitAsset)) == 2


def test_referenced_shas_unions_all_users(db: Database, store: BlobStore, kit: BrandKit) -> None:
    photo, lora_file, image, orphan = (_blob(db, store, bytes([i]) * 10) for i in range(4))
    with db.session() as session:
        AssetRepo(session).add(kit.id, photo, "photo", "a.jpg", 10, 10)
        AssetRepo(session).add(kit.id, photo, "logo", "a.jpg", 10, 10)
        LoraRepo(session).create("acme-v1", lora_file, "builtin:tiny", 4, 4.0, kit_id=kit.id)
        GenerationRepo(session).create(images=[_image(0, image)], **_generation_fields())
    with db.session(write=False) as session:
        assert BlobRepo(session).referenced_shas() == {photo, lora_file, image}
    assert orphan not in {photo, lora_file, image}


def test_kits_list_get_and_slug(db: Database) -> None:
    with db.session() as session:
        repo = KitRepo(session)
        zeta = repo.create("zeta", "Zeta", "zt", "shoe")
        repo.create("alpha", "Alpha", "al", "cup", description="cups")
    with db.session(write=False) as session:
        repo = KitRepo(session)
        assert [k.name for k in repo.list()] == ["Alpha", "Zeta"]
        assert repo.get(zeta.id) is not None
        assert repo.get(999) is None
        by_slug = repo.get_by_slug("alpha")
        assert by_slug is not None and by_slug.description == "cups"
        assert repo.get_by_slug("nope") is None


def test_assets_dedupe_and_filter(db: Database, store: BlobStore, kit: BrandKit) -> None:
    photo = _blob(db, store, b"photo")
    logo = _blob(db, store, b"logo")
    with db.session() as session:
        repo = AssetRepo(session)
        first = repo.add(kit.id, photo, "photo", "IMG_1.jpg", 640, 480, "a bottle")
        repo.add(kit.id, logo, "logo", "logo.png", 100, 100)
    with db.session() as session:  # same (kit, blob, kind) in a later action: the existing row
        again = AssetRepo(session).add(kit.id, photo, "photo", "IMG_1 (copy).jpg", 640, 480)
    assert again.id == first.id and again.original_name == "IMG_1.jpg"
    with db.session(write=False) as session:
        repo = AssetRepo(session)
        assert [a.kind for a in repo.list_for_kit(kit.id)] == ["photo", "logo"]
        assert [a.blob_sha256 for a in repo.list_for_kit(kit.id, kind="logo")] == [logo]
        loaded = KitRepo(session).get(kit.id)
    assert loaded is not None and len(loaded.assets) == 2  # readable after the session


def test_asset_size_check_and_kit_cascade(db: Database, store: BlobStore, kit: BrandKit) -> None:
    photo = _blob(db, store, b"photo")
    with pytest.raises(IntegrityViolation, match="ck_kit_assets_size"), db.session() as session:
        AssetRepo(session).add(kit.id, photo, "photo", "zero.jpg", 0, 10)
    with db.session() as session:
        AssetRepo(session).add(kit.id, photo, "photo", "ok.jpg", 10, 10)
    with db.session() as session:
        session.execute(delete(BrandKit).where(BrandKit.id == kit.id))  # database-level ON DELETE CASCADE
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(KitAsset)) == 0
        assert BlobRepo(session).get(photo) is not None  # blobs are garbage-collected separately


def test_training_run_lifecycle(db: Database, kit: BrandKit) -> None:
    with db.session() as session:
        job, _ = JobRepo(session).enqueue("train", {"kit_id": kit.id})
        run = TrainingRunRepo(session).create(kit.id, "builtin:tiny", {"rank": 4}, job_id=job.id)
    assert (run.status, run.started_at, run.finished_at, run.metrics) == ("queued", None, None, {})
    with db.session() as session:
        running = TrainingRunRepo(session).mark(run.id, "running", metrics={"step": 1})
    assert running.started_at is not None and running.finished_at is None
    started = running.started_at
    with db.session() as session:
        TrainingRunRepo(session).mark(run.id, "running", metrics={"loss": 0.5})
        done = TrainingRunRepo(session).mark(run.id, "failed", error="CUDA out of memory")
    assert done.started_at == started
    assert done.finished_at is not None and done.finished_at >= started
    assert done.metrics == {"step": 1, "loss": 0.5}
    with db.session(write=False) as session:
        [stored] = TrainingRunRepo(session).list_for_kit(kit.id)
        assert stored.error == "CUDA out of memory" and stored.status == "failed"
    with pytest.raises(RowNotFound), db.session() as session:
        TrainingRunRepo(session).mark(999, "running")
    with pytest.raises(ValueError, match="unknown training run status"), db.session() as session:
        TrainingRunRepo(session).mark(run.id, "exploded")  # type: ignore[arg-type]
    with pytest.raises(IntegrityViolation), db.session() as session:  # RESTRICT: kit has runs
        session.execute(delete(BrandKit).where(BrandKit.id == kit.id))


def test_loras_newest_first_and_unique_name(db: Database, store: BlobStore, kit: BrandKit) -> None:
    sha = _blob(db, store, b"lora weights", "application/octet-stream")
    with db.session() as session:
        repo = LoraRepo(session)
        old = repo.create("acme-v1", sha, "builtin:tiny", 4, 4.0, kit_id=kit.id, trigger_phrase="acmebrand")
        old.created_at = datetime.now(UTC) - timedelta(hours=1)
        repo.create("acme-v2", sha, "builtin:tiny", 8, 8.0, kit_id=kit.id)
        repo.create("other", sha, "builtin:tiny", 4, 4.0)
    with db.session(write=False) as session:
        repo = LoraRepo(session)
        assert [lo.name for lo in repo.list(kit_id=kit.id)] == ["acme-v2", "acme-v1"]
        assert len(repo.list()) == 3
        found = repo.get_by_name("acme-v1")
        assert found is not None and found.trigger_phrase == "acmebrand"
        assert repo.get(found.id) is found
    with pytest.raises(IntegrityViolation, match=r"lora_adapters\.name"), db.session() as session:
        LoraRepo(session).create("acme-v1", sha, "builtin:tiny", 4, 4.0)
    with pytest.raises(IntegrityViolation, match="ck_lora_adapters_rank"), db.session() as session:
        LoraRepo(session).create("rank0", sha, "builtin:tiny", 0, 4.0)


def test_training_samples_are_recorded_once_per_step_and_seed_and_keep_their_blobs(
    db: Database, store: BlobStore, kit: BrandKit
) -> None:
    lora, image, kohya = (_blob(db, store, data, "application/octet-stream") for data in (b"w", b"png", b"k"))
    with db.session() as session:
        run = TrainingRunRepo(session).create(kit.id, "builtin:tiny", {})
        repo = TrainingSampleRepo(session)
        first = repo.add(run.id, 10, lora, "acme bottle", 0, image)
        again = repo.add(run.id, 10, lora, "acme bottle", 0, image)  # a resumed run samples step 10 again
        repo.add(run.id, 5, lora, "acme bottle", 1, image)
        LoraRepo(session).create("acme-step10", lora, "builtin:tiny", 4, 4.0, kit_id=kit.id, training_run_id=run.id,
                                 kohya_sha256=kohya, step=10)  # fmt: skip
    assert first.id == again.id
    with db.session(write=False) as session:
        assert [(x.step, x.seed) for x in TrainingSampleRepo(session).list_for_run(run.id)] == [(5, 1), (10, 0)]
        assert {lora, image, kohya} <= BlobRepo(session).referenced_shas()
    with db.session() as session:
        assert BlobRepo(session).delete_unreferenced(datetime.now(UTC) + timedelta(days=1)) == []
    with pytest.raises(IntegrityViolation, match="ck_training_samples_step"), db.session() as session:
        TrainingSampleRepo(session).add(run.id, 0, lora, "p", 2, image)


def test_generation_create_get_list_count(db: Database, store: BlobStore, kit: BrandKit) -> None:
    shas = [_blob(db, store, f"image {i}".encode()) for i in range(3)]
    lora_sha = _blob(db, store, b"lora")
    with db.session() as session:
        lora = LoraRepo(session).create("acme-v1", lora_sha, "builtin:tiny", 4, 4.0)
        repo = GenerationRepo(session)
        first = repo.create(
            images=[_image(1, shas[1]), _image(0, shas[0])],
            loras=[(lora.id, 0.8)],
            kit_id=kit.id,
            **_generation_fields(),
        )
        first.created_at = datetime.now(UTC) - timedelta(minutes=5)
        second = repo.create(images=[_image(0, shas[2])], parent_id=first.id, **_generation_fields(seed=99))
    with db.session(write=False) as session:
        repo = GenerationRepo(session)
        loaded = repo.get(first.id)
        recent = repo.list_recent()
        assert repo.count() == 2 and repo.count(kit_id=kit.id) == 1
        assert [g.id for g in repo.list_recent(kit_id=kit.id)] == [first.id]
        assert [g.id for g in repo.list_recent(limit=1, offset=1)] == [first.id]
        assert repo.get(12345) is None
    assert loaded is not None  # relationships are readable after the session ended
    assert [(i.index, i.blob_sha256) for i in loaded.images] == [(0, shas[0]), (1, shas[1])]
    assert [(lo.lora_id, lo.weight) for lo in loaded.loras] == [(lora.id, 0.8)]
    assert loaded.recipe == {"prompt": "a bottle on a beach"}
    assert [g.id for g in recent] == [second.id, first.id]
    assert recent[0].parent_id == first.id and recent[0].seed == 99


def test_generation_input_validation(db: Database, store: BlobStore) -> None:
    sha = _blob(db, store, b"img")
    with pytest.raises(TypeError, match="unknown generation fields"), db.session() as session:
        GenerationRepo(session).create(images=[], colour="red", **_generation_fields())
    with pytest.raises(ValueError, match="missing.*pixel_sha256"), db.session() as session:
        image = _image(0, sha)
        del image["pixel_sha256"]
        GenerationRepo(session).create(images=[image], **_generation_fields())
    with (
        pytest.raises(IntegrityViolation, match="uq_generation_images_index|generation_images"),
        db.session() as s,
    ):
        GenerationRepo(s).create(images=[_image(0, sha), _image(0, sha)], **_generation_fields())
    with pytest.raises(IntegrityViolation, match="ck_generations_steps"), db.session() as session:
        GenerationRepo(session).create(images=[], **_generation_fields(num_inference_steps=0))
    with db.session(write=False) as session:
        assert GenerationRepo(session).count() == 0


def test_lora_used_by_a_generation_cannot_be_deleted(db: Database, store: BlobStore) -> None:
    sha = _blob(db, store, b"img")
    with db.session() as session:
        lora = LoraRepo(session).create("used", sha, "builtin:tiny", 4, 4.0)
        generation = GenerationRepo(session).create(
            images=[_image(0, sha)], loras=[(lora.id, 1.0)], **_generation_fields()
        )
    with pytest.raises(IntegrityViolation, match="other rows still use"), db.session() as session:
        session.execute(delete(LoraAdapter).where(LoraAdapter.id == lora.id))
    with db.session() as session:  # deleting the generation cascades to its images and LoRA links
        session.execute(delete(Generation).where(Generation.id == generation.id))
        session.execute(delete(LoraAdapter).where(LoraAdapter.id == lora.id))
    with db.session(write=False) as session:
        assert BlobRepo(session).referenced_shas() == set()


def test_blob_garbage_collection_rows_then_files(db: Database, store: BlobStore, kit: BrandKit) -> None:
    """Bad input 36: an upload killed before linking leaves an orphan that GC removes after a grace period."""
    used = _blob(db, store, b"linked photo")
    orphan = _blob(db, store, b"killed before linking")
    fresh = _blob(db, store, b"upload in progress")
    with db.session() as session:
        AssetRepo(session).add(kit.id, used, "photo", "p.jpg", 10, 10)
        for sha in (used, orphan):
            blob = BlobRepo(session).get(sha)
            assert blob is not None
            blob.created_at = datetime.now(UTC) - timedelta(days=2)
    file_only = store.put_bytes(b"file written, row never committed").sha256
    for sha in (used, orphan, file_only):
        old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
        os.utime(store.path_for(sha), (old, old))

    with db.session() as session:
        repo = BlobRepo(session)
        assert repo.delete_unreferenced(created_before=datetime.now(UTC) - timedelta(days=1)) == [orphan]
        keep = repo.recorded_shas()
    assert keep == {used, fresh}
    assert sorted(store.delete_unreferenced(keep, min_age_s=86400)) == sorted([orphan, file_only])
    assert sorted(store.iter_shas()) == sorted([used, fresh])


def test_get_or_create_race_fallback_keeps_the_transaction_usable(db: Database, store: BlobStore) -> None:
    """The SAVEPOINT path taken when a concurrent insert wins (PostgreSQL, or SQLite without locks)."""
    sha = _blob(db, store, b"contended")
    lookups: list[Blob | None] = []

    def stale_then_real(session: Session) -> Blob | None:
        found = None if not lookups else session.get(Blob, sha)  # first lookup "misses" the row
        lookups.append(found)
        return found

    with db.session() as session:
        KitRepo(session).create("before", "Before", "tok3", "cup")
        row, created = _insert_or_get(
            session, Blob(sha256=sha, size=9, media_type="image/png"), lambda: stale_then_real(session)
        )
        KitRepo(session).create("after", "After", "tok4", "cup")
    assert not created and row.sha256 == sha and len(lookups) == 2
    with db.session(write=False) as session:  # work before and after the failed SAVEPOINT committed
        assert sorted(k.slug for k in KitRepo(session).list()) == ["after", "before"]
