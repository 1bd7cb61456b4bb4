"""bad_inputs.md sections A and G through the facade: each refusal is clear and stores nothing
(no kit, asset or blob row; no file in the blob store; nothing outside the data dir)."""

from __future__ import annotations

import io
import os
import random
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from studio.api import Studio
from studio.errors import InvalidInput
from studio.schemas import KitCreateRequest, UploadedFile
from tests.fixtures import product_photo, product_uploads


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bomb_png(side: int = 30_000) -> bytes:
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (10, 20, 30)).save(buf, fmt)
    return buf.getvalue()


BAD_UPLOADS: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "A1 decompression bomb": ("bomb.png", _bomb_png, "image too large"),
    "A3 truncated JPEG": ("cut.jpg", lambda: _encoded("JPEG")[:200], "not a valid image"),
    "A3 zero bytes": ("empty.png", lambda: b"", "not a valid image"),
    "A3 random bytes": ("noise.png", lambda: random.Random(1).randbytes(4096), "not a valid image"),
    "A4 TIFF renamed": ("photo.jpg", lambda: _encoded("TIFF"), "unsupported image format"),
    "A4 BMP renamed": ("photo.png", lambda: _encoded("BMP"), "unsupported image format"),
    "A11 traversal name": ("../../app/config.py", lambda: b"print('x')", "config.py"),
}


def _state(studio: Studio, root: Path) -> tuple[object, ...]:
    kits = [(k.slug, k.photo_count) for k in studio.list_kits()]
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "work" not in p.parts
                   and not p.name.startswith("studio.sqlite3"))  # fmt: skip
    return kits, sorted(studio.blobs.iter_shas()), files


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_refused_clearly_and_nothing_is_stored(studio: Studio, case: str) -> None:
    name, make, message = BAD_UPLOADS[case]
    kit = studio.create_kit(KitCreateRequest.of(name="Acme", trigger_token="acm_kit", class_noun="bottle"),
                            product_uploads(1))  # fmt: skip
    root = studio.settings.data_dir.parent
    before = _state(studio, root)
    with pytest.raises(InvalidInput, match=message) as info:
        studio.add_photos(kit.id, [UploadedFile(name="fine.png", data=product_photo(3)),
                                   UploadedFile(name=name, data=make())])  # fmt: skip
    assert "nothing was stored" in str(info.value)
    with pytest.raises(InvalidInput):
        studio.create_kit(KitCreateRequest.of(name="Other", trigger_token="oth_kit", class_noun="cup"),
                          [UploadedFile(name=name, data=make())])  # fmt: skip
    assert _state(studio, root) == before


def test_same_photo_twice_is_one_blob_and_one_kit_photo(studio: Studio) -> None:
    kit = studio.create_kit(KitCreateRequest.of(name="Acme", trigger_token="acm_kit", class_noun="bottle"))
    photo = UploadedFile(name="a.png", data=product_photo(0))
    studio.add_photos(kit.id, [photo])
    studio.add_photos(kit.id, [UploadedFile(name="copy of a.png", data=photo.data)])
    assert studio.get_kit(kit.id).photo_count == 1
    assert len([s for s in studio.blobs.iter_shas()]) == 1


def test_too_many_files_at_once_is_refused(studio: Studio) -> None:
    kit = studio.create_kit(KitCreateRequest.of(name="Acme", trigger_token="acm_kit", class_noun="bottle"))
    with pytest.raises(InvalidInput, match="too many files"):
        studio.add_photos(kit.id, [UploadedFile(name=f"{i}.png", data=b"x") for i in range(1000)])


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("blobs/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


HOSTILE_ARCHIVES: dict[str, Callable[[], bytes]] = {
    "G42 parent traversal": lambda: _zip([("../../x", b"x"), ("manifest.json", b"{}")]),
    "G42 absolute path": lambda: _zip([("/etc/x", b"x"), ("manifest.json", b"{}")]),
    "G42 windows path": lambda: _zip([("C:\\x", b"x"), ("manifest.json", b"{}")]),
    "G42 symlink": lambda: _zip([(_symlink_entry(), b"/etc/passwd"), ("manifest.json", b"{}")]),
    "G43 nested archive": lambda: _zip([("blobs/" + "a" * 64 + ".png", _zip([("x", b"x")])), ("manifest.json", b"{}")]),
    "G43 ratio bomb": lambda: _zip([(zipfile.ZipInfo("blobs/" + "b" * 64 + ".png"), b"\0" * 5_000_000)]),
    "G44 not a zip": lambda: b"PK\x03\x04 truncated",
}


@pytest.mark.parametrize("case", list(HOSTILE_ARCHIVES))
def test_hostile_archive_is_refused_before_anything_is_written(
    studio: Studio, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = HOSTILE_ARCHIVES[case]()
    if case == "G43 ratio bomb":  # deflate it so the declared ratio is ~1000:1
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("blobs/" + "b" * 64 + ".png", b"\0" * 5_000_000)
        data = buf.getvalue()
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    root = studio.settings.data_dir.parent
    before = _state(studio, root)
    with pytest.raises(InvalidInput):
        studio.import_kit_archive(data)
    assert _state(studio, root) == before
    assert os.listdir(empty) == []
