"""A/B variants: a campaign, its masters (with product mask and brand overlay), and test cells that
differ from the master in exactly one factor, side by side with their brand checks."""

from __future__ import annotations

import streamlit as st

from studio.campaign_schemas import (
    CampaignCreateRequest,
    CheckThresholds,
    CreativeCreateRequest,
    OverlayRequest,
    VariantGroupRequest,
)
from studio.errors import InvalidInput
from studio.formats import AD_FORMATS
from studio.schemas import UploadedFile
from studio.ui.campaign_widgets import campaign_picker, cell_card
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, lines, model_banner

FACTORS = {
    "background": "Background (product protected by its mask)",
    "product_colour": "Product colour (only the product repainted)",
    "prop": "Prop (painted into a region)",
    "copy": "Copy (headline / CTA / legal of the overlay)",
    "format": "Crop / format (channel size)",
    "prompt_word": "A prompt word (same seed)",
    "lora_weight": "LoRA weight (same seed)",
}
studio = get_studio()
st.title("A/B variants")
model_banner(studio)

kits = attempt(studio.list_kits) or []
with st.expander("New campaign", expanded=not (attempt(studio.list_campaigns) or [])):
    if not kits:
        st.info("Create a brand kit first (Brand kits page).")
    else:
        kit = st.selectbox("Brand kit", kits, format_func=lambda k: k.name, key="ab_kit")
        name = st.text_input("Campaign name", key="ab_name", placeholder="Spring launch")
        objective = st.text_area("Objective", key="ab_objective", placeholder="Which background sells the bottle?")
        metric = st.radio("Winner by", ["ctr", "cvr"], horizontal=True, key="ab_metric",
                          format_func={"ctr": "click-through rate", "cvr": "conversion rate"}.__getitem__)  # fmt: skip
        if st.button("Create campaign"):
            made = attempt(lambda: studio.create_campaign(
                CampaignCreateRequest.of(kit_id=kit.id, name=name, objective=objective, metric=metric)))  # fmt: skip
            if made is not None:
                st.session_state["campaign_id"] = made.id
                st.rerun()

campaign = campaign_picker(studio)
if campaign is None:
    st.stop()

with st.expander("Brand-check thresholds of this kit"):
    limits = attempt(lambda: studio.get_check_thresholds(campaign.kit_id))
    if limits is not None:
        t1, t2, t3 = st.columns(3)
        values = {
            "palette_pass": t1.number_input("Palette ΔE00: pass at most", 0.0, 100.0, limits.palette_pass, key="th_pp"),
            "palette_warn": t1.number_input("Palette ΔE00: warn at most", 0.0, 100.0, limits.palette_warn, key="th_pw"),
            "contrast_pass": t2.number_input("Text contrast: pass at least", 1.0, 21.0, limits.contrast_pass, key="th_cp"),
            "contrast_warn": t2.number_input("Text contrast: warn at least", 1.0, 21.0, limits.contrast_warn, key="th_cw"),
            "fidelity_pass": t3.number_input("Product SSIM: pass at least", -1.0, 1.0, limits.fidelity_pass, key="th_fp"),
            "fidelity_warn": t3.number_input("Product SSIM: warn at least", -1.0, 1.0, limits.fidelity_warn, key="th_fw"),
        }  # fmt: skip
        st.caption("New cells are graded with these; cells already made keep their grades.")
        if st.button("Save thresholds"):

            def save() -> object:
                try:
                    wanted = CheckThresholds.model_validate(values)
                except ValueError as exc:  # pydantic's ValidationError: inverted bands
                    raise InvalidInput(str(exc).splitlines()[-1], field="thresholds") from None
                return studio.set_check_thresholds(campaign.kit_id, wanted)

            if attempt(save) is not None:
                st.success("Thresholds saved.")

creatives = attempt(lambda: studio.list_creatives(campaign.id)) or []
with st.expander("Add a master image", expanded=not creatives):
    gens = [g for g in attempt(lambda: studio.list_generations(limit=30, kit_id=campaign.kit_id)) or [] if g.mode != "grid"]
    if not gens:
        st.info("Generate an image with this campaign's kit first (Generate page).")
    else:
        gen = st.selectbox("Generation", gens, key="ab_gen",
                           format_func=lambda g: f"#{g.id} · {g.prompt[:60]} · {g.width}x{g.height}")  # fmt: skip
        index = st.number_input("Image of that generation", min_value=0, max_value=len(gen.images) - 1, key="ab_index")
        st.image(studio.read_blob(gen.images[int(index)].blob_sha256), width=256)
        mask_file = st.file_uploader("Product mask (white = product, same size)", type=["png"], key="ab_mask")
        c1, c2, c3 = st.columns(3)
        headline = c1.text_input("Headline", key="ab_headline")
        cta = c2.text_input("Call to action", key="ab_cta")
        legal = c3.text_input("Legal line", key="ab_legal")
        use_logo = st.checkbox("Draw the kit's logo", value=True, key="ab_logo")
        if st.button("Add master"):

            def add() -> object:
                mask = studio.upload_mask(UploadedFile(name=mask_file.name, data=mask_file.getvalue())) if mask_file else None
                return studio.add_creative(CreativeCreateRequest.of(
                    campaign_id=campaign.id, generation_id=gen.id, image_index=int(index), product_mask=mask,
                    overlay=OverlayRequest.of(headline=headline, cta=cta, legal=legal, use_logo=use_logo)))  # fmt: skip

            if attempt(add) is not None:
                st.rerun()

if creatives:
    st.subheader("New test cells")
    creative = st.selectbox("Master", creatives, key="ab_creative", format_func=lambda c: f"#{c.id} {c.name}")
    factor = st.selectbox("Factor under test", list(FACTORS), key="ab_factor", format_func=FACTORS.__getitem__)
    hint = ", ".join(list(AD_FORMATS)[:3]) + ", ..." if factor == "format" else "one per line"
    values = st.text_area(f"Values ({hint})", key="ab_values")
    hypothesis = st.text_input("Hypothesis", key="ab_hypothesis", placeholder="A beach sells summer better")
    extra: dict[str, object] = {}
    if factor == "copy":
        extra["copy_field"] = st.radio("Which text", ["headline", "cta", "legal"], horizontal=True, key="ab_copy_field")
    if factor == "prompt_word":
        extra["search"] = st.text_input("Word of the master's prompt to replace", key="ab_search")
    if factor == "prop":
        r = st.columns(4)
        extra["region"] = tuple(int(col.number_input(label, min_value=0, value=0, key=f"ab_region_{label}"))
                                for col, label in zip(r, ("x", "y", "width", "height"), strict=True))  # fmt: skip
    if st.button("Make cells", type="primary"):
        bar = st.progress(0.0, text="Making cells...")
        made = attempt(lambda: studio.make_variants(
            VariantGroupRequest.of(creative_id=creative.id, factor=factor, values=lines(values), hypothesis=hypothesis,
                                   **extra),
            lambda i, n: bar.progress(i / n, text=f"Cell {i}/{n}"),
        ))  # fmt: skip
        if made is not None:
            st.success(f"Made {len(made)} cell(s): " + ", ".join(v.cell_id for v in made))

cells = attempt(lambda: studio.list_variants(campaign.id)) or []
for creative in creatives:
    group = [c for c in cells if c.creative_id == creative.id]
    st.subheader(f"Master #{creative.id}: {len(group)} cells")
    cols = st.columns(4)
    for i, cell in enumerate(group):
        with cols[i % 4]:
            cell_card(studio, cell)
