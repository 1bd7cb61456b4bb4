"""Blob store: content addressing, sharding, dedupe, verification, atomic writes under faults."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from storage import BlobCorrupt, BlobNotFound, BlobRef, BlobStore, ReadOnlyStorage, StorageError, StorageFull
from storage.blobs import CHUNK_SIZE


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_bytes_is_content_addressed_and_sharded(store: BlobStore) -> None:
    data = b"brand studio logo bytes"
    sha = hashlib.sha256(data).hexdigest()
    ref = store.put_bytes(data)
    assert ref == BlobRef(sha256=sha, size=len(data))
    path = store.path_for(sha)
    assert path == store.root / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == data
    assert store.exists(sha) and store.verify(sha)
    assert store.read_bytes(sha) == data
    assert _all_files(store.root) == [path]


def test_same_content_is_stored_once(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(5000)
    first = store.put_bytes(data)
    inode = store.path_for(first.sha256).stat().st_ino
    source = tmp_path / "upload.png"
    source.write_bytes(data)
    assert store.put_bytes(data) == first
    assert store.put_file(source) == first
    assert store.path_for(first.sha256).stat().st_ino == inode  # not rewritten
    assert _all_files(store.root) == [store.path_for(first.sha256)]
    assert list(store.iter_shas()) == [first.sha256]


def test_put_file_streams_large_files(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 123)
    source = tmp_path / "lora.safetensors"
    source.write_bytes(data)
    ref = store.put_file(source)
    assert ref == BlobRef(hashlib.sha256(data).hexdigest(), len(data))
    assert store.read_bytes(ref.sha256) == data
    assert source.read_bytes() == data  # the source is copied, not moved


def test_put_file_missing_source(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        store.put_file(tmp_path / "nope.png")


def test_empty_blob(store: BlobStore) -> None:
    ref = store.put_bytes(b"")
    assert ref.size == 0 and store.read_bytes(ref.sha256) == b""


def test_missing_blob(store: BlobStore) -> None:
    sha = "0" * 64
    assert not store.exists(sha)
    assert not store.verify(sha)
    with pytest.raises(BlobNotFound, match=sha):
        store.read_bytes(sha)
    assert store.delete(sha) is False


def test_corrupt_blob_is_detected_and_repaired_by_a_new_put(store: BlobStore) -> None:
    data = b"original pixels" * 100
    ref = store.put_bytes(data)
    path = store.path_for(ref.sha256)
    path.write_bytes(b"bit rot" + data[7:])
    assert not store.verify(ref.sha256)
    with pytest.raises(BlobCorrupt, match="damaged"):
        store.read_bytes(ref.sha256)
    assert store.read_bytes(ref.sha256, verify=False).startswith(b"bit rot")
    assert store.put_bytes(data) == ref  # dedupe never trusts a damaged copy
    assert store.verify(ref.sha256) and store.read_bytes(ref.sha256) == data


def test_delete(store: BlobStore) -> None:
    ref = store.put_bytes(b"x")
    assert store.delete(ref.sha256) is True
    assert not store.exists(ref.sha256)
    assert list(store.iter_shas()) == []


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "../" + "a" * 61,
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "abc",
        "",
        "g" * 64,
        "a" * 64 + "\n",
        "a" * 32 + "/" + "a" * 31,
        "/etc/passwd",
    ],
)
def test_path_for_refuses_anything_but_a_sha256(store: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        store.path_for(bad)
    with pytest.raises(ValueError):
        store.read_bytes(bad)
    with pytest.raises(ValueError):
        store.delete(bad)


def _failing(errno_code: int) -> Any:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno_code, os.strerror(errno_code))

    return fail


@pytest.mark.parametrize(
    ("target", "code", "error"),
    [
        ("fsync", errno.ENOSPC, StorageFull),
        ("fsync", errno.EDQUOT, StorageFull),
        ("replace", errno.ENOSPC, StorageFull),
        ("replace", errno.EROFS, ReadOnlyStorage),
        ("replace", errno.EACCES, ReadOnlyStorage),
        ("fsync", errno.EIO, StorageError),
    ],
)
def test_failed_write_leaves_nothing(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, code: int, error: type
) -> None:
    store.put_bytes(b"already here")  # the shard folders of earlier blobs exist
    before = _all_files(store.root)
    data = os.urandom(3 * 1024)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    store.path_for(sha).parent.mkdir(parents=True)  # so the failure hits the temp-file stage
    monkeypatch.setattr(f"storage.blobs.os.{target}", _failing(code))

    with pytest.raises(error) as caught:
        store.put_bytes(data)
    with pytest.raises(error):
        store.put_file(source)

    assert isinstance(caught.value.__cause__, OSError)
    assert not store.path_for(sha).exists()
    assert _all_files(store.root) == before  # no temp file left behind either
    monkeypatch.undo()
    assert store.put_bytes(data).sha256 == sha  # works again once the fault is gone
    assert store.verify(sha)


def test_write_goes_through_a_temp_file_in_the_shard_folder(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    seen: list[tuple[Path, Path, bytes, bool]] = []

    def spy(src: str | Path, dst: str | Path) -> None:
        src, dst = Path(src), Path(dst)
        seen.append((src, dst, src.read_bytes(), dst.exists()))
        real_replace(src, dst)

    monkeypatch.setattr("storage.blobs.os.replace", spy)
    ref = store.put_bytes(b"payload")
    [(src, dst, content, final_existed)] = seen
    assert dst == store.path_for(ref.sha256)
    assert src.parent == dst.parent and src.name.startswith(".tmp-")
    assert content == b"payload" and not final_existed
    assert not src.exists()


def test_failure_while_writing_content_leaves_nothing(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fd: int, mode: str) -> None:
            self._file = real_fdopen(fd, mode)

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self._file.close()

        def write(self, data: bytes) -> int:
            self._file.write(data[: len(data) // 2])  # half of it lands on disk, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("storage.blobs.os.fdopen", FullFile)
    with pytest.raises(StorageFull, match="storage full"):
        store.put_bytes(b"0123456789" * 1000)
    assert _all_files(store.root) == []


def test_cleanup_temp_removes_only_stale_temp_files(store: BlobStore) -> None:
    ref = store.put_bytes(b"keep me")
    shard = store.path_for(ref.sha256).parent
    stale = shard / ".tmp-deadbeef"
    fresh = shard / ".tmp-cafebabe"
    stale.write_bytes(b"half a file from a killed process")
    fresh.write_bytes(b"a write in progress")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    assert store.cleanup_temp(max_age_s=3600) == 1
    assert not stale.exists() and fresh.exists()
    assert store.verify(ref.sha256)
    assert list(store.iter_shas()) == [ref.sha256]  # temp files are never listed as blobs
    assert store.cleanup_temp(max_age_s=0) == 1
    assert not fresh.exists()


def test_iter_shas_skips_strays(store: BlobStore) -> None:
    refs = sorted(store.put_bytes(bytes([i])).sha256 for i in range(5))
    (store.root / "README").write_text("not a blob")
    misplaced = store.root / "zz" / "zz"
    misplaced.mkdir(parents=True)
    (misplaced / refs[0]).write_bytes(b"wrong shard")
    assert sorted(store.iter_shas()) == refs


def test_empty_or_missing_root(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "not-yet")
    assert list(store.iter_shas()) == []
    assert store.cleanup_temp() == 0
    ref = store.put_bytes(b"first")
    assert store.exists(ref.sha256)


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_delete_unreferenced_respects_keep_set_and_grace_period(store: BlobStore) -> None:
    kept, old_orphan, young_orphan, reused = (store.put_bytes(f"blob {i}".encode()) for i in range(4))
    for ref in (kept, old_orphan, reused):
        _age(store.path_for(ref.sha256), 2 * 86400)
    store.put_bytes(b"blob 3")  # re-uploaded just now: dedupe refreshes its grace period

    deleted = store.delete_unreferenced(keep={kept.sha256}, min_age_s=86400)

    assert deleted == [old_orphan.sha256]
    assert sorted(store.iter_shas()) == sorted([kept.sha256, young_orphan.sha256, reused.sha256])
    assert _all_files(store.root) == sorted(store.path_for(s) for s in store.iter_shas())  # no temp left
    assert store.delete_unreferenced(keep=set(), min_age_s=0) != []
    assert list(store.iter_shas()) == []


class _FaultInjector:
    """Counts calls across the wrapped functions and raises EIO on call number ``fail_at``."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.calls = 0

    def wrap(self, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(errno.EIO, "injected I/O error")
            return function(*args, **kwargs)

        return call


@pytest.mark.parametrize("method", ["put_bytes", "put_file"])
def test_crash_harness_fail_every_io_call_in_turn(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Bad input 38: fail the Nth filesystem call (N = 1, 2, ... until the write succeeds)."""
    data = os.urandom(CHUNK_SIZE + 17)
    sha = hashlib.sha256(data).hexdigest()
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    real = {name: getattr(os, name) for name in ("open", "fsync", "replace", "mkdir", "utime")}

    for fail_at in range(1, 50):
        injector = _FaultInjector(fail_at)
        for name, function in real.items():
            monkeypatch.setattr(f"storage.blobs.os.{name}", injector.wrap(function))
        try:
            ref = store.put_bytes(data) if method == "put_bytes" else store.put_file(source)
        except StorageError as err:
            assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EIO
            monkeypatch.undo()
            final = store.path_for(sha)
            # never a partial file under the final name (a failure after the rename, e.g. syncing
            # the folder, leaves the complete file, which the retry then re-uses)
            assert not final.exists() or store.verify(sha)
            assert [p for p in _all_files(store.root) if p.name.startswith(".tmp-")] == []
            continue
        monkeypatch.undo()
        assert ref.sha256 == sha and store.verify(sha)
        break
    else:
        pytest.fail("the write never succeeded")
    assert fail_at > 3  # the harness really did inject failures into the write path
