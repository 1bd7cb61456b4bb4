"""Kit archives: round trip, determinism, atomic export, and the manifest rules (bad_inputs.md G44).

Hostile zips (G42 paths/links/devices, G43 bombs) are in test_kit_archive_hostile.py; both files build
kits with ``make_kit`` and re-pack members with ``rezip`` from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from kit_images import encode, photo
from PIL import Image

from brand_kits.archive import ArchiveLimits, ImportedKit, export_kit_archive, read_kit_archive
from brand_kits.errors import KitError
from brand_kits.snapshot import AssetRecord, KitSnapshot, canonical_json


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    return encode(photo(width, height).convert(mode), "PNG")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_kit() -> tuple[KitSnapshot, dict[str, bytes]]:
    """A kit with two photos (one with a mask) and a logo, and its blob store."""
    photo_a, photo_b, logo, mask = png(64, 48), png(80, 64), png(64, 64, "RGBA"), png(64, 48, "L")
    store = {sha(data): data for data in (photo_a, photo_b, logo, mask)}
    assets = (
        AssetRecord(
            sha(photo_a),
            "photo",
            "front.jpg",
            "a photo of acm3 bottle",
            64,
            48,
            source="upload",
            licence="owned",
            consent=True,
            mask_sha256=sha(mask),
        ),
        AssetRecord(sha(photo_b), "photo", "crème side.png", "", 80, 64),
        AssetRecord(sha(logo), "logo", "logo.png", "acm3 logo", 64, 64, licence="CC-BY 4.0\nAcme"),
    )
    snapshot = KitSnapshot(
        name="Acme Bottles ✓",
        slug="acme-bottles",
        trigger_token="acm3",
        class_noun="water bottle",
        description="Reusable bottles.\nMatte finish.",
        background="#F4F1EA",
        style_guide={"palette": ["#0A2540", "#F4F1EA"], "tone": "calm", "fonts": {"head": "Inter"}},
        assets=assets,
    )
    return snapshot, store


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def rezip(members: dict[str, bytes], stored: frozenset[str] = frozenset()) -> bytes:
    """Pack ``members`` the way the exporter does (``stored`` names are not compressed)."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def manifest_of(members: dict[str, bytes]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(members["manifest.json"])
    return loaded


@pytest.fixture(scope="module")
def kit() -> tuple[KitSnapshot, dict[str, bytes]]:
    return make_kit()


@pytest.fixture(scope="module")
def archive_bytes(
    kit: tuple[KitSnapshot, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> bytes:
    snapshot, store = kit
    return export_kit_archive(
        snapshot, store.__getitem__, tmp_path_factory.mktemp("a") / "kit.zip"
    ).read_bytes()


def refused(data: bytes, match: str, limits: ArchiveLimits = ArchiveLimits()) -> KitError:  # noqa: B008
    with pytest.raises(KitError, match=match) as caught:
        read_kit_archive(data, limits)
    return caught.value


# -------------------------------------------------------------------------------------- happy path


def test_round_trip_from_path_and_bytes(
    kit: tuple[KitSnapshot, dict[str, bytes]], archive_bytes: bytes, tmp_path: Path
) -> None:
    snapshot, store = kit
    path = tmp_path / "in.zip"
    path.write_bytes(archive_bytes)
    for source in (path, archive_bytes):
        imported = read_kit_archive(source)
        assert isinstance(imported, ImportedKit)
        assert imported.snapshot == snapshot
        assert imported.snapshot.manifest_sha256() == snapshot.manifest_sha256()
        assert imported.blobs == store
        for data in imported.blobs.values():
            Image.open(BytesIO(data)).verify()


def test_archive_layout(kit: tuple[KitSnapshot, dict[str, bytes]], archive_bytes: bytes) -> None:
    snapshot, store = kit
    with zipfile.ZipFile(BytesIO(archive_bytes)) as archive:
        infos = archive.infolist()
        assert archive.testzip() is None
    names = [info.filename for info in infos]
    assert names == sorted(names) == sorted([f"blobs/{s}.png" for s in store] + ["manifest.json"])
    assert {(i.compress_type, i.date_time, i.external_attr >> 16) for i in infos} == {
        (zipfile.ZIP_DEFLATED, (1980, 1, 1, 0, 0, 0), stat.S_IFREG | 0o644)
    }
    manifest = manifest_of(members_of(archive_bytes))
    assert manifest == {
        "format": "brand-studio-kit",
        "version": 1,
        "kit": snapshot.to_dict(),
        "files": {f"blobs/{s}.png": s for s in store},
    }


def test_export_is_deterministic(
    kit: tuple[KitSnapshot, dict[str, bytes]], archive_bytes: bytes, tmp_path: Path
) -> None:
    snapshot, store = kit
    again = export_kit_archive(snapshot, store.__getitem__, tmp_path / "sub" / "other-name.zip")
    assert again.read_bytes() == archive_bytes
    # The same kit with its assets' style guide keys in another order is the same kit.
    reordered = KitSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict(), sort_keys=True)))
    third = export_kit_archive(reordered, store.__getitem__, tmp_path / "third.zip")
    assert third.read_bytes() == archive_bytes


def test_export_verifies_blob_hashes_and_leaves_nothing(
    kit: tuple[KitSnapshot, dict[str, bytes]], tmp_path: Path
) -> None:
    snapshot, store = kit
    damaged = dict(store)
    first = sorted(damaged)[0]
    damaged[first] = damaged[first][:-1] + b"\x00"
    with pytest.raises(KitError, match=f"stored image {first} does not match its SHA-256"):
        export_kit_archive(snapshot, damaged.__getitem__, tmp_path / "kit.zip")
    assert list(tmp_path.iterdir()) == []


def test_export_failure_keeps_the_previous_archive(
    kit: tuple[KitSnapshot, dict[str, bytes]], archive_bytes: bytes, tmp_path: Path
) -> None:
    snapshot, store = kit
    target = tmp_path / "kit.zip"
    target.write_bytes(archive_bytes)

    def failing(digest: str) -> bytes:
        raise OSError(28, "No space left on device")

    with pytest.raises(KitError, match="No space left on device"):
        export_kit_archive(snapshot, failing, target)
    assert [p.name for p in tmp_path.iterdir()] == ["kit.zip"]
    assert target.read_bytes() == archive_bytes


def test_export_refuses_a_blob_whose_size_disagrees_with_the_kit(
    kit: tuple[KitSnapshot, dict[str, bytes]], tmp_path: Path
) -> None:
    snapshot, store = kit
    wrong = snapshot.assets[1].__class__(**{**snapshot.assets[1].to_dict(), "width": 81})
    bad = KitSnapshot.from_dict(
        {**snapshot.to_dict(), "assets": [a.to_dict() for a in (snapshot.assets[0], wrong)]}
    )
    with pytest.raises(KitError, match="is 80x64 but the kit says 81x64"):
        export_kit_archive(bad, store.__getitem__, tmp_path / "kit.zip")
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------- not archives at all


@pytest.mark.parametrize("cut", [0, 1, 21, 100, 0.5, -1, -22, -23])
def test_truncated_archive_is_refused(archive_bytes: bytes, cut: float) -> None:
    end = int(len(archive_bytes) * cut) if isinstance(cut, float) else cut
    refused(archive_bytes[:end], "zip archive|truncated|central directory")


def test_random_bytes_and_other_sources_are_refused(tmp_path: Path) -> None:
    refused(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, "not a zip archive")
    with pytest.raises(KitError, match="could not open"):
        read_kit_archive(tmp_path / "missing.zip")
    with pytest.raises(KitError, match="not a regular file"):
        read_kit_archive(tmp_path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.zip")
        with pytest.raises(KitError, match="not a regular file"):  # refused, never blocks on open
            read_kit_archive(tmp_path / "pipe.zip")


def test_archive_over_the_size_limit_is_refused_before_parsing(archive_bytes: bytes, tmp_path: Path) -> None:
    limits = ArchiveLimits(max_archive_bytes=len(archive_bytes) - 1)
    refused(archive_bytes, "larger than", limits)
    path = tmp_path / "k.zip"
    path.write_bytes(archive_bytes)
    with pytest.raises(KitError, match="larger than"):
        read_kit_archive(path, limits)


# ----------------------------------------------------------------------------------- G44: the manifest


def _tampered(archive_bytes: bytes, **changes: Any) -> dict[str, bytes]:
    members = members_of(archive_bytes)
    manifest = manifest_of(members)
    manifest.update(changes)
    members["manifest.json"] = canonical_json(manifest)
    return members


def test_manifest_hash_mismatch(archive_bytes: bytes, kit: tuple[KitSnapshot, dict[str, bytes]]) -> None:
    members = members_of(archive_bytes)
    files = manifest_of(members)["files"]
    name = sorted(files)[0]
    files[name] = "0" * 64
    refused(rezip(_tampered(archive_bytes, files=files)), f"file '{name}' is listed with hash '0000")
    # Content swapped for another valid PNG under the old name: the member's own hash gives it away.
    members[name] = encode(Image.new("RGB", (64, 48), "red"), "PNG")
    refused(rezip(members), f"member '{name}' has content whose SHA-256 differs")


def test_missing_file(archive_bytes: bytes) -> None:
    members = members_of(archive_bytes)
    gone = sorted(n for n in members if n.startswith("blobs/"))[1]
    del members[gone]
    refused(rezip(members), f"manifest.json lists '{gone}' but the archive has no such member")


def test_extra_file(archive_bytes: bytes) -> None:
    members = members_of(archive_bytes)
    extra = encode(Image.new("RGB", (64, 64), "blue"), "PNG")
    members[f"blobs/{sha(extra)}.png"] = extra
    refused(rezip(members), f"member 'blobs/{sha(extra)}.png' is not listed in manifest.json")
    # Listed too, but no asset uses it.
    files = manifest_of(members)["files"] | {f"blobs/{sha(extra)}.png": sha(extra)}
    members["manifest.json"] = _tampered(archive_bytes, files=files)["manifest.json"]
    refused(rezip(members), "is not used by any asset")


@pytest.mark.parametrize("model_name", ["model.ckpt", "blobs/x.safetensors", "lora.PT", "weights.bin"])
def test_manifest_referencing_a_model_file(archive_bytes: bytes, model_name: str) -> None:
    members = members_of(archive_bytes)
    files = manifest_of(members)["files"] | {model_name: "0" * 64}
    tampered = _tampered(archive_bytes, files=files)
    refused(rezip(tampered), f"file '{model_name}' is a model file")  # listed only
    tampered[model_name] = b"PK\x03\x04 pretend pickle"
    refused(rezip(tampered), f"member '{model_name}' is a model file")  # listed and present


def test_asset_image_missing_from_the_archive(
    archive_bytes: bytes, kit: tuple[KitSnapshot, dict[str, bytes]]
) -> None:
    snapshot, _ = kit
    members = members_of(archive_bytes)
    mask = snapshot.assets[0].mask_sha256
    assert mask is not None
    files = {n: s for n, s in manifest_of(members)["files"].items() if s != mask}
    tampered = _tampered(archive_bytes, files=files)
    del tampered[f"blobs/{mask}.png"]
    refused(rezip(tampered), f"an asset uses image {mask} but the archive does not carry it")


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"[]", "does not describe a Brand Studio kit"),
        (b'{"format": "other", "version": 1}', "does not describe a Brand Studio kit"),
        (
            b'{"format": "brand-studio-kit", "version": 2, "kit": {}, "files": {}}',
            "version 2 is not supported",
        ),
        (b'{"format": "brand-studio-kit", "version": true, "kit": {}, "files": {}}', "version True"),
        (b'{"format": "brand-studio-kit", "version": 1, "kit": {}, "files": {}, "x": 1}', "exactly the keys"),
        (b'{"format": "brand-studio-kit", "format": "brand-studio-kit"}', "repeats keys"),
        (b'{"format": "brand-studio-kit", "version": NaN}', "contains NaN"),
        (b'{"format": "brand-studio-kit", "version": 1, "kit": {}, "files": []}', "files must be an object"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid UTF-8 JSON|does not describe"),
    ],
)
def test_bad_manifests(archive_bytes: bytes, manifest: bytes, match: str) -> None:
    members = members_of(archive_bytes)
    members["manifest.json"] = manifest
    refused(rezip(members, stored=frozenset({"manifest.json"})), match)


def test_missing_manifest(archive_bytes: bytes) -> None:
    members = members_of(archive_bytes)
    del members["manifest.json"]
    refused(rezip(members), "has no manifest.json")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"unexpected": 1}, r"kit has unknown keys \['unexpected'\]"),
        ({"trigger_token": "the"}, "common word"),
        ({"background": "red"}, "#RRGGBB"),
        ({"slug": "../x"}, "slug must be"),
        ({"assets": "none"}, "assets must be a list"),
    ],
)
def test_invalid_kit_description(archive_bytes: bytes, change: dict[str, Any], match: str) -> None:
    members = members_of(archive_bytes)
    kit_dict = manifest_of(members)["kit"] | change
    refused(rezip(_tampered(archive_bytes, kit=kit_dict)), f"the kit description is invalid: .*{match}")


def test_blob_that_is_not_a_png(archive_bytes: bytes) -> None:
    members = members_of(archive_bytes)
    jpeg = encode(photo(64, 48), "JPEG")
    manifest = manifest_of(members)
    old = sorted(manifest["files"])[0]
    members = {n: d for n, d in members.items() if n != old}
    manifest["files"] = {n: s for n, s in manifest["files"].items() if n != old} | {
        f"blobs/{sha(jpeg)}.png": sha(jpeg)
    }
    members[f"blobs/{sha(jpeg)}.png"] = jpeg
    members["manifest.json"] = canonical_json(manifest)
    refused(rezip(members), f"member 'blobs/{sha(jpeg)}.png' is not a PNG image")


def test_asset_size_must_match_its_png(archive_bytes: bytes) -> None:
    members = members_of(archive_bytes)
    kit_dict = manifest_of(members)["kit"]
    kit_dict["assets"][1]["height"] = 65
    refused(rezip(_tampered(archive_bytes, kit=kit_dict)), "is 80x64 but the kit says 80x65")
