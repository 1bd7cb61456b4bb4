"""History: every generation with its recipe, newest first, with exact re-render."""

from __future__ import annotations

import streamlit as st

from studio.ui.state import get_studio
from studio.ui.widgets import attempt, show_generation

PAGE_SIZE = 10
studio = get_studio()
st.title("History")
page = st.number_input("Page", min_value=1, value=1)
gens = attempt(lambda: studio.list_generations(limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE)) or []
if not gens:
    st.info("No generations yet: make one on the Generate page.")
for gen in gens:
    with st.container(border=True):
        st.text(gen.prompt)
        show_generation(studio, gen, key_prefix="hist")
        if st.button("Re-render", key=f"rerender_{gen.id}"):
            again = attempt(lambda g=gen: studio.rerender(g.id))
            if again is not None:
                same = all(a.pixel_sha256 == b.pixel_sha256 for a, b in zip(gen.images, again.images, strict=True))
                (st.success if same else st.error)(
                    f"Re-rendered as generation {again.id}: " + ("identical pixels." if same else "pixels differ!")
                )
