"""Brand Studio's Streamlit entry: page config and navigation only (pages live in studio/ui/pages)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Brand Studio", page_icon="🎨", layout="wide")  # an emoji: no font fetched from the web

PAGES = [
    st.Page("studio/ui/pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("studio/ui/pages/kits.py", title="Brand kits", icon=":material/inventory_2:"),
    st.Page("studio/ui/pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("studio/ui/pages/generate.py", title="Generate", icon=":material/image:"),
    st.Page("studio/ui/pages/history.py", title="History", icon=":material/history:"),
    st.Page("studio/ui/pages/ab.py", title="A/B variants", icon=":material/science:"),
    st.Page("studio/ui/pages/review.py", title="Review", icon=":material/rate_review:"),
    st.Page("studio/ui/pages/export.py", title="Export", icon=":material/ios_share:"),
]
st.navigation(PAGES).run()
