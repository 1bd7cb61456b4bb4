"""Repositories for brand kits: kits, their assets (photos, logos, rights, captions) and versions."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from storage.errors import RowNotFound
from storage.models import BrandKit, KitAsset, KitVersion, KitVersionBlob
from storage.repos import AssetKind, _insert_or_get

KIT_EDITABLE = frozenset({"name", "description", "background_color", "style_guide", "check_thresholds"})


class KitRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, slug: str, name: str, trigger_token: str, class_noun: str, description: str = "",
        *, background_color: str = "#FFFFFF", style_guide: Mapping[str, Any] | None = None,
    ) -> BrandKit:  # fmt: skip
        kit = BrandKit(
            slug=slug, name=name, trigger_token=trigger_token, class_noun=class_noun, description=description,
            background_color=background_color, style_guide=dict(style_guide or {}),
        )  # fmt: skip
        self.session.add(kit)
        self.session.flush()
        return kit

    def get(self, id: int) -> BrandKit | None:
        return self.session.get(BrandKit, id, options=[selectinload(BrandKit.assets)])

    def require(self, id: int) -> BrandKit:
        kit = self.get(id)
        if kit is None:
            raise RowNotFound(f"brand kit {id} does not exist")
        return kit

    def get_by_slug(self, slug: str) -> BrandKit | None:
        query = select(BrandKit).where(BrandKit.slug == slug).options(selectinload(BrandKit.assets))
        return self.session.scalars(query).one_or_none()

    def get_by_trigger(self, trigger_token: str) -> BrandKit | None:
        return self.session.scalars(select(BrandKit).where(BrandKit.trigger_token == trigger_token)).one_or_none()

    def list(self) -> builtins.list[BrandKit]:
        """All kits by name, with their assets loaded (photo counts are shown everywhere)."""
        query = select(BrandKit).order_by(BrandKit.name, BrandKit.id).options(selectinload(BrandKit.assets))
        return builtins.list(self.session.scalars(query).all())

    def update(self, id: int, **fields: Any) -> BrandKit:
        """Change editable fields (name, description, background_color, style_guide, check_thresholds)."""
        unknown = set(fields) - KIT_EDITABLE
        if unknown:
            raise ValueError(f"cannot edit {sorted(unknown)}; editable: {sorted(KIT_EDITABLE)}")
        kit = self.require(id)
        for key, value in fields.items():
            setattr(kit, key, dict(value) if key in ("style_guide", "check_thresholds") else value)
        self.session.flush()
        return kit


class AssetRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self, kit_id: int, blob_sha256: str, kind: AssetKind, original_name: str, width: int, height: int,
        caption: str = "", *, mask_sha256: str | None = None, phash: str | None = None,
        warnings: Iterable[str] = (), source: str = "", licence: str = "", consent: bool = False,
    ) -> KitAsset:  # fmt: skip
        """Add a photo/logo to a kit; the same (kit, blob, kind) again returns the existing row."""
        asset, _ = _insert_or_get(
            self.session,
            KitAsset(
                kit_id=kit_id, blob_sha256=blob_sha256, kind=kind, original_name=original_name, width=width,
                height=height, caption=caption, mask_sha256=mask_sha256, phash=phash, warnings=list(warnings),
                source=source, licence=licence, consent=consent,
            ),  # fmt: skip
            lambda: self._find(kit_id, blob_sha256, kind),
        )
        return asset

    def _find(self, kit_id: int, blob_sha256: str, kind: str) -> KitAsset | None:
        query = select(KitAsset).where(
            KitAsset.kit_id == kit_id, KitAsset.blob_sha256 == blob_sha256, KitAsset.kind == kind
        )
        return self.session.scalars(query).one_or_none()

    def get(self, asset_id: int) -> KitAsset | None:
        return self.session.get(KitAsset, asset_id)

    def require(self, asset_id: int, kit_id: int | None = None) -> KitAsset:
        asset = self.get(asset_id)
        if asset is None or (kit_id is not None and asset.kit_id != kit_id):
            raise RowNotFound(f"photo {asset_id} does not exist in this kit")
        return asset

    def list_for_kit(self, kit_id: int, kind: AssetKind | None = None) -> builtins.list[KitAsset]:
        query = select(KitAsset).where(KitAsset.kit_id == kit_id)
        if kind is not None:
            query = query.where(KitAsset.kind == kind)
        return builtins.list(self.session.scalars(query.order_by(KitAsset.id)).all())

    def set_captions(self, kit_id: int, captions: Mapping[int, str]) -> builtins.list[KitAsset]:
        """Set several captions of one kit at once (all in the caller's transaction)."""
        rows = [self.require(asset_id, kit_id) for asset_id in captions]
        for row in rows:
            row.caption = captions[row.id]
        self.session.flush()
        return rows

    def set_rights(self, kit_id: int, asset_id: int, *, source: str, licence: str, consent: bool) -> KitAsset:
        row = self.require(asset_id, kit_id)
        row.source, row.licence, row.consent = source, licence, consent
        self.session.flush()
        return row

    def delete(self, kit_id: int, asset_id: int) -> None:
        """Remove a photo from the kit (its blob stays while a version or another row uses it)."""
        self.session.delete(self.require(asset_id, kit_id))
        self.session.flush()


class KitVersionRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create_or_get(
        self, kit_id: int, manifest: Mapping[str, Any], manifest_sha256: str, blob_shas: Iterable[str]
    ) -> tuple[KitVersion, bool]:
        """The version with this manifest, or a new one numbered after the kit's last (immutable).

        On PostgreSQL the kit row is locked first, so two concurrent snapshots of one kit take turns
        (the second finds the first's version) instead of both numbering "last + 1". SQLite's write
        transactions are serialised already.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                select(BrandKit.id).where(BrandKit.id == kit_id).with_for_update(key_share=True)
            )
        existing = self.session.scalars(
            select(KitVersion).where(KitVersion.kit_id == kit_id, KitVersion.manifest_sha256 == manifest_sha256)
        ).first()
        if existing is not None:
            return existing, False
        last = self.session.scalar(select(func.max(KitVersion.number)).where(KitVersion.kit_id == kit_id))
        version = KitVersion(kit_id=kit_id, number=(last or 0) + 1, manifest=dict(manifest),
                             manifest_sha256=manifest_sha256)  # fmt: skip
        self.session.add(version)
        self.session.flush()
        for sha in sorted(set(blob_shas)):
            self.session.add(KitVersionBlob(version_id=version.id, blob_sha256=sha))
        self.session.flush()
        return version, True

    def get(self, version_id: int) -> KitVersion | None:
        return self.session.get(KitVersion, version_id)

    def list_for_kit(self, kit_id: int) -> builtins.list[KitVersion]:
        query = select(KitVersion).where(KitVersion.kit_id == kit_id).order_by(KitVersion.number.desc())
        return builtins.list(self.session.scalars(query).all())
