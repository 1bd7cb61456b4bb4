"""Export: approved cells in every chosen channel size as one zip with a manifest; results back from
the ad platform, the winner, and more cells like it."""

from __future__ import annotations

import streamlit as st

from studio.campaign_schemas import ExportRequest
from studio.formats import AD_FORMATS
from studio.ui.campaign_widgets import campaign_picker, cell_card
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, plain

studio = get_studio()
st.title("Export")
campaign = campaign_picker(studio)
if campaign is None:
    st.stop()

channels = st.multiselect("Channel sizes", list(AD_FORMATS), key="ex_channels", default=["meta_feed_square"],
                          format_func=lambda k: f"{AD_FORMATS[k].channel} · {AD_FORMATS[k].label} · "
                          f"{AD_FORMATS[k].width}x{AD_FORMATS[k].height}")  # fmt: skip
include_all = st.checkbox("Include cells not approved yet (for a preview pack)", key="ex_all")
if st.button("Build export pack", type="primary"):
    with st.spinner("Fitting, composing and encoding every cell..."):
        view = attempt(lambda: studio.export_campaign(ExportRequest.of(
            campaign_id=campaign.id, channels=tuple(channels), include="all" if include_all else "approved")))  # fmt: skip
    if view is not None:
        st.session_state["ex_export_id"] = view.id
        st.success(f"Export {view.id}: {view.file_count} files from {view.variant_count} cells, "
                   f"{view.size / 1024:.0f} KB (sha256 {view.zip_sha256[:12]}).")  # fmt: skip
export_id = st.session_state.get("ex_export_id")
if export_id is not None:
    file = attempt(lambda: studio.export_file(export_id))
    if file is not None:
        st.download_button("Download the zip", file[1], file_name=file[0], mime="application/zip", key="ex_download")

st.subheader("Results from the ad platform")
st.caption("A CSV with the columns cell_id, impressions, clicks, conversions (one row per cell).")
upload = st.file_uploader("Results CSV", type=["csv"], key="ex_results")
if upload is not None and st.button("Import results"):
    if attempt(lambda: studio.import_results(campaign.id, upload.getvalue())) is not None:
        st.success("Results imported.")
won = attempt(lambda: studio.campaign_winner(campaign.id))
if won is not None:
    if won.status == "no_data":
        st.info(plain(won.detail))
    else:
        (st.success if won.status == "winner" else st.warning)(plain(f"{won.status}: {won.cell_id} — {won.detail}"))
        st.dataframe(list(won.rows), hide_index=True)
        cell = next((c for c in attempt(lambda: studio.list_variants(campaign.id)) or [] if c.cell_id == won.cell_id), None)
        if cell is not None:
            cell_card(studio, cell)
        if st.button("Make 4 more like the winner"):
            made = attempt(lambda: studio.more_like_winner(campaign.id, 4))
            if made is not None:
                st.success("New draft cells: " + ", ".join(v.cell_id for v in made))
