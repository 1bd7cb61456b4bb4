"""Small shared UI pieces. User text is shown with st.text/st.code (never as HTML)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from studio.api import Studio
from studio.errors import StudioError
from studio.schemas import GenerationView, KitView

T = TypeVar("T")
MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>$~:&")


def plain(text: str) -> str:
    """User text made inert inside Streamlit markdown (st.success/st.error/...): no links, HTML,
    LaTeX (``$``), emoji or colour shortcodes (``:red[...]``) can be injected."""
    return "".join("\\" + ch if ch in MARKDOWN_SPECIALS else ch for ch in text)


def model_banner(studio: Studio) -> None:
    try:
        info = studio.model_info()
    except StudioError as exc:
        st.error("Base model problem: " + plain(str(exc)))
        st.stop()
    if info.is_placeholder:
        st.info(
            "You are using the **built-in placeholder model** (random weights): it draws coloured noise, "
            "so you can try every step offline. For real images set `BRAND_STUDIO_BASE_MODEL` to a Stable "
            "Diffusion model (hub id, local diffusers folder, or a single-file `.safetensors`) and restart.",
            icon=":material/info:",
        )
    elif info.is_demo:
        st.info(
            "You are using the **built-in demo model**: a tiny model trained on CPU that draws one simple "
            "object (circle, square, triangle, bottle, star, ring) in a named colour on a plain background, "
            f"at {info.default_size} px. Try *a red bottle on a blue background*; the CFG scale starts at "
            f"{info.default_guidance:g}, where its quality was measured. For real images set "
            "`BRAND_STUDIO_BASE_MODEL` to a Stable Diffusion model and restart.",
            icon=":material/info:",
        )


def attempt(action: Callable[[], T]) -> T | None:
    """Run a facade call; a StudioError becomes a readable st.error (no stack trace)."""
    try:
        return action()
    except StudioError as exc:
        st.error(plain(str(exc)))
        return None


def show_generation(studio: Studio, gen: GenerationView, *, key_prefix: str) -> None:
    st.caption(f"Generation {gen.id} · seed {gen.seed} · {gen.width}x{gen.height} · {gen.scheduler} · "
               f"{gen.num_inference_steps} steps · CFG {gen.guidance_scale:g}")  # fmt: skip
    for w in gen.warnings:
        st.warning(plain(w))
    cols = st.columns(4)  # a fixed grid keeps small images at a sane size
    for i, img in enumerate(gen.images):
        with cols[i % len(cols)]:
            data = studio.read_blob(img.blob_sha256)
            st.image(data, caption=f"seed {img.seed}", width="stretch")
            st.download_button("Download PNG", data, file_name=f"gen{gen.id}-{img.index}-{img.seed}.png",
                               mime="image/png", key=f"{key_prefix}-dl-{gen.id}-{img.index}")  # fmt: skip
            with st.expander("Recipe (A1111 parameters)"):
                st.code(img.parameters, language=None)


def kit_picker(kits: list[KitView]) -> KitView:
    """The kit selector shared by pages; the choice follows the user from page to page."""
    ids = [k.id for k in kits]
    current = st.session_state.get("kit_id")
    kit: KitView = st.selectbox("Kit", kits, index=ids.index(current) if current in ids else 0,
                                format_func=lambda k: k.name)  # fmt: skip
    st.session_state["kit_id"] = kit.id
    return kit


def swatch_strip(colors: list[tuple[str, str]], size: int = 56) -> bytes:
    """A PNG of colour swatches (hex, name) drawn with Pillow: safe to show, no HTML involved."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    width = max(1, len(colors)) * size
    strip = Image.new("RGB", (width, size), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for i, (hex_color, _) in enumerate(colors):
        draw.rectangle([i * size + 2, 2, (i + 1) * size - 3, size - 3], fill=hex_color, outline=(200, 200, 200))
    buf = BytesIO()
    strip.save(buf, "PNG")
    return buf.getvalue()


def lines(text: str) -> tuple[str, ...]:
    """One item per non-empty line of a text area."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())
