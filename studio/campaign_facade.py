"""The campaign half of the Studio facade: campaigns, creatives, A/B variants, review, export, results.

Mixed into :class:`studio.api.Studio`; every method translates storage/kit errors into StudioErrors and
runs its writes in one transaction per user action. No torch here (the variant module loads it lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from studio.boundary import translate_errors
from studio.campaign_schemas import (
    CampaignCreateRequest,
    CampaignView,
    CheckThresholds,
    CreativeCreateRequest,
    CreativeView,
    ExportRequest,
    ExportView,
    RegionInstructionRequest,
    ReviewRequest,
    ReviewView,
    VariantGroupRequest,
    VariantView,
    WinnerView,
)

if TYPE_CHECKING:
    from studio.api import Studio

CellProgressFn = Callable[[int, int], None]  #: (cells done, cells in all)


class CampaignFacade:
    def _self(self) -> Studio:
        return self  # type: ignore[return-value]

    # ----- campaigns and creatives ----------------------------------------------------------------
    def create_campaign(self, req: CampaignCreateRequest) -> CampaignView:
        from studio import campaigns

        with translate_errors():
            return campaigns.create_campaign(self._self(), req)

    def list_campaigns(self, kit_id: int | None = None) -> list[CampaignView]:
        from studio import campaigns

        with translate_errors():
            return campaigns.list_campaigns(self._self(), kit_id)

    def get_campaign(self, campaign_id: int) -> CampaignView:
        from studio import campaigns

        with translate_errors():
            return campaigns.get_campaign(self._self(), campaign_id)

    def add_creative(self, req: CreativeCreateRequest) -> CreativeView:
        """A master image for the campaign (one of our generations) with its product mask and overlay;
        its control cell is added with it."""
        from studio import campaigns

        with translate_errors():
            return campaigns.add_creative(self._self(), req)

    def list_creatives(self, campaign_id: int) -> list[CreativeView]:
        from studio import campaigns

        with translate_errors():
            return campaigns.list_creatives(self._self(), campaign_id)

    def get_check_thresholds(self, kit_id: int) -> CheckThresholds:
        """The kit's brand-check thresholds (palette ΔE00, text contrast, product SSIM)."""
        from studio import campaigns

        with translate_errors():
            return campaigns.get_check_thresholds(self._self(), kit_id)

    def set_check_thresholds(self, kit_id: int, thresholds: CheckThresholds) -> CheckThresholds:
        from studio import campaigns

        with translate_errors():
            return campaigns.set_check_thresholds(self._self(), kit_id, thresholds)

    # ----- variants --------------------------------------------------------------------------------
    def make_variants(self, req: VariantGroupRequest, progress: CellProgressFn | None = None) -> list[VariantView]:
        """One cell per value of the factor, everything else locked to the master; each cell's
        invariance is verified (pixels outside the edit, recipe fields) and its brand checks computed."""
        from studio import variants

        with translate_errors():
            return variants.make_variants(self._self(), req, progress)

    def list_variants(self, campaign_id: int, status: str | None = None) -> list[VariantView]:
        from studio import campaigns

        with translate_errors():
            return campaigns.list_variants(self._self(), campaign_id, status)

    def get_variant(self, variant_id: int) -> VariantView:
        from studio import campaigns

        with translate_errors():
            return campaigns.get_variant(self._self(), variant_id)

    def variant_preview(self, variant_id: int, format_key: str | None = None) -> bytes:
        """The cell as it would ship: its image (fitted to ``format_key`` if given) with the brand overlay, PNG."""
        from studio import variants

        with translate_errors():
            return variants.preview_png(self._self(), variant_id, format_key)

    # ----- review ----------------------------------------------------------------------------------
    def review_variant(self, req: ReviewRequest) -> VariantView:
        from studio import campaign_review

        with translate_errors():
            return campaign_review.review(self._self(), req)

    def mark_region(self, req: RegionInstructionRequest) -> VariantView:
        """A reviewer's region + instruction becomes a new inpaint variant of that cell (in draft)."""
        from studio import campaign_review

        with translate_errors():
            return campaign_review.mark_region(self._self(), req)

    def variant_reviews(self, variant_id: int) -> list[ReviewView]:
        from studio import campaign_review

        with translate_errors():
            return campaign_review.history(self._self(), variant_id)

    # ----- export and results ----------------------------------------------------------------------
    def export_campaign(self, req: ExportRequest) -> ExportView:
        """A zip per campaign: every (approved) cell in every chosen channel size with its metadata, and a
        CSV + JSON manifest; the same snapshot gives the same bytes."""
        from studio import campaign_export

        with translate_errors():
            return campaign_export.export_campaign(self._self(), req)

    def export_file(self, export_id: int) -> tuple[str, bytes]:
        from studio import campaign_export

        with translate_errors():
            return campaign_export.export_file(self._self(), export_id)

    def import_results(self, campaign_id: int, data: bytes) -> list[VariantView]:
        """Results CSV (cell_id, impressions, clicks, conversions) onto the cells; all or nothing."""
        from studio import campaign_export

        with translate_errors():
            return campaign_export.import_results(self._self(), campaign_id, data)

    def campaign_winner(self, campaign_id: int) -> WinnerView:
        from studio import campaign_export

        with translate_errors():
            return campaign_export.winner(self._self(), campaign_id)

    def more_like_winner(self, campaign_id: int, count: int = 4) -> list[VariantView]:
        """New draft cells from the winner's lineage: its recipe and seed with variation seeds."""
        from studio import variants

        with translate_errors():
            return variants.more_like_winner(self._self(), campaign_id, count)
