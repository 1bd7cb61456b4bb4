"""The generation engine: one cached pipeline per process, serialised requests, LoRA switching.

The engine takes a fully resolved job (prompts composed, model and LoRAs as local paths) and knows
nothing about kits, the database or the UI.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.generation.modes import ControlNetSpec, ModeCache, OutpaintSpec, render_mode, validate_job
from studio.generation.noise import initial_noise
from studio.generation.prompt_encode import prompt_arguments
from studio.generation.schedulers import SCHEDULERS, make_scheduler

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA file to apply; ``key`` names the adapter once loaded (e.g. its content hash)."""

    key: str
    path: Path
    weight: float


@dataclass(frozen=True)
class GenerationJob:
    model_path: Path
    prompt: str
    negative_prompt: str
    scheduler: str
    num_inference_steps: int
    guidance_scale: float
    width: int
    height: int
    seeds: tuple[int, ...]
    loras: tuple[LoraSpec, ...] = ()
    #: txt2img | img2img | inpaint | outpaint | controlnet (see studio.generation.modes)
    mode: str = "txt2img"
    init_image: Any = None  #: PIL image for img2img/inpaint/outpaint, fitted to width x height
    mask: Any = None  #: PIL image, white = repaint (inpaint)
    strength: float = 0.75  #: denoising strength of the image modes, 0 < s <= 1
    mask_blur: int = 0  #: feather (px) of the mask; 0 keeps pixels outside it byte-identical
    outpaint: OutpaintSpec | None = None
    control_image: Any = None  #: PIL image whose canny edges condition the ControlNet
    controlnet: ControlNetSpec | None = None
    #: A1111 variation seeds (studio.generation.noise): image i mixes in subseeds[i]'s noise
    subseeds: tuple[int, ...] = ()
    subseed_strength: float = 0.0  #: 0 = the seed's noise only, 1 = the variation seed's noise
    seed_resize_from: tuple[int, int] | None = None  #: (width, height) the seeds' noise is made at


@dataclass
class GeneratedImage:
    image: Any  # PIL.Image.Image
    seed: int
    pixel_sha256: str


@dataclass
class GenerationOutput:
    images: list[GeneratedImage]
    warnings: list[str] = field(default_factory=list)


def pixel_sha256(image: Any) -> str:
    """Hash of the decoded pixels (mode, size and bytes): equal hashes mean identical images."""
    digest = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype != "auto":
        return table[dtype]
    return torch.float16 if device in ("cuda", "mps") else torch.float32


class Engine:
    """Holds the loaded pipeline. Every public method takes the lock: one request runs at a time."""

    def __init__(self, device: str = "auto", dtype: str = "auto") -> None:
        self._device_pref = device
        self._dtype_pref = dtype
        self._lock = threading.RLock()
        self._pipe: Any = None
        self._model_path: Path | None = None
        self._base_scheduler_config: dict[str, Any] = {}
        self._adapters: set[str] = set()
        self._modes = ModeCache()

    @property
    def device(self) -> str:
        return resolve_device(self._device_pref)

    def loaded_adapters(self) -> set[str]:
        with self._lock:
            return set(self._adapters)

    def pipeline(self, model_path: Path) -> Any:
        """The pipeline for ``model_path``, loading it (and dropping any other) if needed."""
        with self._lock:
            if self._pipe is not None and self._model_path == model_path:
                return self._pipe
            self.unload()
            from diffusers import DiffusionPipeline

            device = self.device
            dtype = resolve_dtype(self._dtype_pref, device)
            logger.info("loading pipeline %s on %s (%s)", model_path, device, dtype)
            pipe = DiffusionPipeline.from_pretrained(
                model_path, use_safetensors=True, local_files_only=True, dtype=dtype
            )
            if hasattr(pipe, "safety_checker"):
                pipe.safety_checker = None
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe.to(device)
            self._model_path = model_path
            self._base_scheduler_config = dict(pipe.scheduler.config)
            return self._pipe

    def drop_adapter(self, key: str) -> None:
        """Unload one adapter (e.g. a training checkpoint's, once its samples are rendered)."""
        with self._lock:
            if key in self._adapters and self._pipe is not None:
                self._pipe.delete_adapters([key])
            self._adapters.discard(key)

    def unload(self) -> None:
        with self._lock:
            self._pipe = None
            self._model_path = None
            self._adapters.clear()
            self._modes.clear()

    def generate(self, job: GenerationJob, progress: ProgressFn | None = None) -> GenerationOutput:
        """Run one job: 1) pipeline, 2) LoRAs, 3) scheduler, 4) seeded noise, 5) denoise."""
        import torch

        if job.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {job.scheduler!r}")
        validate_job(job)
        with self._lock, torch.inference_mode():
            pipe = self.pipeline(job.model_path)
            self._apply_loras(pipe, job.loras)
            pipe.scheduler = make_scheduler(job.scheduler, self._base_scheduler_config)
            latents, generators = self._initial_noise(pipe, job)
            callback = _progress_callback(progress, job.num_inference_steps)
            if job.mode != "txt2img":  # img2img, inpaint, outpaint, controlnet: a variant of this pipeline
                result = render_mode(self._modes, pipe, job, latents, generators, progress)
                warnings = result.warnings
            else:  # weighted or long prompts become A1111-style embeddings; plain ones stay strings
                prompt_args, warnings = prompt_arguments(pipe, job.prompt, job.negative_prompt, len(job.seeds))
                result = pipe(
                    **prompt_args,
                    num_inference_steps=job.num_inference_steps,
                    guidance_scale=job.guidance_scale,
                    width=job.width,
                    height=job.height,
                    latents=latents,
                    generator=generators,
                    output_type="pil",
                    callback_on_step_end=callback,
                )
        images = [
            GeneratedImage(image=img, seed=seed, pixel_sha256=pixel_sha256(img))
            for img, seed in zip(result.images, job.seeds, strict=True)
        ]
        return GenerationOutput(images=images, warnings=warnings)

    def _apply_loras(self, pipe: Any, loras: tuple[LoraSpec, ...]) -> None:
        """Load each adapter once; later requests only switch and weight them (no base reload)."""
        for spec in loras:
            if spec.key not in self._adapters:
                pipe.load_lora_weights(
                    str(spec.path), adapter_name=spec.key, use_safetensors=True, local_files_only=True
                )
                self._adapters.add(spec.key)
                if _adapter_module_count(pipe, spec.key) == 0:
                    pipe.delete_adapters([spec.key])
                    self._adapters.discard(spec.key)
                    raise ValueError(
                        f"LoRA {spec.path.name} matched 0 modules of this base model; it was made for "
                        "a different architecture"
                    )
        if loras:
            pipe.enable_lora()
            pipe.set_adapters([s.key for s in loras], adapter_weights=[s.weight for s in loras])
        elif self._adapters:
            pipe.disable_lora()

    @staticmethod
    def _initial_noise(pipe: Any, job: GenerationJob) -> tuple[Any, list[Any]]:
        """Per-image CPU generators: an image's noise depends only on its seed (and variation seed), on
        any device."""
        factor = pipe.vae_scale_factor
        channels = pipe.unet.config.in_channels
        shape = (channels, job.height // factor, job.width // factor)
        noise, generators = initial_noise(
            shape, job.seeds, subseeds=job.subseeds, subseed_strength=job.subseed_strength,
            resize_from=job.seed_resize_from, factor=factor,
        )  # fmt: skip
        return noise.to(pipe.device, pipe.unet.dtype), generators


def _adapter_module_count(pipe: Any, key: str) -> int:
    return sum(1 for name, _ in pipe.unet.named_modules() if name.endswith(f"lora_A.{key}"))


def _progress_callback(progress: ProgressFn | None, total: int) -> Callable[..., dict[str, Any]] | None:
    if progress is None:
        return None

    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(step + 1, total)
        return kwargs

    return on_step_end
