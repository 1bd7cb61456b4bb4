"""UI pieces shared by the A/B, Review and Export pages: the campaign picker and a cell card."""

from __future__ import annotations

import streamlit as st

from studio.api import Studio
from studio.campaign_schemas import CampaignView, VariantView
from studio.ui.widgets import attempt, plain

STATUS_ICON = {"pass": ":material/check_circle:", "warn": ":material/warning:", "fail": ":material/cancel:"}


def campaign_picker(studio: Studio) -> CampaignView | None:
    """The campaign selector shared by the campaign pages (the choice follows the user)."""
    campaigns = attempt(studio.list_campaigns) or []
    if not campaigns:
        st.info("No campaigns yet: create one on the A/B variants page.")
        return None
    ids = [c.id for c in campaigns]
    current = st.session_state.get("campaign_id")
    chosen: CampaignView = st.selectbox("Campaign", campaigns, index=ids.index(current) if current in ids else 0,
                                        format_func=lambda c: f"{c.name} (#{c.id})", key="campaign_pick")  # fmt: skip
    st.session_state["campaign_id"] = chosen.id
    return chosen


def cell_card(studio: Studio, cell: VariantView, *, show_image: bool = True) -> None:
    """A cell as it ships (overlay drawn), what it tests, its state and its checks with numbers."""
    if show_image:
        data = attempt(lambda: studio.variant_preview(cell.id))
        if data is not None:
            st.image(data, width="stretch")
    st.markdown(f"**{plain(cell.cell_id)}** · {plain(cell.factor)} = `{cell.value[:60].replace('`', '')}`")
    if cell.hypothesis:
        st.caption(plain(cell.hypothesis))
    st.caption(f"status: {cell.status} · checks: {cell.checks_status}"
               + (f" · override: {plain(cell.override_reason)}" if cell.override_reason else ""))  # fmt: skip
    for check in cell.checks:
        st.markdown(f"{STATUS_ICON[check.status]} {plain(check.name)}: {plain(check.detail)}")
    if cell.impressions is not None:
        st.caption(f"impressions {cell.impressions} · clicks {cell.clicks} · conversions {cell.conversions}")
