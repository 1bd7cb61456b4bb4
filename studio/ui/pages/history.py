"""History: every generation with its recipe, newest first, filtered and paged, with exact re-render.

Pages follow keyset cursors (fast at 100k+ generations): the cursors of the pages seen so far are kept
in the session, so Previous goes back without counting rows; changing a filter starts at page 1.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import get_args

import streamlit as st

from studio.history_schemas import HistoryQuery
from studio.mode_fields import GenerationMode
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, plain, show_generation

PAGE_SIZES = (5, 10, 25, 50)
MODES = (*get_args(GenerationMode), "grid")  #: the generation modes, and X/Y grid sheets
studio = get_studio()
st.title("History")


def _day(value: date | None, days: int = 0) -> datetime | None:
    return None if value is None else datetime.combine(value + timedelta(days=days), time(), UTC)


def _go(step: int, cursor: str | None = None) -> None:
    cursors: list[str | None] = st.session_state["hist_cursors"]
    if step > 0:
        cursors.append(cursor)
    elif len(cursors) > 1:
        cursors.pop()


kits = attempt(studio.list_kits) or []
loras = attempt(lambda: studio.list_loras()) or []
c1, c2, c3, c4 = st.columns(4)
kit = c1.selectbox("Brand kit", [None, *kits], format_func=lambda k: "(all)" if k is None else k.name)
lora = c2.selectbox("LoRA", [None, *loras], format_func=lambda x: "(all)" if x is None else x.name)
mode = c3.selectbox("Mode", [None, *MODES], format_func=lambda m: "(all)" if m is None else m)
limit = c4.selectbox("Per page", PAGE_SIZES, index=1)
c5, c6, c7, c8 = st.columns(4)
text = c5.text_input("Prompt contains").strip()
model_ref = c6.text_input("Model", placeholder="e.g. builtin:tiny").strip()
since = c7.date_input("Made from (UTC)", value=None)
until = c8.date_input("Made until (UTC)", value=None)

filters = dict(kit_id=kit.id if kit else None, lora_id=lora.id if lora else None, mode=mode, text=text or None,
               model_ref=model_ref or None, since=_day(since), until=_day(until, days=1), limit=int(limit))  # fmt: skip
if st.session_state.get("hist_filters") != filters:  # new filters: back to the first page
    st.session_state["hist_filters"] = filters
    st.session_state["hist_cursors"] = [None]
cursors: list[str | None] = st.session_state["hist_cursors"]
query = attempt(lambda: HistoryQuery.of(**filters, cursor=cursors[-1]))
page = attempt(lambda: studio.history(query)) if query is not None else None
total = attempt(lambda: studio.count_history(query)) if query is not None else None
gens = page.items if page is not None else ()

if total is not None:
    searched = f" whose prompt contains “{plain(text)}”" if text else ""
    st.caption(f"Page {len(cursors)} · {total} generation{'s' if total != 1 else ''} match{searched}")
unfiltered = all(value is None for key, value in filters.items() if key != "limit")
if not gens:
    st.info("No generations yet: make one on the Generate page." if unfiltered else "No generations match these filters.")
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
b1, b2 = st.columns(2)
b1.button("Previous", disabled=len(cursors) == 1, on_click=_go, args=(-1,))
b2.button("Next", disabled=page is None or page.next_cursor is None, on_click=_go,
          args=(1, page.next_cursor if page is not None else None))  # fmt: skip
