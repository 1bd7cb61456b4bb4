"""Generate: seed-locked images in every mode, with the kit doing the prompt work; every image keeps its recipe."""

from __future__ import annotations

import streamlit as st

from studio.formats import AD_FORMATS
from studio.grid_schemas import GridAxis
from studio.schemas import SCHEDULER_NAMES
from studio.seed_fields import MAX_BATCH_COUNT
from studio.ui.generate_form import DEFAULTS, MODES, build_request, parse_axis_values
from studio.ui.generate_sections import (
    GRID_PARAMS,
    load_png_section,
    mode_inputs,
    progress_reporter,
    show_grid,
    show_results,
)
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, model_banner, plain

studio = get_studio()
st.title("Generate")
model_banner(studio)
info = attempt(studio.model_info)
state = st.session_state
for key, default in {**DEFAULTS, "g_width": info.default_size if info else 512,
                     "g_height": info.default_size if info else 512,
                     "g_cfg": info.default_guidance if info else 7.0}.items():
    state.setdefault(key, default)

load_png_section(studio)

kits = attempt(studio.list_kits) or []
kit_names = {k.id: k.name for k in kits}
if state.get("g_kit") not in kit_names:
    state["g_kit"] = None
kit_id = st.selectbox("Brand kit", [None, *kit_names], key="g_kit",
                      format_func=lambda i: "(none)" if i is None else kit_names[i])  # fmt: skip
loras = {x.id: x for x in attempt(lambda: studio.list_loras(None)) or []}
state["g_loras"] = [i for i in state.get("g_loras", []) if i in loras]
chosen = st.multiselect("LoRAs (several at once, each with its weight)", list(loras), key="g_loras",
                        format_func=lambda i: f"{loras[i].name} ({loras[i].short_hash})")  # fmt: skip
for lora_id in chosen:
    state.setdefault(f"g_w_{lora_id}", 1.0)
    st.slider(f"Weight of {loras[lora_id].name}", -1.0, 2.0, step=0.05, key=f"g_w_{lora_id}")

st.text_area("Prompt", key="g_prompt", placeholder="studio product photo on wet slate, soft rim light, (crisp label:1.2)")
st.text_input("Negative prompt", key="g_negative", placeholder="text, watermark, blurry")
if (state.get("g_prompt") or "").strip():
    composed = attempt(lambda: studio.compose_prompt(build_request()))
    if composed is not None:
        with st.expander(f"Final prompts the model reads ({composed.prompt_tokens} + {composed.negative_tokens} tokens)",
                         expanded=kit_id is not None):  # fmt: skip
            st.caption("Prompt")
            st.code(composed.prompt, language=None, wrap_lines=True)
            st.caption("Negative prompt")
            st.code(composed.negative_prompt or "(empty)", language=None, wrap_lines=True)
            for note in composed.notes:
                st.info(plain(note))

mode = st.radio("Mode", list(MODES), key="g_mode", horizontal=True, format_func=MODES.__getitem__)
mode_inputs(studio, mode)

if mode == "txt2img":
    formats = ["", *AD_FORMATS]
    st.selectbox("Ad format", formats, key="g_format",
                 format_func=lambda k: "(custom size)" if not k else f"{AD_FORMATS[k].channel} · {AD_FORMATS[k].label} · "
                 f"{AD_FORMATS[k].width}x{AD_FORMATS[k].height}")  # fmt: skip
fixed_size = mode == "txt2img" and bool(state.get("g_format"))
c1, c2, c3, c4 = st.columns(4)
c1.number_input("Width", min_value=64, max_value=2048, step=8, key="g_width", disabled=fixed_size or mode != "txt2img")
c2.number_input("Height", min_value=64, max_value=2048, step=8, key="g_height", disabled=fixed_size or mode != "txt2img")
c3.selectbox("Sampler", SCHEDULER_NAMES, key="g_sampler")
c4.number_input("Steps", min_value=1, max_value=150, key="g_steps")
c5, c6, c7, c8 = st.columns(4)
c5.number_input("Seed (-1 = random)", min_value=-1, max_value=2**32 - 1, key="g_seed")
c6.number_input("Batch size", min_value=1, max_value=8, key="g_batch")
c7.number_input("Batch count", min_value=1, max_value=MAX_BATCH_COUNT, key="g_count")
c8.number_input("CFG scale", min_value=0.0, max_value=30.0, step=0.5, key="g_cfg")
with st.expander("Variation seed (AUTOMATIC1111's 'Extra')", expanded=bool(state.get("g_subseed_strength"))):
    v1, v2, v3, v4 = st.columns(4)
    v1.number_input("Variation seed (-1 = random)", min_value=-1, max_value=2**32 - 1, key="g_subseed")
    v2.slider("Variation strength", 0.0, 1.0, step=0.01, key="g_subseed_strength",
              help="0 = exactly the seed's image; 1 = the variation seed's image")  # fmt: skip
    v3.number_input("Resize seed from width (0 = off)", min_value=0, max_value=2048, step=8, key="g_resize_w")
    v4.number_input("Resize seed from height", min_value=0, max_value=2048, step=8, key="g_resize_h")

go, stop = st.columns([1, 5])
if go.button("Generate", type="primary"):
    req = attempt(build_request)
    if req is not None:
        # Cancel: clicking it reruns the page, which stops this run at its next step; nothing is stored.
        stop.button("Cancel", key="g_cancel", on_click=lambda: state.update(g_cancelled=True))
        bar = st.progress(0.0, text="Starting...")
        state["g_cancelled"] = False
        gen = attempt(lambda: studio.generate(req, progress_reporter(bar)))
        if gen is not None:
            state["last_generation"], state["last_grid"] = gen.id, None
if state.pop("g_cancelled", False):
    st.warning(f"Generation cancelled at step {state.get('g_last_step', '?')}; nothing was saved.")

with st.expander("X/Y grid: the same seed with one or two things changed"):
    st.caption("Every cell is a normal generation with its own recipe; the sheet is stored too.")
    gx1, gx2 = st.columns([1, 3])
    x_param = gx1.selectbox("X axis", GRID_PARAMS, key="g_grid_x")
    x_values = gx2.text_input("X values (comma-separated)", key="g_grid_xv", placeholder="4, 7, 10")
    gy1, gy2 = st.columns([1, 3])
    y_param = gy1.selectbox("Y axis (optional)", ["", *GRID_PARAMS], key="g_grid_y")
    y_values = gy2.text_input("Y values", key="g_grid_yv", disabled=not y_param)
    if st.button("Make grid"):
        first_lora = (state.get("g_loras") or [None])[0]

        def axis(param: str, text: str) -> GridAxis:
            return GridAxis.of(param=param, values=parse_axis_values(text, param),
                               lora_id=first_lora if param == "lora_weight" else None)  # fmt: skip

        grid = attempt(lambda: studio.generate_grid(
            build_request(), axis(x_param, x_values), axis(y_param, y_values) if y_param else None,
            progress_reporter(st.progress(0.0, text="Starting...")),
        ))  # fmt: skip
        if grid is not None:
            state["last_grid"], state["last_generation"] = grid.generation.id, None

if state.get("last_grid") is not None:
    show_grid(studio, state["last_grid"])
if state.get("last_generation") is not None:
    show_results(studio, state["last_generation"])
