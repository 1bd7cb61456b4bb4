"""Home: what the studio is, which model is loaded, and the three steps."""

from __future__ import annotations

import streamlit as st

from studio.ui.state import get_studio
from studio.ui.widgets import attempt, model_banner

studio = get_studio()
st.title("Brand Studio")
st.write("Turn a brand's product photos into a LoRA, then generate seed-locked, on-brand images.")
model_banner(studio)
info = attempt(studio.model_info)
if info is not None:
    st.text(f"Base model: {info.name} ({info.kind}, {info.family}, hash {info.short_hash})")
kits = attempt(studio.list_kits) or []
loras = attempt(studio.list_loras) or []
gens = attempt(lambda: studio.list_generations(limit=1)) or []
c1, c2, c3 = st.columns(3)
c1.metric("Brand kits", len(kits))
c2.metric("LoRAs", len(loras))
c3.metric("Latest generation", f"#{gens[0].id}" if gens else "none")
st.subheader("How it works")
st.markdown(
    "1. **Brand kits**: create a kit and upload a few product photos.\n"
    "2. **Train**: press one button to train a LoRA on the kit.\n"
    "3. **Generate**: write a prompt, pick the kit's LoRA and a seed; every image keeps its recipe "
    "and can be re-rendered exactly from **History**."
)
