"""Generation modes beyond text-to-image: img2img, inpaint, outpaint and ControlNet (canny).

Each mode runs a pipeline *variant* built from the loaded base pipeline's own components
(``AutoPipelineFor*.from_pipe``): no second copy of the weights is loaded, and LoRA adapters loaded
into the base UNet and text encoders keep working. For a job the engine hands over, this module

1. prepares the inputs at the requested size: a deterministic centre fit of the input image, the
   mask (white = repaint, binarised, feathered only when ``mask_blur`` asks for it), the outpaint
   canvas and its mask, or the canny map of the control image;
2. picks (and caches) the variant: img2img, inpaint (also for outpaint; a normal 4-channel UNet is
   fine, as in diffusers' ``StableDiffusionInpaintPipeline``) or ControlNet text-to-image;
3. runs it with per-image CPU generators, so an image depends only on its seed and inputs;
4. pastes the original pixels back outside the mask, so they stay byte-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from studio.generation.canny import canny_image

if TYPE_CHECKING:
    from studio.generation.engine import GenerationJob

logger = logging.getLogger(__name__)

Mode = Literal["txt2img", "img2img", "inpaint", "outpaint", "controlnet"]
MODES: tuple[str, ...] = ("txt2img", "img2img", "inpaint", "outpaint", "controlnet")
#: The diffusers task each mode runs (outpaint is inpainting on a bigger canvas).
TASKS: dict[str, str] = {
    "img2img": "img2img",
    "inpaint": "inpaint",
    "outpaint": "inpaint",
    "controlnet": "controlnet",
}
#: A mask pixel at or above this level is repainted.
MASK_THRESHOLD = 128
MAX_CANVAS = 2048
#: Modes whose images show input pixels: outpaint and inpaint keep them exactly outside the mask.
INIT_IMAGE_MODES = ("img2img", "inpaint", "outpaint")


@dataclass(frozen=True)
class OutpaintSpec:
    """Grow the canvas by these many pixels per side (multiples of 8) and paint only the new area."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    #: "edge" stretches the border pixels outwards; "color" fills with ``color`` (e.g. the kit background)
    fill: Literal["edge", "color"] = "edge"
    color: tuple[int, int, int] = (255, 255, 255)
    #: also repaint this many pixels of the original along each extended side (0 = keep all of it)
    overlap: int = 0

    def canvas_size(self, width: int, height: int) -> tuple[int, int]:
        return width + self.left + self.right, height + self.top + self.bottom


@dataclass(frozen=True)
class ControlNetSpec:
    """A ControlNet to condition on the canny edges of the control image."""

    key: str  #: cache key, e.g. the weights' SHA-256: loaded once per process
    path: Path  #: a diffusers folder or a single .safetensors file
    conditioning_scale: float = 1.0
    low_threshold: int = 100
    high_threshold: int = 200


@dataclass
class PreparedInputs:
    width: int
    height: int
    image: Any = None  #: what the pipeline starts from: img2img source, inpaint image or outpaint canvas
    mask: Any = None  #: L mode, white = repaint (feathered when mask_blur > 0)
    control: Any = None  #: RGB canny map


@dataclass
class ModeResult:
    images: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  #: notes on the prompts (e.g. long-prompt chunks)


def validate_job(job: GenerationJob) -> None:
    """Refuse a job whose mode lacks an input it needs (before any pipeline work)."""
    if job.mode not in MODES:
        raise ValueError(f"unknown mode {job.mode!r}; choose one of {', '.join(MODES)}")
    if job.mode in INIT_IMAGE_MODES and job.init_image is None:
        raise ValueError(f"mode {job.mode} needs an init image")
    if job.mode == "inpaint" and job.mask is None:
        raise ValueError("mode inpaint needs a mask (white = repaint)")
    if job.mode == "outpaint" and (job.outpaint is None or job.outpaint.canvas_size(0, 0) == (0, 0)):
        raise ValueError("mode outpaint needs at least one side to extend")
    if job.mode == "controlnet" and (job.control_image is None or job.controlnet is None):
        raise ValueError("mode controlnet needs a control image and a ControlNet model")
    if job.mode in INIT_IMAGE_MODES and not 0 < job.strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {job.strength}")


# ----- 1. inputs ----------------------------------------------------------------------------------
def fit_image(image: Any, width: int, height: int, resample: int = Image.Resampling.LANCZOS) -> Any:
    """``image`` scaled to cover ``width`` x ``height`` and centre-cropped (unchanged if already that size)."""
    if image.size == (width, height):
        return image.copy()
    return ImageOps.fit(image, (width, height), method=resample, centering=(0.5, 0.5))


def fit_mask(mask: Any, width: int, height: int) -> Any:
    """The mask fitted like the image and binarised: 255 = repaint, 0 = keep."""
    fitted = fit_image(mask.convert("L"), width, height, Image.Resampling.BILINEAR)
    return fitted.point(lambda v: 255 if v >= MASK_THRESHOLD else 0)


def feather(mask: Any, blur: int) -> Any:
    """A1111's "Mask blur": a Gaussian feather of ``blur`` px; 0 keeps the hard mask."""
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def extend_canvas(image: Any, spec: OutpaintSpec) -> tuple[Any, Any]:
    """The grown canvas (new area filled per ``spec.fill``) and its mask (new area + overlap = 255)."""
    width, height = image.size
    pixels = np.asarray(image.convert("RGB"))
    pads = ((spec.top, spec.bottom), (spec.left, spec.right), (0, 0))
    if spec.fill == "edge":
        canvas = np.pad(pixels, pads, mode="edge")
    else:
        canvas = np.empty(
            (height + spec.top + spec.bottom, width + spec.left + spec.right, 3), dtype=np.uint8
        )
        canvas[...] = np.array(spec.color, dtype=np.uint8)
        canvas[spec.top : spec.top + height, spec.left : spec.left + width] = pixels
    mask = np.full(canvas.shape[:2], 255, dtype=np.uint8)
    keep_top = spec.top + (spec.overlap if spec.top else 0)
    keep_left = spec.left + (spec.overlap if spec.left else 0)
    keep_bottom = spec.top + height - (spec.overlap if spec.bottom else 0)
    keep_right = spec.left + width - (spec.overlap if spec.right else 0)
    mask[keep_top:keep_bottom, keep_left:keep_right] = 0
    return Image.fromarray(canvas, mode="RGB"), Image.fromarray(mask, mode="L")


def paste_outside(generated: Any, original: Any, alpha: Any) -> Any:
    """``generated`` where ``alpha`` is 255, ``original`` where it is 0 (exactly), blended between."""
    new = np.asarray(generated.convert("RGB"), dtype=np.uint32)
    old = np.asarray(original.convert("RGB"), dtype=np.uint32)
    a = np.asarray(alpha.convert("L"), dtype=np.uint32)[..., None]
    out = (new * a + old * (255 - a) + 127) // 255  # a = 0 gives old, a = 255 gives new, bit for bit
    return Image.fromarray(out.astype(np.uint8), mode="RGB")


def prepare_inputs(job: GenerationJob) -> PreparedInputs:
    """Step 1: the mode's inputs at the job's size (outpaint: the grown canvas)."""
    width, height = job.width, job.height
    if job.mode == "img2img":
        return PreparedInputs(width, height, image=fit_image(job.init_image.convert("RGB"), width, height))
    if job.mode == "inpaint":
        image = fit_image(job.init_image.convert("RGB"), width, height)
        mask = feather(fit_mask(job.mask, width, height), job.mask_blur)
        return PreparedInputs(width, height, image=image, mask=mask)
    if job.mode == "outpaint":
        assert job.outpaint is not None
        base = fit_image(job.init_image.convert("RGB"), width, height)
        canvas, mask = extend_canvas(base, job.outpaint)
        return PreparedInputs(canvas.width, canvas.height, image=canvas, mask=feather(mask, job.mask_blur))
    assert job.controlnet is not None
    control = fit_image(job.control_image.convert("RGB"), width, height)
    edges = canny_image(control, job.controlnet.low_threshold, job.controlnet.high_threshold)
    return PreparedInputs(width, height, control=edges)


# ----- 2. pipeline variants -----------------------------------------------------------------------
class ModeCache:
    """The variants of one base pipeline and the last ControlNet loaded (the engine's lock guards it)."""

    def __init__(self) -> None:
        self._base: Any = None
        self._variants: dict[tuple[str, str | None], Any] = {}
        self._controlnet: tuple[str, Any] | None = None

    def clear(self) -> None:
        self._base = None
        self._variants.clear()
        self._controlnet = None

    def variant(self, base: Any, task: str, controlnet: ControlNetSpec | None = None) -> Any:
        """The ``task`` pipeline sharing ``base``'s components (built once per base and ControlNet)."""
        if self._base is not base:
            self.clear()
            self._base = base
        key = (task, controlnet.key if task == "controlnet" and controlnet else None)
        if key not in self._variants:
            from diffusers import (
                AutoPipelineForImage2Image,
                AutoPipelineForInpainting,
                AutoPipelineForText2Image,
            )

            factories = {"img2img": AutoPipelineForImage2Image, "inpaint": AutoPipelineForInpainting,
                         "controlnet": AutoPipelineForText2Image}  # fmt: skip
            extra: dict[str, Any] = {}
            if task == "controlnet":
                assert controlnet is not None
                extra["controlnet"] = self._controlnet_model(base, controlnet)
                self._variants = {k: v for k, v in self._variants.items() if k[0] != "controlnet"}
            pipe = factories[task].from_pipe(base, **extra)
            pipe.set_progress_bar_config(disable=True)
            logger.info("built %s pipeline %s from the loaded base model", task, type(pipe).__name__)
            self._variants[key] = pipe
        return self._variants[key]

    def _controlnet_model(self, base: Any, spec: ControlNetSpec) -> Any:
        if self._controlnet is None or self._controlnet[0] != spec.key:
            from studio.generation.controlnet import load_controlnet

            self._controlnet = None  # drop the previous one before loading the next
            model = load_controlnet(spec.path, base.unet).to(base.device)
            if model.dtype != base.unet.dtype:
                model = model.to(dtype=base.unet.dtype)
            self._controlnet = (spec.key, model)
        return self._controlnet[1]


# ----- 3. + 4. run and paste back -----------------------------------------------------------------
def render_mode(
    cache: ModeCache,
    base: Any,
    job: GenerationJob,
    latents: Any,
    generators: list[Any],
    progress: Callable[[int, int], None] | None,
) -> ModeResult:
    """Run ``job`` (not txt2img) on a variant of ``base``, whose LoRAs and scheduler are already set.

    ControlNet reuses the engine's seeded ``latents``/``generators`` (so scale 0 equals txt2img); the
    image modes draw their noise from fresh per-image CPU generators inside the pipeline and get one
    copy of the input per image, so each image uses only its own generator (a batch equals singles).
    Prompts are encoded as in txt2img (A1111 weights and long-prompt chunks).
    """
    import torch

    from studio.generation.prompt_encode import prompt_arguments

    validate_job(job)
    prepared = prepare_inputs(job)
    task = TASKS[job.mode]
    pipe = cache.variant(base, task, job.controlnet)
    pipe.scheduler = base.scheduler
    count = len(job.seeds)
    steps = job.num_inference_steps
    if task != "controlnet":  # the image modes skip the first (1 - strength) of the schedule
        steps = min(int(steps * job.strength), steps)
    prompt_args, warnings = prompt_arguments(base, job.prompt, job.negative_prompt, count)
    kwargs: dict[str, Any] = dict(
        **prompt_args, num_inference_steps=job.num_inference_steps, guidance_scale=job.guidance_scale,
        output_type="pil", callback_on_step_end=_progress_callback(progress, max(1, steps)),
    )  # fmt: skip
    fresh = [torch.Generator("cpu").manual_seed(seed) for seed in job.seeds]
    if task == "img2img":
        kwargs.update(image=[prepared.image] * count, strength=job.strength, generator=fresh)
    elif task == "inpaint":
        kwargs.update(image=[prepared.image] * count, mask_image=[prepared.mask] * count, strength=job.strength,
                      generator=fresh, width=prepared.width, height=prepared.height)  # fmt: skip
    else:
        assert job.controlnet is not None
        kwargs.update(image=prepared.control, controlnet_conditioning_scale=job.controlnet.conditioning_scale,
                      width=prepared.width, height=prepared.height, latents=latents, generator=generators)  # fmt: skip
    images = list(pipe(**kwargs).images)
    if task == "inpaint":
        images = [paste_outside(img, prepared.image, prepared.mask) for img in images]
    return ModeResult(images=images, warnings=warnings)


def _progress_callback(progress: Callable[[int, int], None] | None, total: int) -> Callable[..., Any] | None:
    if progress is None:
        return None

    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(min(step + 1, total), total)
        return kwargs

    return on_step_end
