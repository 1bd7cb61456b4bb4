"""Brand kits: create a kit, upload product photos, see them with their captions."""

from __future__ import annotations

import streamlit as st

from studio.schemas import KitCreateRequest, UploadedFile
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, plain

studio = get_studio()
st.title("Brand kits")

with st.form("create_kit", clear_on_submit=False):
    st.subheader("New brand kit")
    name = st.text_input("Kit name", placeholder="Acme Water Bottle")
    trigger = st.text_input("Trigger token", placeholder="acm_bottle",
                            help="A rare word (letters, digits, underscore) that will mean your product.")
    class_noun = st.text_input("Class noun", placeholder="bottle", help="What the product is.")
    description = st.text_area("Description", height=80)
    photos = st.file_uploader("Product photos (PNG, JPEG, WebP)", type=["png", "jpg", "jpeg", "webp"],
                              accept_multiple_files=True, key="new_kit_photos")
    if st.form_submit_button("Create kit", type="primary"):
        uploads = [UploadedFile(name=f.name, data=f.getvalue()) for f in photos or []]
        kit = attempt(lambda: studio.create_kit(
            KitCreateRequest.of(name=name, trigger_token=trigger, class_noun=class_noun, description=description),
            uploads,
        ))
        if kit is not None:
            st.session_state["kit_id"] = kit.id
            st.success(f"Created kit '{plain(kit.name)}' with {kit.photo_count} photos.")

kits = attempt(studio.list_kits) or []
if not kits:
    st.info("No brand kits yet: create one above.")
    st.stop()

st.divider()
ids = [k.id for k in kits]
current = st.session_state.get("kit_id")
kit = st.selectbox("Kit", kits, index=ids.index(current) if current in ids else 0, format_func=lambda k: k.name)
st.session_state["kit_id"] = kit.id
st.text(f"Trigger: {kit.trigger_token} · class: {kit.class_noun} · {kit.photo_count} photos")

more = st.file_uploader("Add photos", type=["png", "jpg", "jpeg", "webp"], accept_multiple_files=True,
                        key=f"add_photos_{kit.id}")
if more and st.button("Add these photos"):
    added = attempt(lambda: studio.add_photos(kit.id, [UploadedFile(name=f.name, data=f.getvalue()) for f in more]))
    if added is not None:
        st.success(f"Added {len(added)} photos.")
        for a in added:
            for w in a.warnings:
                st.warning(plain(f"{a.label}: {w}"))

assets = attempt(lambda: studio.list_assets(kit.id)) or []
cols = st.columns(4)
for i, asset in enumerate(assets):
    with cols[i % 4]:
        st.image(studio.read_blob(asset.blob_sha256), width="stretch")
        st.text(f"{asset.label}\n{asset.width}x{asset.height}\n{asset.caption}")
