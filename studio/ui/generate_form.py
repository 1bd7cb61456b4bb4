"""The Generate page's form state: widget keys, prefill from a request, and the request built back.

Every widget of the form has a key below; :func:`prefill` writes a ``GenerateRequest`` into those keys
(from "Use as input", "Vary", a PNG read back, ...). It runs in button callbacks, i.e. before the next
script run draws the widgets, which is when Streamlit lets a widget's value be set. Input images are
not widgets: their blob SHA-256s live in session state (``g_init_image``, ``g_mask``, ``g_control_image``).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from studio.schemas import GenerateRequest, LoraChoice

MODES = {"txt2img": "Text to image", "img2img": "Image to image", "inpaint": "Inpaint", "outpaint": "Outpaint",
         "controlnet": "ControlNet (canny)"}  # fmt: skip
IMAGES = ("g_init_image", "g_mask", "g_control_image")
#: request field -> widget key (plain one-to-one fields)
FIELDS = {
    "prompt": "g_prompt", "negative_prompt": "g_negative", "mode": "g_mode", "scheduler": "g_sampler",
    "num_inference_steps": "g_steps", "guidance_scale": "g_cfg", "seed": "g_seed", "batch_size": "g_batch",
    "batch_count": "g_count", "subseed": "g_subseed", "subseed_strength": "g_subseed_strength",
    "seed_resize_from_w": "g_resize_w", "seed_resize_from_h": "g_resize_h", "mask_blur": "g_mask_blur",
    "outpaint_left": "g_out_left", "outpaint_right": "g_out_right", "outpaint_top": "g_out_top",
    "outpaint_bottom": "g_out_bottom", "outpaint_fill": "g_out_fill", "outpaint_overlap": "g_out_overlap",
    "controlnet_conditioning_scale": "g_cn_scale", "canny_low_threshold": "g_canny_low",
    "canny_high_threshold": "g_canny_high",
}  # fmt: skip
#: widget defaults, set once per session (a widget then takes its value from its key alone)
DEFAULTS: dict[str, Any] = {
    "g_prompt": "", "g_negative": "", "g_mode": "txt2img", "g_sampler": "Euler", "g_steps": 20, "g_cfg": 7.0,
    "g_seed": -1, "g_batch": 1, "g_count": 1, "g_subseed": -1, "g_subseed_strength": 0.0, "g_resize_w": 0,
    "g_resize_h": 0, "g_format": "", "g_strength": 0.75, "g_strength_auto": True, "g_mask_blur": 0,
    "g_out_left": 0, "g_out_right": 0, "g_out_top": 0, "g_out_bottom": 0, "g_out_fill": "edge", "g_out_color": "",
    "g_out_overlap": 0, "g_controlnet": "", "g_cn_scale": 1.0, "g_canny_low": 100, "g_canny_high": 200,
    "g_kit": None, "g_loras": [],
}  # fmt: skip
FLOAT_FIELDS = {"guidance_scale", "subseed_strength", "controlnet_conditioning_scale"}


def prefill(req: GenerateRequest) -> None:
    """Put ``req`` into the form (call from a button callback)."""
    state = st.session_state
    for field, key in FIELDS.items():
        value = getattr(req, field)
        state[key] = float(value) if field in FLOAT_FIELDS else value
    state["g_kit"] = req.kit_id
    state["g_loras"] = [c.lora_id for c in req.loras]
    for choice in req.loras:
        state[f"g_w_{choice.lora_id}"] = float(choice.weight)
    state["g_format"] = req.format or ""
    if req.width is not None:
        state["g_width"] = req.width
    if req.height is not None:
        state["g_height"] = req.height
    state["g_strength"] = float(req.strength) if req.strength is not None else 0.75
    state["g_strength_auto"] = req.strength is None
    state["g_out_color"] = req.outpaint_color or ""
    state["g_controlnet"] = req.controlnet or ""
    for key, value in zip(IMAGES, (req.init_image, req.mask, req.control_image), strict=True):
        state[key] = value


def _mode_fields(state: Any, mode: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"mode": mode}
    if mode in ("img2img", "inpaint", "outpaint"):
        fields["init_image"] = state.get("g_init_image")
        if not state.get("g_strength_auto", True):
            fields["strength"] = float(state["g_strength"])
    if mode in ("inpaint", "outpaint"):
        fields["mask_blur"] = int(state.get("g_mask_blur", 0))
    if mode == "inpaint":
        fields["mask"] = state.get("g_mask")
    if mode == "outpaint":
        for side in ("left", "right", "top", "bottom"):
            fields[f"outpaint_{side}"] = int(state.get(f"g_out_{side}", 0))
        fields["outpaint_fill"] = state.get("g_out_fill", "edge")
        fields["outpaint_color"] = state.get("g_out_color") or None
        fields["outpaint_overlap"] = int(state.get("g_out_overlap", 0))
    if mode == "controlnet":
        fields.update(control_image=state.get("g_control_image"), controlnet=(state.get("g_controlnet") or "").strip() or None,
                      controlnet_conditioning_scale=float(state.get("g_cn_scale", 1.0)),
                      canny_low_threshold=int(state.get("g_canny_low", 100)),
                      canny_high_threshold=int(state.get("g_canny_high", 200)))  # fmt: skip
    return fields


def build_request() -> GenerateRequest:
    """The form as a request; raises a field-specific InvalidInput (shown by ``attempt``)."""
    state = st.session_state
    mode = state.get("g_mode", "txt2img")
    fmt = state.get("g_format") or None if mode == "txt2img" else None
    loras = tuple(LoraChoice(lora_id=i, weight=float(state.get(f"g_w_{i}", 1.0))) for i in state.get("g_loras", []))
    variation = float(state.get("g_subseed_strength", 0.0))
    return GenerateRequest.of(
        prompt=state.get("g_prompt", ""), negative_prompt=state.get("g_negative", ""), kit_id=state.get("g_kit"),
        loras=loras, scheduler=state.get("g_sampler", "Euler"), num_inference_steps=int(state.get("g_steps", 20)),
        guidance_scale=float(state.get("g_cfg", 7.0)), seed=int(state.get("g_seed", -1)),
        batch_size=int(state.get("g_batch", 1)), batch_count=int(state.get("g_count", 1)),
        width=None if fmt else int(state["g_width"]) if "g_width" in state else None,
        height=None if fmt else int(state["g_height"]) if "g_height" in state else None,
        subseed=int(state.get("g_subseed", -1)) if variation else -1, subseed_strength=variation,
        seed_resize_from_w=int(state.get("g_resize_w", 0)) if variation else 0,
        seed_resize_from_h=int(state.get("g_resize_h", 0)) if variation else 0,
        format=fmt, **_mode_fields(state, mode),
    )  # fmt: skip


def parse_axis_values(text: str, param: str) -> tuple[int | float | str, ...]:
    """Comma-separated grid values; numbers for numeric parameters, texts for scheduler and Prompt S/R."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if param in ("scheduler", "prompt_sr"):
        return tuple(items)
    out: list[int | float | str] = []
    for item in items:
        try:
            out.append(int(item) if param in ("seed", "num_inference_steps") else float(item))
        except ValueError:
            out.append(item)  # the request check names the bad value
    return tuple(out)
