"""Campaigns, their creatives (master images), A/B variants, review history and export packs. (0006)

A campaign belongs to a brand kit; a creative is one generated image (the master) with an optional
product mask and a brand overlay; a variant is one test cell that differs from the master in one
declared factor. Review moves a variant draft -> in_review -> approved / rejected; every move is an
append-only ``variant_reviews`` row written in the same transaction as the status change, and the
change is a compare-and-set on the status the caller saw (a reviewer who lost a race gets
:class:`ConcurrentUpdate`). The rules of which moves are allowed live in ``studio.editing.review``;
this module only records them. Blobs are named by sha256 and kept by blob GC
(``storage.repos._referenced``).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.blobs import validate_sha256
from storage.errors import IntegrityViolation, RowNotFound
from storage.models import Base, UTCDateTime, utcnow

REVIEW_STATUSES: tuple[str, ...] = ("draft", "in_review", "approved", "rejected")
CHECK_STATUSES: tuple[str, ...] = ("pass", "warn", "fail", "pending")
METRICS: tuple[str, ...] = ("ctr", "cvr")
RESULT_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "conversions")
#: Automatic cell ids: "C{creative_id}-{n}", n counting up within the campaign.
AUTO_CELL_ID = re.compile(r"^C\d+-(\d+)$")
_CELL_ID_ATTEMPTS = 8
_BIGINT_MAX = 2**63 - 1
_Row = TypeVar("_Row")


def _one_of(column: str, choices: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{choice}'" for choice in choices) + ")"


def _check_choice(value: str, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; use one of {list(choices)}")


def _require(session: Session, model: type[_Row], id: int, what: str) -> _Row:
    row = session.get(model, id)
    if row is None:
        raise RowNotFound(f"{what} {id} does not exist")
    return row


class ConcurrentUpdate(IntegrityViolation):
    """Someone else changed the row between the caller's read and its write (a lost compare-and-set).

    A subclass of IntegrityViolation, so the facade's existing mapping (Conflict) applies.
    """


# ----- models ------------------------------------------------------------------------------------
class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: RESTRICT: a kit with campaigns cannot be deleted silently.
    kit_id: Mapped[int] = mapped_column(ForeignKey("brand_kits.id", ondelete="RESTRICT"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(80), nullable=False)
    objective: Mapped[str] = mapped_column(Text, default="", nullable=False)
    #: what decides the winner: click-through ("ctr") or conversion rate ("cvr")
    metric: Mapped[str] = mapped_column(String(8), default="ctr", nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        UniqueConstraint("kit_id", "slug", name="uq_campaigns_kit_id_slug"),
        CheckConstraint(_one_of("metric", METRICS), name="ck_campaigns_metric"),
    )


class Creative(Base):
    """A master image: one image of one generation, its product mask (white = product) and overlay."""

    __tablename__ = "creatives"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="RESTRICT"), nullable=False)
    image_index: Mapped[int] = mapped_column(Integer, nullable=False)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    product_mask_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    #: headline / cta / legal / logo choice / position
    overlay: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (CheckConstraint("image_index >= 0", name="ck_creatives_image_index"),)


class Variant(Base):
    """One test cell: the master changed in one factor, its review state, checks and results."""

    __tablename__ = "variants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    creative_id: Mapped[int] = mapped_column(
        ForeignKey("creatives.id", ondelete="CASCADE"), nullable=False, index=True
    )
    cell_id: Mapped[str] = mapped_column(String(40), nullable=False)
    factor: Mapped[str] = mapped_column(String(24), nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    hypothesis: Mapped[str] = mapped_column(Text, default="", nullable=False)
    #: cells made together (one factor, several values) share it
    group_key: Mapped[str] = mapped_column(String(40), default="", nullable=False)
    #: the variant a reviewer's region instruction was drawn on
    parent_variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("variants.id", ondelete="SET NULL"), nullable=True, index=True
    )
    #: None for copy/format variants that reuse the master's pixels
    generation_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="RESTRICT"), nullable=True
    )
    #: the variant's image before the overlay is drawn
    image_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    overlay: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    format_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recipe_hash: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    status: Mapped[str] = mapped_column(String(12), default="draft", nullable=False)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, nullable=False)
    checks_status: Mapped[str] = mapped_column(String(8), default="pending", nullable=False)
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    override_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    #: what was verified: outside-mask pixels identical, recipe fields equal except the factor, ...
    invariance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    impressions: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    clicks: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    conversions: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    results_imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        UniqueConstraint("campaign_id", "cell_id", name="uq_variants_campaign_id_cell_id"),
        CheckConstraint(_one_of("status", REVIEW_STATUSES), name="ck_variants_status"),
        CheckConstraint(_one_of("checks_status", CHECK_STATUSES), name="ck_variants_checks_status"),
        CheckConstraint(
            " AND ".join(f"({c} IS NULL OR {c} >= 0)" for c in RESULT_COLUMNS), name="ck_variants_results"
        ),
        Index("ix_variants_campaign_id_status", "campaign_id", "status"),
    )


class VariantReview(Base):
    """One review step (append-only): who moved the variant from which status to which, and why."""

    __tablename__ = "variant_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), nullable=False)
    from_status: Mapped[str] = mapped_column(String(12), nullable=False)
    to_status: Mapped[str] = mapped_column(String(12), nullable=False)
    reviewer: Mapped[str] = mapped_column(String(120), nullable=False)
    comment: Mapped[str] = mapped_column(Text, default="", nullable=False)
    #: a marked region {x, y, w, h, instruction}: it becomes a new inpaint variant
    region: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: why a variant whose checks failed was approved anyway (kept here too, as the variant's can change)
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (
        CheckConstraint(_one_of("from_status", REVIEW_STATUSES), name="ck_variant_reviews_from_status"),
        CheckConstraint(_one_of("to_status", REVIEW_STATUSES), name="ck_variant_reviews_to_status"),
        Index("ix_variant_reviews_variant_id_created_at", "variant_id", "created_at"),
    )


class CampaignExport(Base):
    """An export pack (zip blob) and the snapshot it was built from."""

    __tablename__ = "campaign_exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    zip_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), nullable=False)
    #: hash of everything that went in (variants, images, overlays, channels)
    snapshot_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    channels: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    variant_ids: Mapped[list[int]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    __table_args__ = (Index("ix_campaign_exports_campaign_id_snapshot_hash", "campaign_id", "snapshot_hash"),)


# ----- repositories ------------------------------------------------------------------------------
class CampaignRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, kit_id: int, name: str, slug: str, objective: str = "", metric: str = "ctr") -> Campaign:
        """A new campaign; the same slug twice in one kit is an IntegrityViolation (at commit)."""
        _check_choice(metric, METRICS, "campaign metric")
        campaign = Campaign(kit_id=kit_id, name=name, slug=slug, objective=objective, metric=metric)
        self.session.add(campaign)
        self.session.flush()
        return campaign

    def get(self, id: int) -> Campaign | None:
        return self.session.get(Campaign, id)

    def require(self, id: int) -> Campaign:
        return _require(self.session, Campaign, id, "campaign")

    def list(self, kit_id: int | None = None) -> builtins.list[Campaign]:
        """Campaigns newest first, optionally only one kit's."""
        query = select(Campaign)
        if kit_id is not None:
            query = query.where(Campaign.kit_id == kit_id)
        return builtins.list(self.session.scalars(query.order_by(Campaign.created_at.desc(), Campaign.id.desc())))

    def by_slug(self, kit_id: int, slug: str) -> Campaign | None:
        return self.session.scalars(
            select(Campaign).where(Campaign.kit_id == kit_id, Campaign.slug == slug)
        ).one_or_none()


class CreativeRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, campaign_id: int, name: str, generation_id: int, image_index: int, image_sha256: str,
        product_mask_sha256: str | None = None, overlay: Mapping[str, Any] | None = None,
    ) -> Creative:  # fmt: skip
        """A master image of a campaign; both blobs must be recorded (else IntegrityViolation)."""
        validate_sha256(image_sha256)
        if product_mask_sha256 is not None:
            validate_sha256(product_mask_sha256)
        creative = Creative(
            campaign_id=campaign_id, name=name, generation_id=generation_id, image_index=image_index,
            image_sha256=image_sha256, product_mask_sha256=product_mask_sha256, overlay=dict(overlay or {}),
        )  # fmt: skip
        self.session.add(creative)
        self.session.flush()
        return creative

    def get(self, id: int) -> Creative | None:
        return self.session.get(Creative, id)

    def require(self, id: int) -> Creative:
        return _require(self.session, Creative, id, "creative")

    def list(self, campaign_id: int) -> builtins.list[Creative]:
        query = select(Creative).where(Creative.campaign_id == campaign_id).order_by(Creative.id)
        return builtins.list(self.session.scalars(query))

    def delete(self, id: int) -> None:
        """Remove a creative and its cells (those with no review history yet: a just-made creative)."""
        self.session.delete(self.require(id))
        self.session.flush()

    def set_product_mask(self, id: int, sha256: str | None) -> Creative:
        """Set (or, with None, clear) the creative's product mask blob."""
        if sha256 is not None:
            validate_sha256(sha256)
        creative = self.require(id)
        creative.product_mask_sha256 = sha256
        self.session.flush()
        return creative

    def set_overlay(self, id: int, overlay: Mapping[str, Any]) -> Creative:
        creative = self.require(id)
        creative.overlay = dict(overlay)
        self.session.flush()
        return creative


#: Columns VariantRepo.create accepts (status, overrides and results change through their own methods).
VARIANT_FIELDS = frozenset(c.key for c in Variant.__table__.columns) - {
    "id", "status", "override_reason", "override_by", *RESULT_COLUMNS, "results_imported_at", "created_at",
}  # fmt: skip
_VARIANT_REQUIRED = frozenset({"creative_id", "factor", "value", "image_sha256"})


class VariantRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, **fields: Any) -> Variant:
        """A new draft cell. ``fields`` are Variant columns; ``campaign_id`` defaults to the creative's
        (and must equal it when given). Without ``cell_id`` the next free "C{creative_id}-{n}" is used,
        retried under the unique constraint when a concurrent insert took it first."""
        unknown, missing = set(fields) - VARIANT_FIELDS, _VARIANT_REQUIRED - set(fields)
        if unknown or missing:
            raise TypeError(f"variant fields: unknown {sorted(unknown)}, missing {sorted(missing)}; "
                            f"allowed: {sorted(VARIANT_FIELDS)}")  # fmt: skip
        creative = CreativeRepo(self.session).require(fields["creative_id"])
        campaign_id = fields.setdefault("campaign_id", creative.campaign_id)
        if campaign_id != creative.campaign_id:
            raise ValueError(f"creative {creative.id} belongs to campaign {creative.campaign_id}, not {campaign_id}")
        validate_sha256(fields["image_sha256"])
        _check_choice(fields.get("checks_status", "pending"), CHECK_STATUSES, "checks status")
        for key in ("overlay", "invariance"):
            fields[key] = dict(fields.get(key) or {})
        fields["checks"] = builtins.list(fields.get("checks") or [])
        if fields.get("cell_id") is not None:
            variant = Variant(**fields)
            self.session.add(variant)
            self.session.flush()
            return variant
        for _ in range(_CELL_ID_ATTEMPTS):
            cell_id = f"C{creative.id}-{self._next_cell_number(campaign_id)}"
            variant = Variant(**{**fields, "cell_id": cell_id})
            try:
                with self.session.begin_nested():
                    self.session.add(variant)
            except IntegrityError:
                if self.by_cell(campaign_id, cell_id) is None:
                    raise  # another rule was broken (missing blob, generation): let it surface
                continue  # a concurrent insert took this cell id: count again
            return variant
        raise ConcurrentUpdate(f"could not pick a free cell id in campaign {campaign_id} after "
                               f"{_CELL_ID_ATTEMPTS} tries (many cells created at once); retry")  # fmt: skip

    def _next_cell_number(self, campaign_id: int) -> int:
        cells = self.session.scalars(select(Variant.cell_id).where(Variant.campaign_id == campaign_id))
        numbers = [int(m.group(1)) for cell in cells if (m := AUTO_CELL_ID.match(cell))]
        return max(numbers, default=0) + 1

    def get(self, id: int) -> Variant | None:
        return self.session.get(Variant, id)

    def require(self, id: int) -> Variant:
        return _require(self.session, Variant, id, "variant")

    def by_cell(self, campaign_id: int, cell_id: str) -> Variant | None:
        query = select(Variant).where(Variant.campaign_id == campaign_id, Variant.cell_id == cell_id)
        return self.session.scalars(query).one_or_none()

    def list(
        self, campaign_id: int, status: str | None = None, creative_id: int | None = None
    ) -> builtins.list[Variant]:
        """A campaign's cells by creative, then in creation order; optionally one status / creative."""
        query = select(Variant).where(Variant.campaign_id == campaign_id)
        if status is not None:
            _check_choice(status, REVIEW_STATUSES, "review status")
            query = query.where(Variant.status == status)
        if creative_id is not None:
            query = query.where(Variant.creative_id == creative_id)
        return builtins.list(self.session.scalars(query.order_by(Variant.creative_id, Variant.id)))

    def set_checks(self, id: int, checks: Iterable[Mapping[str, Any]], checks_status: str) -> Variant:
        """Replace the brand-check results (JSON dicts) and their overall status."""
        _check_choice(checks_status, CHECK_STATUSES, "checks status")
        variant = self.require(id)
        variant.checks = [dict(check) for check in checks]
        variant.checks_status = checks_status
        self.session.flush()
        return variant

    def transition(
        self, id: int, to_status: str, reviewer: str, comment: str = "", region: Mapping[str, Any] | None = None,
        override_reason: str | None = None, *, expected_status: str,
    ) -> Variant:  # fmt: skip
        """Move a variant to ``to_status`` and append its review row, in the caller's transaction.

        A compare-and-set: ``expected_status`` is the status the caller read and checked the move
        against (studio.editing.review.check_transition); the row changes only if it still has that
        status. Otherwise ConcurrentUpdate (an IntegrityViolation) is raised and nothing is written. On
        PostgreSQL a racing UPDATE waits for the other transaction's row lock, then re-checks the status.
        Approving sets override_reason/override_by (both None without a reason); approving a variant
        whose checks failed without a reason is refused (ValueError).
        """
        _check_choice(to_status, REVIEW_STATUSES, "review status")
        _check_choice(expected_status, REVIEW_STATUSES, "expected review status")
        if not reviewer.strip():
            raise ValueError("the reviewer is empty; say who reviews")
        variant = self.require(id)
        override = (override_reason or "").strip() or None
        if to_status == "approved" and variant.checks_status == "fail" and override is None:
            raise ValueError(f"variant {id} failed its brand checks; approving it needs an override reason")
        values: dict[str, Any] = {"status": to_status}
        if to_status == "approved":
            values.update(override_reason=override, override_by=reviewer if override else None)
        moved = self.session.execute(
            update(Variant).where(Variant.id == id, Variant.status == expected_status).values(**values)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            self.session.refresh(variant)
            raise ConcurrentUpdate(
                f"variant {id} is {variant.status!r} now, not {expected_status!r}: someone else reviewed it meanwhile; "
                "reload it and review again"
            )
        self.session.add(VariantReview(
            variant_id=id, from_status=expected_status, to_status=to_status, reviewer=reviewer, comment=comment,
            region=dict(region) if region is not None else None, override_reason=override,
        ))  # fmt: skip
        self.session.flush()
        self.session.refresh(variant)
        return variant

    def add_review_note(
        self, id: int, reviewer: str, comment: str, region: Mapping[str, Any] | None = None
    ) -> VariantReview:
        """Append a review row that does not move the variant (from = to = its status): a comment or a
        marked region whose instruction became a new variant."""
        if not reviewer.strip():
            raise ValueError("the reviewer is empty; say who reviews")
        status = self.session.scalar(select(Variant.status).where(Variant.id == id))
        if status is None:
            raise RowNotFound(f"variant {id} does not exist")
        note = VariantReview(variant_id=id, from_status=status, to_status=status, reviewer=reviewer, comment=comment,
                             region=dict(region) if region is not None else None)  # fmt: skip
        self.session.add(note)
        self.session.flush()
        return note

    def reviews(self, variant_id: int) -> builtins.list[VariantReview]:
        """The variant's review history, oldest first."""
        query = select(VariantReview).where(VariantReview.variant_id == variant_id)
        return builtins.list(self.session.scalars(query.order_by(VariantReview.created_at, VariantReview.id)))

    def set_results(
        self, campaign_id: int, rows: Iterable[tuple[str, int, int, int]]
    ) -> builtins.list[Variant]:
        """Store ad-platform results (cell_id, impressions, clicks, conversions) on the campaign's cells.

        All or nothing: every row is checked first (known cell, no duplicates, integers >= 0) and the
        updates run in one SAVEPOINT. Cells not named keep their earlier results. Returns the updated
        variants in the rows' order.
        """
        rows = builtins.list(rows)
        cells = [row[0] for row in rows]
        duplicates = sorted({cell for cell in cells if cells.count(cell) > 1})
        if duplicates:
            raise ValueError(f"cells {duplicates} appear more than once; give each cell one row")
        for row in rows:
            if len(row) != 4:
                raise ValueError(f"result row {row!r} must be (cell_id, impressions, clicks, conversions)")
            cell_id, *numbers = row
            for name, number in zip(RESULT_COLUMNS, numbers, strict=True):
                if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= _BIGINT_MAX:
                    raise ValueError(f"cell {cell_id}: {name} must be a whole number >= 0, got {number!r}")
        found = {v.cell_id: v for v in self.session.scalars(
            select(Variant).where(Variant.campaign_id == campaign_id, Variant.cell_id.in_(cells)))}  # fmt: skip
        unknown = [cell for cell in cells if cell not in found]
        if unknown:
            raise RowNotFound(f"campaign {campaign_id} has no cells {unknown}; nothing was imported")
        now = utcnow()
        with self.session.begin_nested():
            for cell_id, impressions, clicks, conversions in rows:
                variant = found[cell_id]
                variant.impressions, variant.clicks, variant.conversions = impressions, clicks, conversions
                variant.results_imported_at = now
        return [found[cell] for cell in cells]


class ExportRepo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, campaign_id: int, zip_sha256: str, snapshot_hash: str, channels: Iterable[str],
        variant_ids: Iterable[int],
    ) -> CampaignExport:  # fmt: skip
        validate_sha256(zip_sha256)
        export = CampaignExport(campaign_id=campaign_id, zip_sha256=zip_sha256, snapshot_hash=snapshot_hash,
                                channels=builtins.list(channels), variant_ids=builtins.list(variant_ids))  # fmt: skip
        self.session.add(export)
        self.session.flush()
        return export

    def get(self, id: int) -> CampaignExport | None:
        return self.session.get(CampaignExport, id)

    def require(self, id: int) -> CampaignExport:
        return _require(self.session, CampaignExport, id, "export")

    def list(self, campaign_id: int) -> builtins.list[CampaignExport]:
        """A campaign's exports, newest first."""
        query = select(CampaignExport).where(CampaignExport.campaign_id == campaign_id)
        return builtins.list(self.session.scalars(
            query.order_by(CampaignExport.created_at.desc(), CampaignExport.id.desc())))  # fmt: skip

    def latest_for_snapshot(self, campaign_id: int, snapshot_hash: str) -> CampaignExport | None:
        """The newest export of exactly this snapshot (re-exporting it can reuse that zip)."""
        query = select(CampaignExport).where(
            CampaignExport.campaign_id == campaign_id, CampaignExport.snapshot_hash == snapshot_hash
        )
        return self.session.scalars(
            query.order_by(CampaignExport.created_at.desc(), CampaignExport.id.desc()).limit(1)
        ).first()
