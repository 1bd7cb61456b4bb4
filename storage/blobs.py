"""Content-addressed blob store: files named by their SHA-256, written atomically.

Layout: ``root/ab/cd/abcd...`` (two shard levels). The sha256 is the only path component taken from
a caller and it must be 64 lowercase hex digits, so no name can escape ``root``.

Write protocol: temp file ``.tmp-<random>`` in the final shard folder, write, flush, fsync,
``os.replace`` onto the final name, fsync the folder. A crash leaves at most a stale temp file (see
:meth:`BlobStore.cleanup_temp`), never a partial file under a final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from storage.errors import BlobCorrupt, BlobNotFound, StorageError, translate_os_error
from storage.files import fsync_dir

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
TEMP_PREFIX = ".tmp-"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_Writer = Callable[[BinaryIO], object]


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


def validate_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or _SHA256.fullmatch(sha256) is None:
        raise ValueError(f"not a blob id: {sha256!r:.80} (expected 64 lowercase hex characters)")
    return sha256


def _hash_stream(stream: BinaryIO) -> BlobRef:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return BlobRef(sha256=digest.hexdigest(), size=size)


class BlobStore:
    """Files under ``root`` addressed by SHA-256. Safe for several processes sharing ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths -----------------------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path:
        validate_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def iter_shas(self) -> Iterator[str]:
        """Every stored blob id (temp files and stray names are skipped)."""
        if not self.root.is_dir():
            return
        for level1 in sorted(self.root.iterdir()):
            if not level1.is_dir() or len(level1.name) != 2:
                continue
            for level2 in sorted(level1.iterdir()):
                if not level2.is_dir() or len(level2.name) != 2:
                    continue
                for entry in sorted(level2.iterdir()):
                    name = entry.name
                    if _SHA256.fullmatch(name) and name[:2] == level1.name and name[2:4] == level2.name:
                        yield name

    # -- writing ---------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobRef:
        ref = BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        if self._already_stored(ref):
            return ref
        self._write_atomically(ref, lambda out: out.write(data))
        return ref

    def put_file(self, path: Path) -> BlobRef:
        """Store a copy of ``path`` (hashed and copied in 1 MiB chunks, never loaded whole)."""
        path = Path(path)
        try:
            with path.open("rb") as source:
                ref = _hash_stream(source)
                if self._already_stored(ref):
                    return ref
                source.seek(0)
                self._write_atomically(ref, lambda out: self._copy_checked(source, out, ref, path))
        except FileNotFoundError as err:
            raise StorageError(f"cannot store {path}: the file does not exist") from err
        except OSError as err:
            raise translate_os_error(err, f"reading {path}") from err
        return ref

    @staticmethod
    def _copy_checked(source: BinaryIO, out: BinaryIO, expected: BlobRef, path: Path) -> None:
        digest = hashlib.sha256()
        size = 0
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        if digest.hexdigest() != expected.sha256 or size != expected.size:
            raise StorageError(f"{path} changed while it was being stored; retry once it is complete")

    def _already_stored(self, ref: BlobRef) -> bool:
        final = self.path_for(ref.sha256)
        if not final.is_file():
            return False
        if not self.verify(ref.sha256):
            logger.warning("blob %s is missing or damaged; writing the new copy", ref.sha256)
            return False
        try:  # re-used content counts as new for the garbage collector's grace period
            os.utime(final)
        except FileNotFoundError:
            return False  # collected just now: write it again
        except OSError as err:
            raise translate_os_error(err, f"refreshing blob {ref.sha256[:12]}…") from err
        return True

    def _write_atomically(self, ref: BlobRef, write: _Writer) -> None:
        final = self.path_for(ref.sha256)
        temp: Path | None = None
        try:
            self._make_shard_dirs(final.parent)
            temp = final.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
            temp = None
            fsync_dir(final.parent)
        except OSError as err:
            raise translate_os_error(err, f"writing blob {ref.sha256[:12]}… to {self.root}") from err
        finally:
            if temp is not None:
                with suppress(OSError):
                    temp.unlink(missing_ok=True)

    def _make_shard_dirs(self, shard: Path) -> None:
        missing = [p for p in (self.root, shard.parent, shard) if not p.is_dir()]
        shard.mkdir(parents=True, exist_ok=True)
        for created in missing:  # persist the new folder entries in their parents
            fsync_dir(created.parent)

    # -- reading, checking, deleting -------------------------------------------------------------

    def read_bytes(self, sha256: str, *, verify: bool = True) -> bytes:
        """The blob's content; with ``verify`` (default) raise BlobCorrupt if it no longer matches."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise BlobNotFound(
                f"blob {sha256} is missing from {self.root}; restore the data folder from a backup "
                "or re-upload the file"
            ) from err
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupt(
                f"blob {sha256} at {path} is damaged (its content no longer matches its hash); "
                "restore it from a backup or re-upload the file"
            )
        return data

    def verify(self, sha256: str) -> bool:
        """True if the blob exists and its content still hashes to ``sha256``."""
        path = self.path_for(sha256)
        try:
            with path.open("rb") as stream:
                return _hash_stream(stream).sha256 == sha256
        except FileNotFoundError:
            return False

    def delete(self, sha256: str) -> bool:
        """Remove a blob; False if it was not there. Callers check DB references first."""
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as err:
            raise translate_os_error(err, f"deleting blob {sha256[:12]}…") from err
        return True

    def delete_unreferenced(self, keep: Collection[str], min_age_s: float = 86400) -> list[str]:
        """Delete blob files not in ``keep`` and untouched for ``min_age_s``; return their ids.

        ``keep`` is every sha the database knows (``BlobRepo.recorded_shas()``). The grace period
        protects an upload whose file is written but whose DB transaction has not committed yet
        (writing or re-using a blob refreshes its mtime). A file is first renamed aside and its
        mtime re-checked, so a concurrent re-use either keeps it or writes a fresh copy.
        """
        cutoff = time.time() - min_age_s
        deleted: list[str] = []
        for sha in list(self.iter_shas()):
            if sha in keep:
                continue
            final = self.path_for(sha)
            doomed = final.parent / f"{TEMP_PREFIX}gc-{secrets.token_hex(8)}"
            try:
                if final.stat().st_mtime > cutoff:
                    continue
                os.replace(final, doomed)
                if doomed.stat().st_mtime > cutoff:  # re-used between our stat and the rename
                    os.replace(doomed, final)
                    continue
                doomed.unlink()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise translate_os_error(err, f"deleting unreferenced blob {sha[:12]}…") from err
            deleted.append(sha)
        if deleted:
            logger.info("deleted %d unreferenced blobs from %s", len(deleted), self.root)
        return deleted

    def cleanup_temp(self, max_age_s: float = 3600) -> int:
        """Delete ``.tmp-*`` files older than ``max_age_s`` (left by a killed writer); return the count.

        Younger temp files may belong to a write in progress in another process, so they are kept.
        """
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - max_age_s
        removed = 0
        for temp in self.root.glob(f"*/*/{TEMP_PREFIX}*"):
            try:
                if temp.is_file() and temp.stat().st_mtime <= cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # another process cleaned it first
        if removed:
            logger.info("removed %d stale temp files from %s", removed, self.root)
        return removed
