"""Brand kits: create a kit, upload photos and logos, edit captions, rights and the style guide,
freeze versions, export training sets and kit archives."""

from __future__ import annotations

import streamlit as st

from studio.schemas import KitCreateRequest, UploadedFile
from studio.ui.kit_sections import captions_section, export_section, rights_section, style_section
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, kit_picker, plain

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp"]
studio = get_studio()
st.title("Brand kits")

with st.expander("New brand kit", expanded=not attempt(studio.list_kits)):
    with st.form("create_kit", clear_on_submit=False):
        name = st.text_input("Kit name", placeholder="Acme Water Bottle")
        trigger = st.text_input("Trigger token", placeholder="acm_bottle",
                                help="A rare word (letters, digits, underscore) that will mean your product.")
        class_noun = st.text_input("Class noun", placeholder="bottle", help="What the product is.")
        description = st.text_area("Description", height=80)
        background = st.color_picker("Background for transparent photos", "#FFFFFF")
        photos = st.file_uploader("Product photos (PNG, JPEG, WebP)", type=IMAGE_TYPES, accept_multiple_files=True,
                                  key="new_kit_photos")
        if st.form_submit_button("Create kit", type="primary"):
            uploads = [UploadedFile(name=f.name, data=f.getvalue()) for f in photos or []]
            kit = attempt(lambda: studio.create_kit(
                KitCreateRequest.of(name=name, trigger_token=trigger, class_noun=class_noun, description=description,
                                    background_color=background.upper()),
                uploads,
            ))
            if kit is not None:
                st.session_state["kit_id"] = kit.id
                st.success(f"Created kit '{plain(kit.name)}' with {kit.photo_count} photos.")

kits = attempt(studio.list_kits) or []
if not kits:
    st.info("No brand kits yet: create one above.")
    st.stop()

kit = kit_picker(kits)
st.text(f"Trigger: {kit.trigger_token} · class: {kit.class_noun} · {kit.photo_count} photos · "
        f"{kit.logo_count} logos · background {kit.background_color}")

photos_tab, captions_tab, style_tab, rights_tab, export_tab = st.tabs(
    ["Photos", "Captions", "Style guide", "Rights", "Versions & export"]
)
with photos_tab:
    more = st.file_uploader("Add photos", type=IMAGE_TYPES, accept_multiple_files=True, key=f"add_photos_{kit.id}")
    if more and st.button("Add these photos"):
        added = attempt(lambda: studio.add_photos(kit.id, [UploadedFile(name=f.name, data=f.getvalue()) for f in more]))
        if added is not None:
            st.success(f"Added {len(added)} photos.")
    logos = st.file_uploader("Add logos (PNG or WebP with transparency)", type=["png", "webp"],
                             accept_multiple_files=True, key=f"add_logos_{kit.id}")
    if logos and st.button("Add these logos"):
        added = attempt(lambda: studio.add_logos(kit.id, [UploadedFile(name=f.name, data=f.getvalue()) for f in logos]))
        if added is not None:
            st.success(f"Added {len(added)} logos.")
    assets = attempt(lambda: studio.list_assets(kit.id, None)) or []
    cols = st.columns(4)
    for i, asset in enumerate(assets):
        with cols[i % 4]:
            st.image(studio.read_blob(asset.blob_sha256), width="stretch")
            st.text(f"{asset.label}\n{asset.width}x{asset.height}\n{asset.caption if asset.kind == 'photo' else 'logo'}")
            for w in (*asset.warnings, *asset.caption_warnings):
                st.caption(plain(f"⚠ {w}"))
with captions_tab:
    captions_section(studio, kit)
with style_tab:
    style_section(studio, kit)
with rights_tab:
    rights_section(studio, kit)
with export_tab:
    export_section(studio, kit)
