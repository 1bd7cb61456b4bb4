"""Export packs: manifest contents, deterministic bytes, safe names and CSV cells, hostile archives refused."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import stat
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.editing.encode import ImageMetadata, encode_for_channel, read_image_metadata
from studio.editing.export_pack import (
    MANIFEST_COLUMNS,
    CampaignMeta,
    ExportPackError,
    PackEntry,
    PackLimits,
    build_pack,
    csv_safe,
    read_manifest,
    safe_slug,
)

REPO = Path(__file__).resolve().parents[2]
XMP = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">' \
      b"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia</x:xmpmeta>"  # fmt: skip
CAMPAIGN = CampaignMeta(
    "camp-1", "Spring launch: café", control_cell_id="control", snapshot="2026-01-02T03:04:05Z"
)
HOSTILE_TEXT = ["=HYPERLINK(\"http://evil\",\"x\")", "+1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1", "ok;=1+2",
                "a,=cmd|' /C calc'!A0", "line\n@x"]  # fmt: skip


def picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def entry(
    cell_id: str, format_key: str, size: tuple[int, int], fmt: str = "jpeg", **fields: str
) -> PackEntry:
    seed = int(hashlib.sha256(f"{cell_id}/{format_key}".encode()).hexdigest()[:8], 16)
    metadata = ImageMetadata(
        xmp=XMP, parameters=f"photo, {cell_id}\nSteps: 20, Seed: {seed}", recipe={"cell": cell_id}
    )
    encoded = encode_for_channel(picture(*size, seed), fmt, 150_000, metadata)  # type: ignore[arg-type]
    values = {"factor": "background", "value": "beach", "hypothesis": "warmer sells", "channel": "Google",
              "recipe_hash": "r" + str(seed), "review_status": "approved", "checks_status": "pass"} | fields  # fmt: skip
    return PackEntry(cell_id=cell_id, format_key=format_key, width=size[0], height=size[1], image=encoded.data,
                     image_format=fmt, **values)  # type: ignore[arg-type]  # fmt: skip


def sample_entries() -> list[PackEntry]:
    return [
        entry("control", "google_banner_300x250", (300, 250), value="master", hypothesis="baseline"),
        entry("control", "google_banner_320x50", (320, 50), "png", value="master", hypothesis="baseline"),
        entry("c2-beach", "google_banner_300x250", (300, 250)),
        entry(
            "c3-slate",
            "google_banner_300x250",
            (300, 250),
            value='=HYPERLINK("http://evil")',
            hypothesis="+1",
        ),
    ]


def sample_pack_sha() -> str:
    """Used by the subprocess check: the same inputs built in a fresh interpreter."""
    return hashlib.sha256(build_pack(sample_entries(), CAMPAIGN)).hexdigest()


def rezip(members: dict[str, bytes], tweak: dict[str, int] | None = None) -> bytes:
    """A zip of ``members`` (a Unix file mode per name in ``tweak``), written the plain way."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (tweak or {}).get(name, 0o100644) << 16
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def pack() -> bytes:
    return build_pack(sample_entries(), CAMPAIGN)


def test_manifest_lists_every_image_with_its_hash_and_fields(pack: bytes) -> None:
    contents = read_manifest(pack)
    assert contents.campaign == {"id": "camp-1", "name": "Spring launch: café", "control_cell_id": "control",
                                 "snapshot": "2026-01-02T03:04:05Z"}  # fmt: skip
    assert [(r["cell_id"], r["format_key"]) for r in contents.rows] == [
        ("c2-beach", "google_banner_300x250"), ("c3-slate", "google_banner_300x250"),
        ("control", "google_banner_300x250"), ("control", "google_banner_320x50")]  # fmt: skip
    first = contents.rows[0]
    assert set(first) == set(MANIFEST_COLUMNS)
    assert first["file"] == "images/c2-beach/google-banner-300x250.jpg" and first["width"] == 300
    assert contents.rows[3]["file"] == "images/control/google-banner-320x50.png"
    for row in contents.rows:
        image = contents.files[row["file"]]
        assert hashlib.sha256(image).hexdigest() == row["sha256"]
        read = read_image_metadata(image)  # recipe and AI disclosure survive the trip through the zip
        assert read.recipe == {"cell": row["cell_id"]} and read.xmp == XMP and read.parameters
        with Image.open(io.BytesIO(image)) as img:
            assert img.size == (row["width"], row["height"])
    assert contents.rows[1]["value"] == '=HYPERLINK("http://evil")'  # JSON keeps the raw text


def test_the_zip_is_deterministic_in_every_field(pack: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(pack)) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names) and names[-2:] == ["manifest.csv", "manifest.json"]
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr == 0o644 << 16 and info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.extra == b"" and info.comment == b""


def test_same_inputs_give_identical_bytes_in_any_order_and_in_another_process(pack: bytes) -> None:
    entries = sample_entries()
    assert build_pack(entries, CAMPAIGN) == pack
    shuffled = entries[:]
    random.Random(3).shuffle(shuffled)
    assert build_pack(shuffled, CAMPAIGN) == pack
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    code = "from tests.editing.test_export_pack import sample_pack_sha; print(sample_pack_sha())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == hashlib.sha256(pack).hexdigest()
    assert build_pack(entries, replace(CAMPAIGN, snapshot="later")) != pack


def test_csv_cells_are_safe_against_formula_injection() -> None:
    entries = [entry(f"cell-{i}", "google_banner_320x50", (320, 50), value=text, hypothesis=text, factor=text)
               for i, text in enumerate(HOSTILE_TEXT)]  # fmt: skip
    entries.append(entry("=cmd|' /C calc'!A0", "google_banner_320x50", (320, 50)))
    data = build_pack(entries, CAMPAIGN)
    text = members_of(data)["manifest.csv"].decode("utf-8")
    assert text.startswith('\ufeff"cell_id",')
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    assert rows[0] == list(MANIFEST_COLUMNS) and len(rows) == len(entries) + 1
    cells = [cell for row in rows[1:] for cell in row]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        for sep in ",;\t\r\n|":
            for trigger in "=+-@":
                assert sep + trigger not in cell, cell
    assert '\'=HYPERLINK("http://evil","x")' in cells and "'-2+3" in cells and "'\t'=1" in cells
    assert "ok;'=1+2" in cells and "line\n'@x" in cells
    json_rows = json.loads(members_of(data)["manifest.json"])["rows"]
    assert {row["value"] for row in json_rows} >= set(HOSTILE_TEXT)  # raw in JSON, escaped only in CSV


def test_csv_safe_known_answers() -> None:
    assert csv_safe("=1+2") == "'=1+2"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert csv_safe("plain text, no formula") == "plain text, no formula"
    assert csv_safe("a-b+c") == "a-b+c"  # not after a separator: harmless
    assert csv_safe("1080") == "1080"


def test_member_names_are_slugs_never_user_text() -> None:
    weird = ["../../etc/passwd", "C:\\evil", "Ünïcödé café!", "CON", "x" * 300, "A B", "a-b", "", "!!!"]
    entries = [entry(cell or " ", "google_banner_320x50", (320, 50)) for cell in weird if cell]
    contents = read_manifest(build_pack(entries, CAMPAIGN))
    files = [row["file"] for row in contents.rows]
    assert len(set(files)) == len(files) == len(entries)
    for name in files:
        cell_dir = name.split("/")[1]
        assert len(cell_dir) <= 40 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in cell_dir)
    assert {f.split("/")[1] for f in files} >= {
        "etc-passwd",
        "c-evil",
        "unicode-cafe",
        "con-x",
        "a-b",
        "a-b-2",
        "x",
    }


def test_slugs_known_answers() -> None:
    assert safe_slug("Spring Launch — Café 2026!") == "spring-launch-cafe-2026"
    assert safe_slug("../..") == "x" and safe_slug("nul") == "nul-x" and len(safe_slug("a" * 99)) == 40


def test_bad_entries_are_refused() -> None:
    good = entry("c1", "google_banner_320x50", (320, 50))
    with pytest.raises(ExportPackError, match="at least one variant"):
        build_pack([], CAMPAIGN)
    with pytest.raises(ExportPackError, match="two images for format"):
        build_pack([good, good], CAMPAIGN)
    with pytest.raises(ExportPackError, match="the image is 320x50 but the entry says 300x250"):
        build_pack([replace(good, width=300, height=250)], CAMPAIGN)
    with pytest.raises(ExportPackError, match="not a PNG file"):
        build_pack([replace(good, image_format="png")], CAMPAIGN)


def test_packs_are_written_atomically_and_leave_no_temp(tmp_path: Path, pack: bytes) -> None:
    from studio.fileio import atomic_write_bytes as write_pack_atomically  # what `brand-studio export` uses

    target = tmp_path / "out" / "campaign.zip"
    write_pack_atomically(target, b"old pack")
    write_pack_atomically(target, pack)
    assert target.read_bytes() == pack and os.listdir(target.parent) == ["campaign.zip"]
    blocked = tmp_path / "blocked.zip"
    blocked.mkdir()
    (blocked / "keep").write_text("x")
    with pytest.raises(OSError):
        write_pack_atomically(blocked, pack)  # os.replace cannot put a file over a folder
    assert sorted(os.listdir(tmp_path)) == ["blocked.zip", "out"] and (blocked / "keep").read_text() == "x"


@pytest.mark.parametrize("name", ["../../x", "/etc/x", "C:\\x", "..\\x", "images/../../x.png"])
def test_path_traversal_members_are_refused(pack: bytes, name: str) -> None:
    members = members_of(pack) | {name: b"x"}
    with pytest.raises(ExportPackError, match="points outside the archive"):
        read_manifest(rezip(members))


@pytest.mark.parametrize(("mode", "rule"), [(stat.S_IFLNK | 0o777, "symbolic link"),
                                            (stat.S_IFCHR | 0o644, "not a regular file"),
                                            (stat.S_IFDIR | 0o755, "not a regular file")])  # fmt: skip
def test_links_devices_and_folders_are_refused(pack: bytes, mode: int, rule: str) -> None:
    members = members_of(pack)
    name = next(n for n in members if n.startswith("images/"))
    with pytest.raises(ExportPackError, match=rule):
        read_manifest(rezip(members, {name: mode}))


def test_zip_bomb_limits_trip(pack: bytes) -> None:
    members = members_of(pack)
    with pytest.raises(ExportPackError, match="declares 6 members; a pack has at most 3"):
        read_manifest(pack, PackLimits(max_members=3))
    with pytest.raises(ExportPackError, match="unpacks to"):
        read_manifest(pack, PackLimits(max_total_bytes=1000))
    with pytest.raises(ExportPackError, match=r"expands \d+:1 .* a zip bomb"):
        read_manifest(rezip(members | {"images/bomb/x.png": b"\0" * 2_000_000}))
    with pytest.raises(ExportPackError, match="is 2000000 bytes"):
        read_manifest(
            rezip(members | {"images/bomb/x.png": b"\0" * 2_000_000}), PackLimits(max_member_bytes=10**6)
        )


def test_tampered_missing_extra_and_foreign_members_are_refused(pack: bytes) -> None:
    members = members_of(pack)
    image = next(n for n in members if n.endswith(".jpg"))
    tampered = members | {image: members[image][:-10] + b"0123456789"}
    with pytest.raises(ExportPackError, match="does not match its sha256"):
        read_manifest(rezip(tampered))
    with pytest.raises(ExportPackError, match="files missing"):
        read_manifest(rezip({n: d for n, d in members.items() if n != image}))
    with pytest.raises(ExportPackError, match="not in the manifest"):
        read_manifest(rezip(members | {"images/extra/x.png": members[image]}))
    for foreign in ("images/a/model.ckpt", "images/a/nested.zip", "notes.txt"):
        with pytest.raises(ExportPackError, match="is not a pack member"):
            read_manifest(rezip(members | {foreign: b"PK\x03\x04"}))
    with pytest.raises(ExportPackError, match="manifest.csv does not agree"):
        read_manifest(
            rezip(members | {"manifest.csv": members["manifest.csv"].replace(b"approved", b"rejected")})
        )
    with pytest.raises(ExportPackError, match="manifest.json is missing"):
        read_manifest(rezip({n: d for n, d in members.items() if n != "manifest.json"}))


def test_a_nested_archive_under_an_image_name_is_refused(pack: bytes) -> None:
    members = members_of(pack)
    document = json.loads(members["manifest.json"])
    row = document["rows"][0]
    fake = rezip({"inner.txt": b"hi"})
    row["sha256"] = hashlib.sha256(fake).hexdigest()
    members |= {row["file"]: fake, "manifest.json": json.dumps(document).encode()}
    with pytest.raises(ExportPackError, match="not the image its name says"):
        read_manifest(rezip(members))


def test_garbage_and_corrupt_archives_are_refused(pack: bytes) -> None:
    with pytest.raises(ExportPackError, match="no end record"):
        read_manifest(b"not a zip at all")
    broken = bytearray(pack)
    at = broken.find(b"manifest.csv") + len("manifest.csv") + 40  # inside the first manifest's deflate data
    broken[at] ^= 0xFF
    with pytest.raises(ExportPackError, match="not a readable zip archive|does not agree"):
        read_manifest(bytes(broken))
