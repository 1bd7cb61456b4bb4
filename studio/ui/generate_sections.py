"""Pieces of the Generate page: mode inputs (input image, mask painting/upload, outpaint sides,
ControlNet), PNG read-back, progress, and the result grid with re-render / vary / use as input."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from io import BytesIO
from typing import Any

import streamlit as st

from studio.api import Studio
from studio.errors import StudioError
from studio.schemas import GenerationView, UploadedFile
from studio.ui.generate_form import MODES, prefill
from studio.ui.mask_painter import decode_mask, mask_painter
from studio.ui.widgets import attempt, plain

GRID_PARAMS = ["guidance_scale", "seed", "num_inference_steps", "scheduler", "lora_weight", "prompt_sr",
               "subseed_strength"]  # fmt: skip
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp"]
SEND_MODES = ("img2img", "inpaint", "outpaint", "controlnet")


def progress_reporter(bar: Any) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        st.session_state["g_last_step"] = f"{step}/{total}"
        bar.progress(min(1.0, step / total), text=f"Step {step}/{total}")

    return report


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(BytesIO(data)) as img:
        return img.size


def _stored_input(studio: Studio, label: str, state_key: str, upload: Callable[[UploadedFile], str]) -> str | None:
    """An uploader feeding ``state_key`` (a blob SHA-256), and the current image shown under it."""
    file = st.file_uploader(label, type=IMAGE_TYPES, key=f"{state_key}_upload")
    marker = f"{state_key}_seen"
    if file is not None and st.session_state.get(marker) != file.file_id:
        sha = attempt(lambda: upload(UploadedFile(name=file.name, data=file.getvalue())))
        st.session_state[marker] = file.file_id
        if sha is not None:
            st.session_state[state_key] = sha
    sha = st.session_state.get(state_key)
    if sha:
        data = attempt(lambda: studio.read_blob(sha))
        if data is not None:
            w, h = _image_size(data)
            st.image(data, caption=f"{label}: {w}x{h} ({sha[:12]})", width=min(w, 384))
    return sha


def mode_inputs(studio: Studio, mode: str) -> None:
    """The inputs of the chosen mode (nothing for text to image)."""
    state = st.session_state
    if mode in ("img2img", "inpaint", "outpaint"):
        init = _stored_input(studio, "Input image", "g_init_image", studio.upload_input_image)
        st.checkbox("Default denoising strength (0.75; outpaint 1.0)", key="g_strength_auto")
        st.slider("Denoising strength", 0.01, 1.0, step=0.01, key="g_strength", disabled=state["g_strength_auto"],
                  help="How much may change: low keeps the input's layout, 1 repaints everything")  # fmt: skip
        if mode == "inpaint":
            _mask_inputs(studio, init)
        if mode in ("inpaint", "outpaint"):
            st.slider("Mask blur (px)", 0, 64, key="g_mask_blur",
                      help="0 keeps every pixel outside the mask byte-identical; more feathers the seam")  # fmt: skip
        if mode == "outpaint":
            cols = st.columns(4)
            for col, side in zip(cols, ("left", "right", "top", "bottom"), strict=True):
                col.number_input(f"Extend {side} (px)", min_value=0, max_value=2048, step=8, key=f"g_out_{side}")
            f1, f2, f3 = st.columns(3)
            f1.selectbox("Fill the new area from", ["edge", "color"], key="g_out_fill",
                         format_func={"edge": "stretched edge pixels", "color": "a flat colour"}.__getitem__)  # fmt: skip
            f2.text_input("Colour (#RRGGBB; empty = the kit's background)", key="g_out_color",
                          disabled=state.get("g_out_fill") != "color")  # fmt: skip
            f3.number_input("Also repaint this much of the edge (px)", min_value=0, max_value=256, step=8,
                            key="g_out_overlap")  # fmt: skip
    elif mode == "controlnet":
        _stored_input(studio, "Control image (its canny edges guide the layout)", "g_control_image",
                      studio.upload_input_image)  # fmt: skip
        st.text_input("ControlNet model (local folder, .safetensors file or hub id)", key="g_controlnet")
        c1, c2, c3 = st.columns(3)
        c1.slider("Control weight", 0.0, 2.0, step=0.05, key="g_cn_scale")
        c2.number_input("Canny low threshold", min_value=1, max_value=255, key="g_canny_low")
        c3.number_input("Canny high threshold", min_value=1, max_value=255, key="g_canny_high")


def _mask_inputs(studio: Studio, init: str | None) -> None:
    state = st.session_state
    st.markdown("**Mask** — paint what to repaint (white); everything else is kept.")
    if init:
        data = attempt(lambda: studio.read_blob(init))
        if data is not None:
            w, h = _image_size(data)
            try:
                painted = mask_painter(data, w, h, key=f"g_painter_{init[:16]}")
            except Exception as exc:  # noqa: BLE001 -- a component that cannot mount leaves the upload fallback
                st.caption(f"Mask painting is unavailable here ({type(exc).__name__}); upload a mask instead.")
                painted = None
            if painted and state.get("g_painted_seen") != painted:
                state["g_painted_seen"] = painted
                try:
                    png = decode_mask(painted)
                except ValueError as exc:
                    st.error(plain(str(exc)))
                else:
                    sha = attempt(lambda: studio.upload_mask(UploadedFile(name="painted-mask.png", data=png)))
                    if sha is not None:
                        state["g_mask"] = sha
    else:
        st.caption("Choose an input image first to paint on it.")
    _stored_input(studio, "Or upload a mask (white = repaint, same size as the input)", "g_mask", studio.upload_mask)


def load_png_section(studio: Studio) -> None:
    """Read the settings of a PNG made by AUTOMATIC1111 or by us back into the form."""
    with st.expander("Load settings from a PNG (AUTOMATIC1111 or Brand Studio)"):
        st.file_uploader("PNG with generation parameters", type=["png"], key="g_png_upload")

        def load() -> None:
            file = st.session_state.get("g_png_upload")
            if file is None:
                st.session_state["g_png_message"] = ("error", "Choose a PNG first.")
                return
            try:
                result = studio.request_from_png(file.getvalue())
            except StudioError as exc:
                st.session_state["g_png_message"] = ("error", str(exc))
                return
            prefill(result.request)
            notes = [f"Read from the {'Brand Studio recipe' if result.source == 'brand_studio' else 'A1111 parameters'}."]
            notes += [f"Not carried over: {', '.join(result.unmapped)}."] if result.unmapped else []
            st.session_state["g_png_message"] = ("info", " ".join([*notes, *result.notes]))

        st.button("Fill the form from this PNG", on_click=load)
        kind, text = st.session_state.pop("g_png_message", (None, ""))
        if kind:
            (st.error if kind == "error" else st.info)(plain(text))


def _vary(studio: Studio, gen: GenerationView, index: int) -> None:
    """Callback: this image's recipe and seed, a fresh variation seed at strength 0.25, four images."""
    image = next(img for img in gen.images if img.index == index)
    result = attempt(lambda: studio.request_from_png(studio.read_blob(image.blob_sha256)))
    if result is None:
        return
    prefill(result.request.model_copy(update={"seed": image.seed}))
    st.session_state.update(g_subseed=secrets.randbelow(2**32), g_subseed_strength=0.25, g_batch=4, g_count=1,
                            g_vary_note=f"Variations of seed {image.seed}: press Generate (variation strength 0.25).")  # fmt: skip


def _use_as_input(studio: Studio, gen_id: int, index: int, key: str) -> None:
    mode = st.session_state.get(key, "img2img")
    req = attempt(lambda: studio.send_to(gen_id, index, mode))
    if req is not None:
        prefill(req)


def show_results(studio: Studio, generation_id: int) -> None:
    gen = attempt(lambda: studio.get_generation(generation_id))
    if gen is None:
        return
    st.subheader(f"Result · generation {gen.id} ({MODES.get(gen.mode, gen.mode)})")
    if note := st.session_state.pop("g_vary_note", None):
        st.info(note)
    st.caption(f"seed {gen.seed} · {gen.width}x{gen.height} · {gen.scheduler} · {gen.num_inference_steps} steps · "
               f"CFG {gen.guidance_scale:g}" + (f" · parent {gen.parent_id}" if gen.parent_id else ""))  # fmt: skip
    st.text(f"Final prompt: {gen.prompt}")
    for w in gen.warnings:
        st.warning(plain(w))
    cols = st.columns(4)
    for img in gen.images:
        with cols[img.index % 4]:
            data = studio.read_blob(img.blob_sha256)
            st.image(data, caption=f"seed {img.seed}", width="stretch")
            st.download_button("Download PNG", data, file_name=f"gen{gen.id}-{img.index}-{img.seed}.png",
                               mime="image/png", key=f"g_dl_{gen.id}_{img.index}")  # fmt: skip
            if gen.mode in ("txt2img", "controlnet"):
                st.button("Vary", key=f"g_vary_{gen.id}_{img.index}", on_click=_vary, args=(studio, gen, img.index),
                          help="Same seed, a variation seed at strength 0.25, four images")  # fmt: skip
            pick = f"g_send_mode_{gen.id}_{img.index}"
            st.selectbox("Use as input for", SEND_MODES, key=pick, format_func=MODES.__getitem__)
            st.button("Use as input", key=f"g_send_{gen.id}_{img.index}", on_click=_use_as_input,
                      args=(studio, gen.id, img.index, pick))  # fmt: skip
            with st.expander("Recipe (A1111 parameters)"):
                st.code(img.parameters, language=None)
    if st.button("Re-render this recipe", key=f"g_rerender_{gen.id}"):
        again = attempt(lambda: studio.rerender(gen.id))
        if again is not None:
            same = all(a.pixel_sha256 == b.pixel_sha256 for a, b in zip(gen.images, again.images, strict=True))
            (st.success if same else st.error)(
                f"Re-rendered as generation {again.id}: " + ("identical pixels." if same else "pixels differ!")
            )


def show_grid(studio: Studio, grid_generation_id: int) -> None:
    gen = attempt(lambda: studio.get_generation(grid_generation_id))
    if gen is None or not gen.images:
        return
    st.subheader(f"X/Y grid · generation {gen.id}")
    sheet = studio.read_blob(gen.images[0].blob_sha256)
    st.image(sheet, caption="Each cell: the same seed with the axis values changed", width="stretch")
    st.download_button("Download grid PNG", sheet, file_name=f"grid{gen.id}.png", mime="image/png",
                       key=f"g_grid_dl_{gen.id}")  # fmt: skip
