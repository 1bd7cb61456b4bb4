"""An immutable, database-free description of one kit version (shared by exports and archives).

A :class:`KitSnapshot` is what a kit archive's manifest carries: the kit's identity, its background
colour, its style guide (opaque JSON here) and one :class:`AssetRecord` per photo or logo, naming the
image by the SHA-256 of its PNG bytes. Both classes validate themselves on construction and raise
:class:`KitError` (or :class:`InvalidKitField`) with a message that says what to fix.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

from brand_kits.caption_edit import validate_caption
from brand_kits.errors import InvalidKitField, KitError
from brand_kits.identity import SLUG_MAX, make_identity
from brand_kits.labels import LABEL_MAX

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "brand-studio-kit"
MANIFEST_VERSION = 1
BLOB_NAME = re.compile(r"blobs/([0-9a-f]{64})\.png")
# Pickle-based or other model files: never part of a kit (models are imported as .safetensors elsewhere).
MODEL_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".pkl", ".pickle", ".onnx")
ASSET_KINDS = ("photo", "logo")
SOURCE_MAX = 500
LICENCE_MAX = 2000
STYLE_GUIDE_MAX_CHARS = 1_000_000
MAX_SIDE = 100_000

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_BACKGROUND = re.compile(r"#[0-9A-Fa-f]{6}")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _bad_chars(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES and c not in allowed for c in text)


def _text(owner: str, name: str, value: object, max_len: int, allowed: str = "") -> str:
    if not isinstance(value, str):
        raise InvalidKitField(name, f"{owner}: {name} must be text, got {type(value).__name__}")
    if len(value) > max_len:
        raise InvalidKitField(name, f"{owner}: {name} is {len(value)} characters; shorten it to {max_len}")
    if _bad_chars(value, allowed):
        raise InvalidKitField(name, f"{owner}: {name} contains control characters; remove them")
    return value


def _sha(owner: str, name: str, value: object) -> str:
    if not isinstance(value, str) or not SHA256_PATTERN.fullmatch(value):
        raise InvalidKitField(
            name, f"{owner}: {name} must be 64 lowercase hex digits (a SHA-256), got {value!r:.80}"
        )
    return value


@dataclass(frozen=True)
class AssetRecord:
    """One kit image: its PNG's SHA-256, kind, display label, caption, size and rights."""

    sha256: str
    kind: Literal["photo", "logo"]
    label: str
    caption: str
    width: int
    height: int
    source: str = ""
    licence: str = ""
    consent: bool = False
    mask_sha256: str | None = None

    def __post_init__(self) -> None:
        owner = f"asset {self.sha256!r:.80}"
        _sha("asset", "sha256", self.sha256)
        if self.kind not in ASSET_KINDS:
            raise InvalidKitField("kind", f"{owner}: kind must be 'photo' or 'logo', got {self.kind!r:.40}")
        label = _text(owner, "label", self.label, LABEL_MAX)
        if not label.strip() or "/" in label or "\\" in label:
            raise InvalidKitField("label", f"{owner}: label must be a non-empty file name without slashes")
        if not isinstance(self.caption, str):
            raise InvalidKitField(
                "caption", f"{owner}: caption must be text, got {type(self.caption).__name__}"
            )
        if self.caption:  # an asset may have no caption yet (the default caption is used then)
            try:
                validate_caption(self.caption)
            except InvalidKitField as exc:
                raise InvalidKitField("caption", f"{owner}: {exc}") from exc
        for name in ("width", "height"):
            side = getattr(self, name)
            if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_SIDE:
                raise InvalidKitField(name, f"{owner}: {name} must be a whole number of pixels, got {side!r}")
        _text(owner, "source", self.source, SOURCE_MAX)
        _text(owner, "licence", self.licence, LICENCE_MAX, allowed="\n\r\t")
        if not isinstance(self.consent, bool):
            raise InvalidKitField("consent", f"{owner}: consent must be true or false, got {self.consent!r}")
        if self.mask_sha256 is not None:
            _sha(owner, "mask_sha256", self.mask_sha256)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: object) -> AssetRecord:
        values = _strict_keys("asset", data, cls)
        return cls(**values)


@dataclass(frozen=True)
class KitSnapshot:
    """One kit version: identity, background, style guide and assets. Validated on construction."""

    name: str
    slug: str
    trigger_token: str
    class_noun: str
    description: str
    background: str
    style_guide: dict[str, Any] = field(hash=False)
    assets: tuple[AssetRecord, ...]

    def __post_init__(self) -> None:
        identity = make_identity(self.name, self.trigger_token, self.class_noun, self.description)
        if identity.name != self.name:
            raise InvalidKitField("name", "kit name has leading or trailing spaces; remove them")
        if not isinstance(self.slug, str) or len(self.slug) > SLUG_MAX or not _SLUG.fullmatch(self.slug):
            raise InvalidKitField(
                "slug",
                f"slug must be lowercase a-z/0-9 words joined by '-' (max {SLUG_MAX}), got {self.slug!r:.80}",
            )
        if not isinstance(self.background, str) or not _BACKGROUND.fullmatch(self.background):
            raise InvalidKitField(
                "background", f"background must be a colour like '#RRGGBB', got {self.background!r:.40}"
            )
        object.__setattr__(self, "style_guide", _json_copy(self.style_guide))
        if not isinstance(self.assets, (tuple, list)):
            raise KitError(f"assets must be a tuple of AssetRecord, got {type(self.assets).__name__}")
        assets = tuple(self.assets)
        for asset in assets:
            if not isinstance(asset, AssetRecord):
                raise KitError(f"assets must hold AssetRecord objects, got {type(asset).__name__}")
        object.__setattr__(self, "assets", assets)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``KitSnapshot.from_dict(s.to_dict()) == s``."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["style_guide"] = _json_copy(self.style_guide)
        data["assets"] = [asset.to_dict() for asset in self.assets]
        return data

    @classmethod
    def from_dict(cls, data: object) -> KitSnapshot:
        """Build a snapshot from :meth:`to_dict` output; unknown or missing keys are refused."""
        values = _strict_keys("kit", data, cls)
        raw_assets = values["assets"]
        if not isinstance(raw_assets, list):
            raise KitError(f"kit: assets must be a list, got {type(raw_assets).__name__}")
        values["assets"] = tuple(AssetRecord.from_dict(item) for item in raw_assets)
        return cls(**values)

    def blob_shas(self) -> list[str]:
        """The SHA-256 of every image the kit uses (assets and masks), sorted, without repeats."""
        masks = {asset.mask_sha256 for asset in self.assets if asset.mask_sha256 is not None}
        return sorted({asset.sha256 for asset in self.assets} | masks)

    def canonical_json(self) -> bytes:
        """The canonical JSON of :meth:`to_dict` (sorted keys, no spaces, UTF-8)."""
        return canonical_json(self.to_dict())

    def manifest_sha256(self) -> str:
        """SHA-256 of :meth:`canonical_json`: stable across runs, installs and key orders."""
        return hashlib.sha256(self.canonical_json()).hexdigest()


def canonical_json(value: object) -> bytes:
    """``json.dumps`` with sorted keys, ``(",", ":")`` separators and ``ensure_ascii=False``, as UTF-8."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _json_copy(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidKitField("style_guide", f"style_guide must be a JSON object, got {type(value).__name__}")
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidKitField(
            "style_guide", f"style_guide is not plain JSON ({exc}); use only text, numbers, lists and objects"
        ) from exc
    if len(text) > STYLE_GUIDE_MAX_CHARS:
        raise InvalidKitField(
            "style_guide", f"style_guide is {len(text)} characters of JSON; keep it under 1 MB"
        )
    copied: dict[str, Any] = json.loads(text)
    return copied


def _strict_keys(owner: str, data: object, cls: type) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise KitError(f"{owner} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise KitError(
            f"{owner} has unknown keys {unknown[:5]}; it was written by another program or version"
        )
    missing = sorted(required - set(data))
    if missing:
        raise KitError(f"{owner} is missing keys {missing}; the description is incomplete")
    return dict(data)


# ------------------------------------------------------------------------------ the archive manifest


def blob_name(sha: str) -> str:
    """The archive member (and manifest ``files`` key) of the image with this SHA-256."""
    return f"blobs/{sha}.png"


def kit_manifest(snapshot: KitSnapshot) -> bytes:
    """A kit archive's ``manifest.json``: format, version, the kit, and the blob each image is in."""
    files = {blob_name(sha): sha for sha in snapshot.blob_shas()}
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "kit": snapshot.to_dict(),
        "files": files,
    }
    return canonical_json(manifest)


def parse_kit_manifest(data: bytes) -> tuple[KitSnapshot, dict[str, str]]:
    """Strictly parse a ``manifest.json``: (the kit, ``{"blobs/<sha>.png": sha}``); :class:`KitError` if bad."""
    manifest = _strict_json(data)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise KitError(
            f"manifest.json does not describe a Brand Studio kit (format must be {MANIFEST_FORMAT!r})"
        )
    version = manifest.get("version")
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise KitError(
            f"kit archive format version {version!r:.20} is not supported (this install reads version "
            f"{MANIFEST_VERSION}); export it again from a matching Brand Studio version"
        )
    if set(manifest) != {"format", "version", "kit", "files"}:
        raise KitError(
            f"manifest.json must have exactly the keys format, version, kit and files; got {sorted(manifest)[:8]}"
        )
    files = manifest["files"]
    if not isinstance(files, dict):
        raise KitError("manifest.json: files must be an object of 'blobs/<sha256>.png': '<sha256>'")
    for name, sha in files.items():
        match = BLOB_NAME.fullmatch(name)
        if name.lower().endswith(MODEL_SUFFIXES):
            rule = "is a model file; kit archives carry only PNG images (import models as .safetensors)"
        elif match is None:
            rule = "is not a blobs/<sha256>.png name"
        elif sha != match.group(1):
            rule = f"is listed with hash {sha!r:.80}, which does not match its name"
        else:
            continue
        raise KitError(f"manifest.json: file {name!r:.120} {rule}; the archive was altered")
    try:
        snapshot = KitSnapshot.from_dict(manifest["kit"])
    except KitError as exc:
        raise KitError(f"manifest.json: the kit description is invalid: {exc}") from exc
    return snapshot, files


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise KitError(f"manifest.json repeats keys {sorted({k for k in keys if keys.count(k) > 1})[:5]}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise KitError(f"manifest.json contains {name}, which is not valid JSON")


def _strict_json(data: bytes) -> Any:
    """JSON with no repeated keys and no NaN/Infinity (parsers disagree on both)."""
    try:
        return json.loads(
            data.decode("utf-8"), object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except KitError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise KitError(f"manifest.json is not valid UTF-8 JSON ({exc!s:.200}); export the kit again") from exc
