"""Review: draft -> in review -> approved / rejected, with reviewer, time and comment; failed checks
need a recorded override; a marked region with an instruction becomes a new inpaint cell."""

from __future__ import annotations

import streamlit as st

from studio.campaign_schemas import RegionInstructionRequest, ReviewRequest, VariantView
from studio.editing.review import TRANSITIONS
from studio.ui.campaign_widgets import campaign_picker, cell_card
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, plain

LABELS = {"in_review": "Send to review", "approved": "Approve", "rejected": "Reject", "draft": "Back to draft"}
studio = get_studio()
st.title("Review")
campaign = campaign_picker(studio)
if campaign is None:
    st.stop()
reviewer = st.text_input("Reviewer", key="rv_reviewer", placeholder="your name")
status = st.radio("Show", ["all", "draft", "in_review", "approved", "rejected"], horizontal=True, key="rv_status")
cells = attempt(lambda: studio.list_variants(campaign.id, None if status == "all" else status)) or []
if not cells:
    st.info("No cells here yet: make some on the A/B variants page.")
def review_cell(cell: VariantView) -> None:
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            cell_card(studio, cell)
        with right:
            comment = st.text_input("Comment", key=f"rv_comment_{cell.id}")
            override = None
            if cell.checks_status == "fail":
                override = st.text_input("Override reason (needed to approve a cell whose checks failed)",
                                         key=f"rv_override_{cell.id}")  # fmt: skip
            buttons = st.columns(4)
            for col, target in zip(buttons, sorted(TRANSITIONS.get(cell.status, ())), strict=False):
                if col.button(LABELS[target], key=f"rv_{target}_{cell.id}"):
                    done = attempt(lambda t=target: studio.review_variant(ReviewRequest.of(
                        variant_id=cell.id, to_status=t, reviewer=reviewer or "", comment=comment,
                        override_reason=override or None)))  # fmt: skip
                    if done is not None:
                        st.rerun()
            with st.expander("Mark a region to change"):
                r = st.columns(4)
                box = [int(col.number_input(label, min_value=0, value=0, key=f"rv_{label}_{cell.id}"))
                       for col, label in zip(r, ("x", "y", "width", "height"), strict=True)]  # fmt: skip
                instruction = st.text_input("Instruction (what to paint there)", key=f"rv_instr_{cell.id}")
                if st.button("Make an inpaint cell", key=f"rv_region_{cell.id}"):
                    made = attempt(lambda: studio.mark_region(RegionInstructionRequest.of(
                        variant_id=cell.id, reviewer=reviewer or "", x=box[0], y=box[1], width=box[2], height=box[3],
                        instruction=instruction)))  # fmt: skip
                    if made is not None:
                        st.success(f"New cell {made.cell_id} (draft) from the instruction.")
            history = attempt(lambda: studio.variant_reviews(cell.id)) or []
            for h in history:
                st.caption(f"{h.created_at:%Y-%m-%d %H:%M} · {plain(h.reviewer)}: {h.from_status} -> {h.to_status}")
                if h.comment:
                    st.text(h.comment)
            if not history:
                st.caption(plain("No review history yet."))


for cell in cells:
    review_cell(cell)
