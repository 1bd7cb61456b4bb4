"""Hostile kit archives (bad_inputs.md G42, G43): refused before anything is read, nothing written.

Malicious zips are struct-packed by hand (``raw_zip``) so every header field is under the test's
control; a benign ``raw_zip`` of a real kit is accepted, which shows the builder is a faithful zip
writer and that each refusal below is caused by the one field the test changes.
"""

from __future__ import annotations

import hashlib
import random
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kit_archive import make_kit, manifest_of, members_of, rezip

from brand_kits.archive import ArchiveLimits, export_kit_archive, read_kit_archive
from brand_kits.errors import KitError
from brand_kits.snapshot import canonical_json

REGULAR = (stat.S_IFREG | 0o644) << 16


@dataclass(frozen=True)
class Raw:
    name: str
    data: bytes
    method: int = zipfile.ZIP_DEFLATED
    external_attr: int = REGULAR
    flags: int = 0x800  # UTF-8 names
    declared_size: int | None = None  # the central directory's (and local header's) file_size
    offset: int | None = None  # the central directory's local header offset


def deflate(data: bytes, level: int = 6) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def raw_zip(
    entries: list[Raw], *, declared_count: int | None = None, directory_order: list[int] | None = None
) -> bytes:
    """Local headers + data in list order, then the central directory (in ``directory_order``)."""
    body, records = bytearray(), []
    for entry in entries:
        name = entry.name.encode("utf-8")
        packed = deflate(entry.data) if entry.method == zipfile.ZIP_DEFLATED else entry.data
        size = len(entry.data) if entry.declared_size is None else entry.declared_size
        crc = zlib.crc32(entry.data)
        offset = len(body) if entry.offset is None else entry.offset
        body += (
            struct.pack(
                "<4s5H3L2H",
                b"PK\x03\x04",
                20,
                entry.flags,
                entry.method,
                0,
                0x21,
                crc,
                len(packed),
                size,
                len(name),
                0,
            )
            + name
            + packed
        )
        records.append(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                0x0314,
                20,
                entry.flags,
                entry.method,
                0,
                0x21,
                crc,
                len(packed),
                size,
                len(name),
                0,
                0,
                0,
                0,
                entry.external_attr,
                offset,
            )
            + name
        )
    order = range(len(records)) if directory_order is None else directory_order
    directory = b"".join(records[index] for index in order)
    count = len(entries) if declared_count is None else declared_count
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(body), 0)
    return bytes(body) + directory + end


def kit_entries() -> list[Raw]:
    """A real kit's members as raw entries (valid as they are)."""
    snapshot, store = make_kit()
    with tempfile.TemporaryDirectory() as folder:
        data = export_kit_archive(snapshot, store.__getitem__, Path(folder) / "k.zip").read_bytes()
    return [Raw(name, content) for name, content in sorted(members_of(data).items())]


@pytest.fixture(scope="module")
def entries() -> list[Raw]:
    return kit_entries()


@pytest.fixture
def quiet_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cwd and temp dir for the import; the test asserts both stay empty."""
    cwd, temp = tmp_path / "cwd", tmp_path / "temp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return tmp_path


def refused(data: bytes, match: str, limits: ArchiveLimits = ArchiveLimits()) -> str:  # noqa: B008
    with pytest.raises(KitError, match=match) as caught:
        read_kit_archive(data, limits)
    return str(caught.value)


def blob_name(data: bytes) -> str:
    return f"blobs/{hashlib.sha256(data).hexdigest()}.png"


def test_the_raw_builder_writes_real_zips(entries: list[Raw]) -> None:
    data = raw_zip(entries)
    with zipfile.ZipFile(BytesIO(data)) as archive:
        assert archive.testzip() is None
    assert len(read_kit_archive(data).blobs) == 4
    stored = [replace(entry, method=zipfile.ZIP_STORED) for entry in entries]
    assert read_kit_archive(raw_zip(stored)).snapshot == read_kit_archive(data).snapshot


# --------------------------------------------------------------------- G42: paths, links, devices


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("../../x", "'..' component"),
        ("blobs/../manifest.json", "'..' component"),
        ("/etc/x", "absolute path"),
        ("C:\\x", "backslash"),
        ("C:/x", "drive letter"),
        ("..\\x", "backslash"),
        ("..\\\\x", "backslash"),
        ("x\x00.png", "control characters"),
        ("blobs/\u202egnp.exe", "control characters"),
        ("blobs/", "directory entry"),
        ("notes.txt", "not an allowed member"),
        ("blobs/ABC.png", "not an allowed member"),
    ],
)
def test_bad_member_names_are_refused_and_nothing_is_written(
    entries: list[Raw], quiet_cwd: Path, name: str, rule: str
) -> None:
    message = refused(raw_zip([*entries, Raw(name, b"pwned")]), rule)
    assert repr(name)[1:-1] in message or repr(name) in message
    assert sorted(p.name for p in quiet_cwd.rglob("*")) == ["cwd", "temp"]


@pytest.mark.parametrize(
    ("file_type", "rule"),
    [
        (stat.S_IFLNK | 0o777, "is a symbolic link"),
        (stat.S_IFCHR | 0o644, "is a special file"),
        (stat.S_IFBLK | 0o644, "is a special file"),
        (stat.S_IFIFO | 0o644, "is a special file"),
        (stat.S_IFSOCK | 0o644, "is a special file"),
        (stat.S_IFDIR | 0o755, "is a directory entry"),
    ],
)
def test_links_devices_and_directories_are_refused(
    entries: list[Raw], quiet_cwd: Path, file_type: int, rule: str
) -> None:
    # A valid member name, so only the file type in external_attr can cause the refusal.
    target = entries[0]
    hostile = [replace(target, external_attr=file_type << 16, data=b"/etc/passwd"), *entries[1:]]
    message = refused(raw_zip(hostile), rule)
    assert target.name in message
    assert sorted(p.name for p in quiet_cwd.rglob("*")) == ["cwd", "temp"]


def test_duplicate_and_encrypted_members(entries: list[Raw]) -> None:
    refused(raw_zip([*entries, entries[0]]), f"'{entries[0].name}' appears twice")
    encrypted = [replace(entries[0], flags=0x801), *entries[1:]]
    refused(raw_zip(encrypted), "is encrypted")


def test_other_compression_methods_are_refused(entries: list[Raw]) -> None:
    bzip2 = [replace(entries[0], method=zipfile.ZIP_BZIP2), *entries[1:]]
    refused(raw_zip(bzip2), "compression method 12")


# ----------------------------------------------------------------------------------- G43: zip bombs


def _relisted(entries: list[Raw], extra: dict[str, bytes]) -> list[Raw]:
    """``entries`` plus ``extra`` members, with the manifest listing them (so only content can fail)."""
    manifest = manifest_of({e.name: e.data for e in entries})
    manifest["files"].update({name: name[6:70] for name in extra})
    kept = [e if e.name != "manifest.json" else Raw(e.name, canonical_json(manifest)) for e in entries]
    return kept + [Raw(name, data) for name, data in extra.items()]


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (rezip({"inner.zip": b"x" * 10}), "zip"),
        (b"\x1f\x8b\x08\x00" + bytes(range(200)), "gzip"),
        (b"7z\xbc\xaf\x27\x1c" + bytes(100), "7z"),
        (b"Rar!\x1a\x07\x01\x00" + bytes(100), "rar"),
    ],
)
def test_nested_archives_are_refused(entries: list[Raw], payload: bytes, kind: str) -> None:
    name = blob_name(payload)
    refused(raw_zip(_relisted(entries, {name: payload})), f"'{name}' is a nested {kind} archive")


def test_high_ratio_member_is_refused(entries: list[Raw]) -> None:
    zeros = bytes(5 * 1024 * 1024)
    message = refused(raw_zip(_relisted(entries, {blob_name(zeros): zeros})), "compression ratio of")
    assert "max 200:1" in message


def test_lying_header_that_inflates_past_its_declared_size(entries: list[Raw]) -> None:
    noise = random.Random(7).randbytes(20_000)  # incompressible: the ratio rule cannot fire first
    liar = Raw(blob_name(noise), noise, declared_size=100)
    message = refused(raw_zip([*entries, liar]), "inflates to more than the 100 bytes it declares")
    assert liar.name in message
    shorter = Raw(blob_name(noise), noise, declared_size=30_000)
    refused(raw_zip([*entries, shorter]), "inflates to 20000 bytes, not the 30000 it declares")


def test_member_and_total_size_limits(entries: list[Raw]) -> None:
    data = raw_zip(entries)
    biggest = max(len(e.data) for e in entries)
    refused(data, "declares .* bytes \\(max 100\\)", ArchiveLimits(max_member_bytes=100))
    refused(data, "declared total over", ArchiveLimits(max_total_bytes=biggest + 10))


def _quoted_overlap_bomb(names: list[str], kernel: bytes) -> bytes:
    """David Fifield's overlapping-member bomb: each member's deflate stream quotes the next member's
    local header in a stored block, then runs on into the next member's data (CPython gh-109858)."""
    kernel_stream = deflate(kernel, level=0)  # stored blocks, incompressible: ratio ~1
    headers: list[bytes] = []
    plain, packed = kernel, kernel_stream
    for name in reversed(names):  # innermost (last) member first
        encoded = name.encode()
        header = (
            struct.pack(
                "<4s5H3L2H",
                b"PK\x03\x04",
                20,
                0x800,
                8,
                0,
                0x21,
                zlib.crc32(plain),
                len(packed),
                len(plain),
                len(encoded),
                0,
            )
            + encoded
        )
        headers.insert(0, header)
        quote = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF)  # non-final stored block
        plain, packed = header + plain, quote + header + packed
    body = bytearray()
    directory = bytearray()
    for index, (name, header) in enumerate(zip(names, headers, strict=True)):
        offset = len(body)
        body += header
        if index + 1 < len(names):
            body += b"\x00" + struct.pack("<HH", len(headers[index + 1]), len(headers[index + 1]) ^ 0xFFFF)
        crc, compressed, size = struct.unpack("<3L", header[14:26])
        directory += (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                0x0314,
                20,
                0x800,
                8,
                0,
                0x21,
                crc,
                compressed,
                size,
                len(name),
                0,
                0,
                0,
                0,
                REGULAR,
                offset,
            )
            + name.encode()
        )
    body += kernel_stream
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(names), len(names), len(directory), len(body), 0)
    return bytes(body + directory + end)


def test_quoted_overlap_bomb_is_refused() -> None:
    names = [f"blobs/{hashlib.sha256(bytes([i])).hexdigest()}.png" for i in range(5)]
    kernel = random.Random(1).randbytes(50_000)
    bomb = _quoted_overlap_bomb(names, kernel)
    # The construction is real: member 0's data inflates to every later header plus the kernel.
    _, _, _, _, _, _, crc, packed_size, size, name_len, _ = struct.unpack("<4s5H3L2H", bomb[:30])
    inflated = zlib.decompressobj(-15).decompress(bomb[30 + name_len : 30 + name_len + packed_size])
    assert len(inflated) == size and zlib.crc32(inflated) == crc and inflated.endswith(kernel)
    message = refused(bomb, "overlaps the data of")
    assert names[1] in message and names[0] in message


def test_members_sharing_local_data_are_refused(entries: list[Raw]) -> None:
    shared = [*entries[:2], replace(entries[2], offset=0), *entries[3:]]
    refused(raw_zip(shared), f"'{entries[2].name}' overlaps the data of")
    out_of_order = raw_zip(entries, directory_order=[1, 0, 2, 3, 4])
    with zipfile.ZipFile(BytesIO(out_of_order)) as archive:
        assert archive.testzip() is None  # a valid zip, just not in file order
    refused(out_of_order, f"'{entries[0].name}' overlaps the data of .* or is out of file order")


def test_too_many_members_trip_before_the_directory_is_parsed(
    entries: list[Raw], monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [Raw(f"blobs/{hashlib.sha256(str(i).encode()).hexdigest()}.png", b"x") for i in range(3000)]
    data = raw_zip(entries + many)

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile parsed a directory the limits should have refused")

    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZipFile", no_parsing)
        refused(data, "declares 3005 members .*max 2000 members")  # the default limit
        refused(raw_zip(entries), "declares 5 members .*max 3 members", ArchiveLimits(max_members=3))
    # An end record that understates the count: the real directory is still counted.
    refused(raw_zip(entries + many, declared_count=5), "has 3005 members \\(max 2000\\)")


def test_a_zip64_end_record_declaring_a_million_members(
    entries: list[Raw], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = raw_zip(entries)
    _, _, _, _, _, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", plain[-22:])
    record_at = cd_offset + cd_size
    zip64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1_000_000, 1_000_000, cd_size, cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    monkeypatch.setattr(zipfile, "ZipFile", None)  # must not be reached
    refused(plain[:record_at] + zip64 + locator + end, "declares 1000000 members")


def test_prepended_bytes_are_refused(entries: list[Raw]) -> None:
    refused(b"MZ" + bytes(100) + raw_zip(entries), "unexpected bytes around its central directory")


def test_corrupt_deflate_data_and_crc(entries: list[Raw]) -> None:
    data = bytearray(raw_zip(entries))
    name_len = struct.unpack("<H", data[26:28])[0]
    data[30 + name_len + 10] ^= 0xFF
    message = refused(bytes(data), "corrupt compressed data|CRC-32|does not end|inflates to")
    assert entries[0].name in message  # the first member is the one damaged


# ------------------------------------------------------------------------------------------- fuzzing

_KIT, _STORE = make_kit()
_VALID = raw_zip(kit_entries())


@settings(max_examples=400, deadline=None)
@given(
    operation=st.sampled_from(["flip", "truncate", "insert", "overwrite"]),
    position=st.integers(min_value=0, max_value=len(_VALID) - 1),
    payload=st.binary(min_size=1, max_size=8),
)
def test_property_damaged_archives_fail_only_with_kit_error(
    operation: str, position: int, payload: bytes
) -> None:
    data = bytearray(_VALID)
    if operation == "flip":
        data[position] ^= payload[0] or 0x01
    elif operation == "truncate":
        del data[position:]
    elif operation == "insert":
        data[position:position] = payload
    else:
        data[position : position + len(payload)] = payload
    try:
        imported = read_kit_archive(bytes(data))
    except KitError:
        return
    # Accepted only when the damage hit no field that matters: the kit and images are unchanged.
    assert imported.snapshot == _KIT and imported.blobs == _STORE
