"""Campaign export packs: one zip of channel images plus a manifest (CSV and JSON), same bytes every time.

Layout: ``images/<cell-slug>/<format-slug>.<png|jpg>`` per variant and channel, ``manifest.csv`` and
``manifest.json``. Member names are built only from slugs (``[a-z0-9-]``, length-capped, deduplicated):
user text never reaches a path. The zip is deterministic: members sorted by name, fixed date
(1980-01-01 00:00:00), fixed permissions (0644), Unix as the creating system, deflate at a fixed level,
no extra fields; rows are sorted by (cell id, format key), so the order the entries arrive in does not
matter. ``manifest.csv`` is UTF-8 with a BOM (so Excel reads accents), every field quoted, and every cell
neutralised against formula injection (OWASP "CSV Injection"): a ``'`` goes before a leading
``= + - @ TAB CR`` and before such a character right after a separator or line break inside the field.
``manifest.json`` keeps the raw values.

:func:`read_manifest` reads a pack back treating it as hostile (bad_inputs.md §G): member count checked
from the end record before parsing, names (traversal, absolute, drive letters, backslashes), symlinks
and device files, nested archives, sizes, compression ratio, bounded reads, and every file's sha256
against the manifest, with no file missing or extra. Nothing is ever extracted to disk.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

PACK_FORMAT, PACK_VERSION = "brand-studio-variant-pack", 1
MANIFEST_CSV, MANIFEST_JSON = "manifest.csv", "manifest.json"
MANIFEST_COLUMNS = ("cell_id", "factor", "value", "hypothesis", "channel", "format_key", "width", "height",
                    "file", "sha256", "recipe_hash", "review_status", "checks_status")  # fmt: skip
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_MODE = 0o644 << 16
COMPRESSLEVEL = 6
SLUG_MAX = 40
EXTENSIONS = {"png": "png", "jpeg": "jpg"}
_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INNER_FORMULA = re.compile(r"([,;\t\r\n|])([=+\-@])")
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com\d|lpt\d)")
_IMAGE_MEMBER = re.compile(r"images/[a-z0-9-]+/[a-z0-9-]+\.(png|jpg)")
_EOCD = struct.Struct("<4s4H2LH")
# What zipfile may raise on a hostile archive (a bad CRC, overlapping members, a broken directory ...).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
               RuntimeError, struct.error, IndexError, zlib.error)  # fmt: skip


class ExportPackError(ValueError):
    """A pack that cannot be built, or an archive that is not a pack we can read safely."""


@dataclass(frozen=True)
class PackEntry:
    """One variant in one channel size: its encoded image and the manifest fields."""

    cell_id: str
    factor: str
    value: str
    hypothesis: str
    channel: str
    format_key: str
    width: int
    height: int
    image: bytes = field(repr=False)
    image_format: Literal["png", "jpeg"]
    recipe_hash: str
    review_status: str
    checks_status: str


@dataclass(frozen=True)
class CampaignMeta:
    """``snapshot``: what the facade exported (e.g. the campaign's last change time), kept verbatim."""

    campaign_id: str
    name: str
    control_cell_id: str | None = None
    snapshot: str = ""


@dataclass(frozen=True)
class PackLimits:
    max_archive_bytes: int = 1024**3
    max_members: int = 5000
    max_member_bytes: int = 64 * 1024**2
    max_total_bytes: int = 1024**3
    max_ratio: float = 100.0
    ratio_min_bytes: int = 64 * 1024  #: smaller members may compress better than ``max_ratio``


@dataclass(frozen=True)
class PackContents:
    campaign: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    files: dict[str, bytes] = field(repr=False, hash=False)  #: member name -> bytes, sha256-verified


# ----------------------------------------------------------------------------------------------- build


def safe_slug(text: str, max_len: int = SLUG_MAX) -> str:
    """``[a-z0-9-]`` only (accents folded, the rest to ``-``), at most ``max_len``, never empty."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:max_len].strip("-") or "x"
    return f"{slug}-x" if _WINDOWS_RESERVED.fullmatch(slug) else slug


def csv_safe(cell: str) -> str:
    """``cell`` neutralised against spreadsheet formula injection (OWASP)."""
    cell = _INNER_FORMULA.sub(r"\1'\2", cell)
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def pack_manifest(entries: Sequence[PackEntry]) -> list[dict[str, Any]]:
    """The manifest rows (``MANIFEST_COLUMNS``), sorted, with member names and sha256 filled in."""
    _check_entries(entries)
    rows: list[dict[str, Any]] = []
    cell_slugs: dict[str, str] = {}
    format_slugs: dict[str, set[str]] = {}
    for entry in sorted(entries, key=lambda e: (e.cell_id, e.format_key)):
        if entry.cell_id not in cell_slugs:
            cell_slugs[entry.cell_id] = _unique(safe_slug(entry.cell_id), set(cell_slugs.values()))
            format_slugs[entry.cell_id] = set()
        format_slug = _unique(safe_slug(entry.format_key), format_slugs[entry.cell_id])
        format_slugs[entry.cell_id].add(format_slug)
        name = f"images/{cell_slugs[entry.cell_id]}/{format_slug}.{EXTENSIONS[entry.image_format]}"
        row = {column: getattr(entry, column, None) for column in MANIFEST_COLUMNS}
        rows.append(row | {"file": name, "sha256": hashlib.sha256(entry.image).hexdigest()})
    return rows


def build_pack(entries: Sequence[PackEntry], campaign: CampaignMeta) -> bytes:
    """The pack's zip bytes; the same entries and campaign always give the same bytes."""
    rows = pack_manifest(entries)
    by_key = {(e.cell_id, e.format_key): e for e in entries}
    members = {row["file"]: by_key[(row["cell_id"], row["format_key"])].image for row in rows}
    members[MANIFEST_CSV] = _manifest_csv(rows)
    members[MANIFEST_JSON] = _manifest_json(rows, campaign)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = ZIP_MODE
            archive.writestr(
                info, members[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSLEVEL
            )
    return buffer.getvalue()


def _check_entries(entries: Sequence[PackEntry]) -> None:
    if not entries:
        raise ExportPackError("nothing to export: the pack needs at least one variant in one channel size")
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.cell_id, entry.format_key)
        if key in seen:
            raise ExportPackError(
                f"cell {entry.cell_id!r:.80} has two images for format {entry.format_key!r}"
            )
        seen.add(key)
        if not entry.cell_id.strip():
            raise ExportPackError("a pack entry has an empty cell id")
        _check_image(entry)


def _check_image(entry: PackEntry) -> None:
    where = f"cell {entry.cell_id!r:.80}, format {entry.format_key!r}"
    if entry.image_format not in _MAGIC:
        raise ExportPackError(f"{where}: image format {entry.image_format!r} is not 'png' or 'jpeg'")
    if not entry.image.startswith(_MAGIC[entry.image_format]):
        raise ExportPackError(f"{where}: the bytes are not a {entry.image_format.upper()} file")
    with Image.open(io.BytesIO(entry.image), formats=[entry.image_format.upper()]) as img:
        size = img.size
    if size != (entry.width, entry.height):
        raise ExportPackError(
            f"{where}: the image is {size[0]}x{size[1]} but the entry says {entry.width}x{entry.height}"
        )


def _unique(slug: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    candidate, number = slug, 1
    while candidate in taken:
        number += 1
        suffix = f"-{number}"
        candidate = slug[: SLUG_MAX - len(suffix)].rstrip("-") + suffix
    return candidate


def _manifest_csv(rows: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([csv_safe(str(row[column])) for column in MANIFEST_COLUMNS])
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def _manifest_json(rows: list[dict[str, Any]], campaign: CampaignMeta) -> bytes:
    document = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "campaign": {"id": campaign.campaign_id, "name": campaign.name,
                     "control_cell_id": campaign.control_cell_id, "snapshot": campaign.snapshot},
        "columns": list(MANIFEST_COLUMNS),
        "rows": rows,
    }  # fmt: skip
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------------ read


def read_manifest(data: bytes, limits: PackLimits | None = None) -> PackContents:
    """Read a pack back, all or nothing; :class:`ExportPackError` names the member and the rule broken."""
    limits = limits or PackLimits()
    if len(data) > limits.max_archive_bytes:
        raise ExportPackError(
            f"the archive is {len(data)} bytes; a pack is at most {limits.max_archive_bytes}"
        )
    count = _declared_members(data)
    if count > limits.max_members:
        raise ExportPackError(
            f"the archive declares {count} members; a pack has at most {limits.max_members}"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            for info in infos:
                _check_member(info, limits)
            _check_totals(infos, limits)
            files = {info.filename: _read_member(archive, info) for info in infos}
    except ExportPackError:
        raise
    except _ZIP_ERRORS as exc:
        raise ExportPackError(f"not a readable zip archive ({exc}); export the pack again") from exc
    return _verify(files)


def _declared_members(data: bytes) -> int:
    """The member count from the end-of-central-directory record, before zipfile parses anything."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65536 - _EOCD.size))
    if at < 0 or at + _EOCD.size > len(data):
        raise ExportPackError("not a zip archive (no end record); export the pack again")
    total = _EOCD.unpack_from(data, at)[4]
    if total == 0xFFFF:
        raise ExportPackError("the archive is a ZIP64 archive; packs never are: export the pack again")
    return int(total)


def _member_error(name: str, rule: str) -> ExportPackError:
    return ExportPackError(
        f"pack refused: member {name!r:.120} {rule}; export the pack again from Brand Studio"
    )


def _check_member(info: zipfile.ZipInfo, limits: PackLimits) -> None:
    name, mode = info.orig_filename, info.external_attr >> 16
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise _member_error(name, "has control characters in its name")
    if "\\" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in name.split("/"):
        raise _member_error(name, "points outside the archive (absolute, drive, backslash or '..' path)")
    if stat.S_ISLNK(mode):
        raise _member_error(name, "is a symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG) or name.endswith("/"):
        raise _member_error(name, "is not a regular file (directory, device or pipe)")
    if name not in (MANIFEST_CSV, MANIFEST_JSON) and not _IMAGE_MEMBER.fullmatch(name):
        raise _member_error(
            name, "is not a pack member (manifest.csv, manifest.json, images/<cell>/<format>.png|jpg)"
        )
    if info.flag_bits & 0x1:
        raise _member_error(name, "is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _member_error(name, f"uses compression method {info.compress_type} (only stored or deflate)")
    if info.file_size > limits.max_member_bytes:
        raise _member_error(name, f"is {info.file_size} bytes (max {limits.max_member_bytes})")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise _member_error(name, f"expands {ratio:.0f}:1 (max {limits.max_ratio:.0f}:1): a zip bomb")


def _check_totals(infos: list[zipfile.ZipInfo], limits: PackLimits) -> None:
    names = [info.orig_filename for info in infos]
    if len(infos) > limits.max_members:
        raise ExportPackError(
            f"the archive has {len(infos)} members; a pack has at most {limits.max_members}"
        )
    if len(set(names)) != len(names):
        raise ExportPackError("pack refused: a member name appears twice; export the pack again")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise ExportPackError(
            f"the archive unpacks to {total} bytes; a pack is at most {limits.max_total_bytes}"
        )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)  # bounded: a member lying about its size is caught
    if len(data) != info.file_size:
        raise _member_error(info.orig_filename, f"holds {len(data)}+ bytes but declares {info.file_size}")
    return data


def _verify(files: dict[str, bytes]) -> PackContents:
    for required in (MANIFEST_JSON, MANIFEST_CSV):
        if required not in files:
            raise ExportPackError(f"pack refused: {required} is missing; export the pack again")
    try:
        document = json.loads(files[MANIFEST_JSON].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportPackError(f"pack refused: manifest.json is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(document, dict) or (document.get("format"), document.get("version")) != (
        PACK_FORMAT,
        PACK_VERSION,
    ):
        raise ExportPackError(
            f"pack refused: manifest.json is not a {PACK_FORMAT} version {PACK_VERSION} manifest"
        )
    rows = document.get("rows")
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and set(r) == set(MANIFEST_COLUMNS) for r in rows
    ):
        raise ExportPackError(
            f"pack refused: manifest.json rows must each have exactly the columns {MANIFEST_COLUMNS}"
        )
    images = {name for name in files if name.startswith("images/")}
    listed = [row["file"] for row in rows]
    if sorted(listed) != sorted(images) or len(set(listed)) != len(listed):
        missing, extra = sorted(set(listed) - images), sorted(images - set(listed))
        raise ExportPackError(f"pack refused: files missing {missing[:5]}, not in the manifest {extra[:5]}")
    for row in rows:
        image = files[row["file"]]
        if not image.startswith(_MAGIC["png" if row["file"].endswith(".png") else "jpeg"]):
            raise ExportPackError(
                f"pack refused: {row['file']!r} is not the image its name says (nested archive?)"
            )
        if hashlib.sha256(image).hexdigest() != row["sha256"]:
            raise ExportPackError(f"pack refused: {row['file']!r} does not match its sha256 in the manifest")
    if files[MANIFEST_CSV] != _manifest_csv(rows):
        raise ExportPackError("pack refused: manifest.csv does not agree with manifest.json")
    return PackContents(campaign=dict(document.get("campaign") or {}), rows=tuple(rows), files=files)
