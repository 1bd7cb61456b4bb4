"""Generate: seed-locked images from a prompt, optionally with a kit's LoRA; every image keeps its recipe."""

from __future__ import annotations

import streamlit as st

from studio.schemas import SCHEDULER_NAMES, GenerateRequest, LoraChoice
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, model_banner, show_generation

studio = get_studio()
st.title("Generate")
model_banner(studio)
info = attempt(studio.model_info)
default_size = info.default_size if info else 512

kits = attempt(studio.list_kits) or []
kit = st.selectbox("Brand kit", [None, *kits], format_func=lambda k: "(none)" if k is None else k.name)
loras = attempt(lambda: studio.list_loras(kit.id if kit else None)) or []
lora = st.selectbox("LoRA", [None, *loras], format_func=lambda x: "(none)" if x is None else x.name)
weight = st.slider("LoRA weight", -1.0, 2.0, 1.0, 0.05, disabled=lora is None)
prompt = st.text_area("Prompt", placeholder="studio product photo on wet slate, soft rim light")
negative = st.text_input("Negative prompt", placeholder="text, watermark, blurry")
c1, c2, c3, c4 = st.columns(4)
seed = c1.number_input("Seed (-1 = random)", min_value=-1, max_value=2**32 - 1, value=-1)
batch = c2.number_input("Batch size", min_value=1, max_value=8, value=1)
steps = c3.number_input("Steps", min_value=1, max_value=150, value=20)
cfg = c4.number_input("CFG scale", min_value=0.0, max_value=30.0, value=7.0, step=0.5)
c5, c6, c7 = st.columns(3)
scheduler = c5.selectbox("Sampler", SCHEDULER_NAMES)
width = c6.number_input("Width", min_value=64, max_value=2048, value=default_size, step=8)
height = c7.number_input("Height", min_value=64, max_value=2048, value=default_size, step=8)

if st.button("Generate", type="primary"):
    bar = st.progress(0.0, text="Generating...")
    gen = attempt(lambda: studio.generate(
        GenerateRequest.of(
            prompt=prompt, negative_prompt=negative, kit_id=kit.id if kit else None,
            loras=(LoraChoice(lora_id=lora.id, weight=weight),) if lora else (), scheduler=scheduler,
            num_inference_steps=int(steps), guidance_scale=float(cfg), width=int(width), height=int(height),
            seed=int(seed), batch_size=int(batch),
        ),
        lambda i, n: bar.progress(i / n, text=f"Step {i}/{n}"),
    ))
    if gen is not None:
        st.session_state["last_generation"] = gen.id

last = st.session_state.get("last_generation")
if last is not None:
    gen = attempt(lambda: studio.get_generation(last))
    if gen is not None:
        st.subheader("Result")
        st.text(f"Final prompt: {gen.prompt}")
        show_generation(studio, gen, key_prefix="gen")
        if st.button("Re-render this recipe", key="rerender_last"):
            again = attempt(lambda: studio.rerender(gen.id))
            if again is not None:
                same = all(a.pixel_sha256 == b.pixel_sha256 for a, b in zip(gen.images, again.images, strict=True))
                (st.success if same else st.error)(
                    f"Re-rendered as generation {again.id}: " + ("identical pixels." if same else "pixels differ!")
                )
