"""Kit archives: move a kit between installs as one zip (manifest + content-addressed PNG blobs).

Layout: ``manifest.json`` = ``{"format": "brand-studio-kit", "version": 1, "kit": <KitSnapshot.to_dict()>,
"files": {"blobs/<sha256>.png": "<sha256>", ...}}`` and one ``blobs/<sha256>.png`` member per image
(photos, logos, masks). Export is deterministic (sorted members, fixed timestamps, deflate) and atomic.

Import treats the archive as hostile and is all or nothing. The end record is checked against the
limits before ``zipfile`` parses the central directory; every rule is then checked on every member
before any data is inflated, and members are inflated here, into memory, with bounded reads. Nothing
is ever extracted to disk. A broken rule raises :class:`KitError` naming the member and the rule.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import IO

from brand_kits.errors import KitError
from brand_kits.exports import write_zip_atomic
from brand_kits.ingest import IngestLimits
from brand_kits.snapshot import (
    BLOB_NAME,
    MANIFEST_NAME,
    MODEL_SUFFIXES,
    KitSnapshot,
    blob_name,
    kit_manifest,
    parse_kit_manifest,
)

logger = logging.getLogger(__name__)

MANIFEST_MAX_BYTES = 16 * 1024**2
RATIO_MIN_BYTES = 1024
# fmt: off
_ARCHIVE_MAGIC = (
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"), (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
# What zipfile may raise while parsing a hostile central directory (UnicodeDecodeError is a ValueError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
               struct.error, IndexError)
# fmt: on
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory (22 bytes)
_EOCD64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes, right before the end record
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # 56 bytes, right before the locator
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header (30 bytes)
_CD_BYTES_PER_MEMBER = 1024  # central directory allowance per member: 46 fixed + name/extra/comment
_CHUNK = 1 << 16
_ENCRYPTED = 0x0001 | 0x0040  # traditional and strong encryption flag bits


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 2000
    max_total_bytes: int = 2 * 1024**3
    max_member_bytes: int = 60 * 1024**2
    max_ratio: float = 200.0
    max_archive_bytes: int = 2 * 1024**3


@dataclass(frozen=True)
class ImportedKit:
    snapshot: KitSnapshot
    blobs: dict[str, bytes] = field(hash=False)  # sha256 -> PNG bytes, each hash-verified


@dataclass(frozen=True)
class _Member:
    name: str
    method: int
    crc: int
    compress_size: int
    file_size: int
    data_offset: int


def _member_error(name: str, rule: str) -> KitError:
    return KitError(
        f"kit archive refused: member {name!r:.120} {rule}; this is not a kit archive exported by "
        "Brand Studio or it was altered: export the kit again from the original install"
    )


# ---------------------------------------------------------------------------------------------- export


def export_kit_archive(snapshot: KitSnapshot, read_blob: Callable[[str], bytes], target: Path) -> Path:
    """Write ``snapshot`` and its images to the zip ``target`` (atomically); return ``target``.

    ``read_blob(sha256)`` returns an image's PNG bytes; each is verified against its hash while writing.
    The same snapshot and blobs always give the same bytes. On failure ``target`` is left as it was.
    """
    limits = ArchiveLimits()
    shas = snapshot.blob_shas()
    if len(shas) + 1 > limits.max_members:
        raise KitError(f"the kit has {len(shas)} images; an archive holds at most {limits.max_members - 1}")
    write_zip_atomic(target, _archive_members(snapshot, shas, read_blob, limits))
    logger.info("exported kit %r (%d images) to %s", snapshot.slug, len(shas), target)
    return target


def _archive_members(
    snapshot: KitSnapshot, shas: list[str], read_blob: Callable[[str], bytes], limits: ArchiveLimits
) -> Iterator[tuple[str, bytes]]:
    """The members in name order ("blobs/..." sorts before "manifest.json"), blobs read one at a time."""
    sizes = {a.sha256: (a.width, a.height) for a in snapshot.assets}
    total = 0
    for sha in shas:
        data = read_blob(sha)
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != sha:
            raise KitError(
                f"stored image {sha} does not match its SHA-256 (the blob store is damaged); "
                "restore it from a backup or remove the asset, then export again"
            )
        total += len(data)
        rule = _png_rule(data, sizes.get(sha))
        if rule is None and len(data) > limits.max_member_bytes:
            rule = f"is {len(data)} bytes (an archive member holds at most {limits.max_member_bytes})"
        if rule is None and total > limits.max_total_bytes:
            rule = f"brings the kit's images over {limits.max_total_bytes} bytes"
        if rule is not None:
            raise KitError(f"stored image {sha} {rule}; fix or remove the asset, then export again")
        yield blob_name(sha), data
    yield MANIFEST_NAME, kit_manifest(snapshot)


# ---------------------------------------------------------------------------------------------- import


def read_kit_archive(
    path_or_bytes: Path | bytes,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen dataclass, safe as a default
) -> ImportedKit:
    """Validate a kit archive completely and return its snapshot and blobs; write nothing anywhere."""
    try:
        with _open_source(path_or_bytes, limits) as (handle, size):
            members = _scan_directory(handle, size, limits)
            contents = _read_members(handle, members, limits)
        kit = _build_kit(contents)
    except KitError as exc:
        logger.info("refused kit archive: %s", exc)
        raise
    logger.info("read kit archive %r: %d images", kit.snapshot.slug, len(kit.blobs))
    return kit


@contextmanager
def _open_source(source: Path | bytes, limits: ArchiveLimits) -> Iterator[tuple[IO[bytes], int]]:
    too_big = f"the kit archive is larger than {limits.max_archive_bytes} bytes; it is not a kit export"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)  # no copy for bytes
        if len(data) > limits.max_archive_bytes:
            raise KitError(too_big)
        yield BytesIO(data), len(data)
        return
    if not isinstance(source, (Path, str)):
        raise KitError(f"a kit archive is a file path or bytes, got {type(source).__name__}")
    try:  # non-blocking: opening a FIFO must not hang; a regular file ignores the flag
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise KitError(f"could not open the kit archive {source}: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"{source} is not a regular file; choose the .zip file the export wrote"
    elif info.st_size > limits.max_archive_bytes:
        problem = too_big
    if problem is not None:
        os.close(fd)
        raise KitError(problem)
    with os.fdopen(fd, "rb") as handle:
        yield handle, info.st_size


def _read_exact(handle: IO[bytes], offset: int, count: int, what: str) -> bytes:
    handle.seek(offset)
    data = handle.read(count)
    if len(data) != count:
        raise KitError(f"kit archive is truncated ({what} is cut off); copy or download it again")
    return data


def _end_record(handle: IO[bytes], size: int) -> tuple[int, int, int]:
    """(member count, central directory size, its offset) from the end records, as zipfile reads them."""
    if size < _EOCD.size:
        raise KitError("not a zip archive (too short); choose the .zip file a kit export wrote")
    eocd_at = size - _EOCD.size
    sig, disk, cd_disk, _, count, cd_size, cd_offset, comment = _EOCD.unpack(
        _read_exact(handle, eocd_at, _EOCD.size, "the end record")
    )
    if sig != b"PK\x05\x06" or comment:
        raise KitError(
            "not a zip archive, or a truncated one (no end record at the end of the file); "
            "copy or download the kit archive again"
        )
    record_at = eocd_at
    locator_at = eocd_at - _EOCD64_LOCATOR.size
    if locator_at >= 0 and _read_exact(handle, locator_at, 4, "the zip64 locator") == b"PK\x06\x07":
        record_at = locator_at - _EOCD64.size
        if record_at < 0:
            raise KitError("kit archive has a broken zip64 end record; export the kit again")
        fields64 = _EOCD64.unpack(_read_exact(handle, record_at, _EOCD64.size, "the zip64 end record"))
        if fields64[0] != b"PK\x06\x06":
            raise KitError("kit archive has a broken zip64 end record; export the kit again")
        disk, cd_disk, count, cd_size, cd_offset = fields64[4], fields64[5], *fields64[7:10]
    if disk or cd_disk:
        raise KitError("kit archive spans several disks; join it into one .zip file")
    if cd_offset + cd_size != record_at:
        raise KitError(
            "kit archive has unexpected bytes around its central directory (a prepended or "
            "damaged file); export the kit again"
        )
    return count, cd_size, cd_offset


def _scan_directory(handle: IO[bytes], size: int, limits: ArchiveLimits) -> list[_Member]:
    # 1. Bound what zipfile will parse: member count and central directory size from the end record.
    count, cd_size, cd_offset = _end_record(handle, size)
    if count > limits.max_members or cd_size > limits.max_members * _CD_BYTES_PER_MEMBER:
        raise KitError(
            f"kit archive declares {count} members in {cd_size} directory bytes (max "
            f"{limits.max_members} members); it is not a kit export"
        )
    # 2. Parse the central directory only.
    try:
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise KitError(f"not a valid zip archive ({exc}); copy or download the kit archive again") from exc
    if len(infos) > limits.max_members:
        raise KitError(
            f"kit archive has {len(infos)} members (max {limits.max_members}); it is not a kit export"
        )
    # 3. Every rule on every member, before any data is read.
    seen: set[str] = set()
    declared = 0
    for info in infos:
        _check_info(info, seen, limits)
        declared += info.file_size
        if declared > limits.max_total_bytes:
            raise _member_error(
                info.orig_filename, f"brings the declared total over {limits.max_total_bytes} bytes"
            )
    # 4. Local headers: in file order, names agree, data ranges do not overlap (gh-109858).
    return _locate_data(handle, infos, cd_offset)


def _name_rule(name: str) -> str | None:
    """The rule a member name breaks, or None."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        return "has control characters in its name"
    if "\\" in name:
        return "has a backslash in its name (a Windows path)"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "has a drive letter"
    if ".." in name.split("/"):
        return "has a '..' component (it points outside the archive)"
    if name.endswith("/"):
        return "is a directory entry"
    if name.lower().endswith(MODEL_SUFFIXES):
        return (
            "is a model file; kit archives carry only PNG images, and models are imported "
            "separately as .safetensors"
        )
    if name != MANIFEST_NAME and not BLOB_NAME.fullmatch(name):
        return "is not an allowed member (only manifest.json and blobs/<sha256>.png)"
    return None


def _check_info(info: zipfile.ZipInfo, seen: set[str], limits: ArchiveLimits) -> None:
    name = info.orig_filename
    rule = _name_rule(name)
    mode = info.external_attr >> 16
    if rule is None and name in seen:
        rule = "appears twice"
    elif rule is None and stat.S_ISLNK(mode):
        rule = "is a symbolic link"
    elif rule is None and (info.external_attr & 0x10 or stat.S_ISDIR(mode)):
        rule = "is a directory entry"
    elif rule is None and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        rule = f"is a special file (type {stat.S_IFMT(mode):o}: a device, FIFO or socket), not a regular file"
    elif rule is None and info.flag_bits & _ENCRYPTED:
        rule = "is encrypted"
    elif rule is None and info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        rule = f"uses compression method {info.compress_type} (only stored and deflate are allowed)"
    if rule is None:
        rule = _size_rule(info, limits)
    if rule is not None:
        raise _member_error(name, rule)
    seen.add(name)


def _size_rule(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    size, packed = info.file_size, info.compress_size
    cap = MANIFEST_MAX_BYTES if info.orig_filename == MANIFEST_NAME else limits.max_member_bytes
    if size > cap:
        return f"declares {size} bytes (max {cap})"
    if packed > cap + cap // 100 + 1024:  # deflate adds at most a few bytes per 16 KiB of input
        return f"declares {packed} compressed bytes (max {cap})"
    if info.compress_type == zipfile.ZIP_STORED and packed != size:
        return "is stored but declares different sizes"
    if size > RATIO_MIN_BYTES and size > limits.max_ratio * max(packed, 1):
        return f"has a compression ratio of {size / max(packed, 1):.0f}:1 (max {limits.max_ratio:g}:1)"
    return None


def _locate_data(handle: IO[bytes], infos: list[zipfile.ZipInfo], cd_offset: int) -> list[_Member]:
    members: list[_Member] = []
    previous_end, previous = 0, ""
    for info in infos:
        name, start = info.orig_filename, info.header_offset
        if start < previous_end:
            raise _member_error(
                name,
                f"overlaps the data of {previous!r} or is out of file order (an overlapping-member zip bomb)",
            )
        header = _LOCAL.unpack(_read_exact(handle, start, _LOCAL.size, f"the header of {name!r}"))
        sig, flags, method, name_len, extra_len = header[0], header[2], header[3], header[9], header[10]
        raw_name = _read_exact(handle, start + _LOCAL.size, name_len, f"the header of {name!r}")
        local_name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        if sig != b"PK\x03\x04" or local_name != name or method != info.compress_type or flags & _ENCRYPTED:
            raise _member_error(name, "has a local header that does not match the central directory")
        data_offset = start + _LOCAL.size + name_len + extra_len
        previous_end, previous = data_offset + info.compress_size, name
        if previous_end > cd_offset:
            raise _member_error(name, "has data that runs into the central directory")
        members.append(_Member(name, method, info.CRC, info.compress_size, info.file_size, data_offset))
    return members


def _read_members(handle: IO[bytes], members: list[_Member], limits: ArchiveLimits) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    total = 0
    for member in members:
        data = _inflate(handle, member)
        total += len(data)
        if total > limits.max_total_bytes:
            raise _member_error(member.name, f"brings the total over {limits.max_total_bytes} bytes")
        for magic, kind in _ARCHIVE_MAGIC:
            if data.startswith(magic):
                raise _member_error(
                    member.name, f"is a nested {kind} archive (archives inside archives are not allowed)"
                )
        if zlib.crc32(data) != member.crc:
            raise _member_error(member.name, "fails its CRC-32 check (the archive is damaged)")
        contents[member.name] = data
    return contents


def _inflate(handle: IO[bytes], member: _Member) -> bytes:
    """The member's bytes; never more than ``file_size + 1`` bytes are produced (lying headers)."""
    what = f"the data of {member.name!r}"
    if member.method == zipfile.ZIP_STORED:
        return _read_exact(handle, member.data_offset, member.compress_size, what)
    inflater = zlib.decompressobj(-15)
    parts: list[bytes] = []
    produced, offset, remaining = 0, member.data_offset, member.compress_size
    try:
        while remaining and not inflater.eof:
            pending = _read_exact(handle, offset, min(_CHUNK, remaining), what)
            offset, remaining = offset + len(pending), remaining - len(pending)
            while pending and not inflater.eof:
                part = inflater.decompress(pending, member.file_size + 1 - produced)
                produced += len(part)
                parts.append(part)
                if produced > member.file_size:
                    raise _member_error(
                        member.name,
                        f"inflates to more than the {member.file_size} bytes it declares (a lying header)",
                    )
                pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise _member_error(member.name, f"has corrupt compressed data ({exc})") from exc
    if not inflater.eof or remaining or inflater.unused_data:
        raise _member_error(member.name, "has a compressed stream that does not end where its header says")
    if produced != member.file_size:
        raise _member_error(
            member.name, f"inflates to {produced} bytes, not the {member.file_size} it declares"
        )
    return b"".join(parts)


def _png_rule(data: bytes, size: tuple[int, int] | None) -> str | None:
    """The rule a blob breaks as a kit image (PNG signature, pixel limit, the asset's size), or None."""
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        return "is not a PNG image"
    width, height = struct.unpack(">II", data[16:24])
    max_pixels = IngestLimits().max_pixels
    if width * height > max_pixels:
        return f"declares {width}x{height} pixels (max {max_pixels / 1e6:g} MP)"
    if size is not None and (width, height) != size:
        return f"is {width}x{height} but the kit says {size[0]}x{size[1]}"
    return None


def _build_kit(contents: dict[str, bytes]) -> ImportedKit:
    if MANIFEST_NAME not in contents:
        raise KitError("kit archive has no manifest.json; it is not a Brand Studio kit export")
    snapshot, files = parse_kit_manifest(contents[MANIFEST_NAME])
    present = set(contents) - {MANIFEST_NAME}
    for name in sorted(set(files) - present):
        raise KitError(
            f"manifest.json lists {name!r} but the archive has no such member; export the kit again"
        )
    for name in sorted(present - set(files)):
        raise _member_error(name, "is not listed in manifest.json")
    sizes = {asset.sha256: (asset.width, asset.height) for asset in snapshot.assets}
    blobs: dict[str, bytes] = {}
    for name, sha in sorted(files.items()):
        data = contents[name]
        if hashlib.sha256(data).hexdigest() != sha:
            raise _member_error(name, "has content whose SHA-256 differs from its name and the manifest")
        rule = _png_rule(data, sizes.get(sha))
        if rule is not None:
            raise _member_error(name, rule)
        blobs[sha] = data
    used = set(sizes) | {asset.mask_sha256 for asset in snapshot.assets if asset.mask_sha256}
    for sha in sorted(used - set(blobs)):
        raise KitError(f"manifest.json: an asset uses image {sha} but the archive does not carry it")
    for sha in sorted(set(blobs) - used):
        raise _member_error(blob_name(sha), "is not used by any asset of the kit")
    return ImportedKit(snapshot=snapshot, blobs=blobs)
