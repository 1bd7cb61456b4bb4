"""Loading the SD-1.x or SDXL parts, freezing them, attaching the LoRA; the run's Accelerator.

An SDXL folder (``family.model_family``) adds ``tokenizer_2`` / ``text_encoder_2`` (a
``CLIPTextModelWithProjection``) to the SD-1.x parts. Its VAE sets ``force_upcast`` (it overflows in
float16), so under fp16 mixed precision it stays in float32 (``vae_dtype``), as in diffusers' SDXL
pipelines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.config import TrainConfig, TrainConfigError
from training.family import ModelFamily, model_family, unet_family
from training.lora import attach_lora
from training.metadata import PREDICTION_TYPES

logger = logging.getLogger(__name__)


@dataclass
class ModelParts:
    """The pipeline parts training uses; ``vae`` / the text encoders become None once released.

    ``tokenizer_2`` / ``text_encoder_2`` are SDXL's second CLIP (None for SD-1.x); ``family`` says
    which kind of model this is ("sd1" or "sdxl") and stays valid after the encoders are released.
    """

    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any
    tokenizer_2: Any = None
    text_encoder_2: Any = None
    family: ModelFamily = "sd1"


def make_accelerator(config: TrainConfig) -> Any:
    """Create this run's Accelerator, clearing the process-wide state an earlier run left behind.

    accelerate keeps its state in class-level singletons, so a second ``Accelerator`` with other
    settings in one process would otherwise fail. The distributed ``PartialState`` is kept when a
    process group is up (``accelerate launch``): it must not be initialised twice.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    AcceleratorState._reset_state(reset_partial_state=not distributed)
    GradientState._reset_state()
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise TrainConfigError({"mixed_precision": "fp16 needs a GPU; use 'bf16' or 'no' on CPU"})
    return accelerator


def load_frozen_with_lora(config: TrainConfig, accelerator: Any) -> tuple[ModelParts, torch.dtype]:
    """Load the parts, freeze them (half precision under mixed precision) and add a float32 LoRA.

    The UNet attends with diffusers' default processor, ``AttnProcessor2_0`` (PyTorch SDPA), and
    recomputes activations in the backward pass when ``gradient_checkpointing`` is on. With
    ``train_text_encoder`` the text encoder(s) get a LoRA too (text_encoder.py).
    """
    from diffusers.training_utils import cast_training_params

    parts = load_parts(Path(config.pretrained_model))
    dtype = weight_dtype(accelerator.mixed_precision)
    freeze(parts, accelerator.device, dtype)
    attach_lora(parts.unet, rank=config.rank, alpha=config.alpha, target_modules=config.target_modules)
    cast_training_params(parts.unet, dtype=torch.float32)
    if config.gradient_checkpointing:
        parts.unet.enable_gradient_checkpointing()
    parts.unet.train()
    if config.train_text_encoder:
        from training.text_encoder import attach_text_encoder_lora

        _, rank, alpha = config.text_encoder_settings()
        attach_text_encoder_lora(
            parts, rank=rank, alpha=alpha, gradient_checkpointing=config.gradient_checkpointing
        )
    return parts, dtype


def freeze(parts: ModelParts, device: torch.device, dtype: torch.dtype) -> None:
    """Make every part untrainable and move it to ``device`` in ``dtype`` (the VAE in ``vae_dtype``)."""
    frozen = [
        (parts.text_encoder, dtype), (parts.text_encoder_2, dtype),
        (parts.vae, vae_dtype(dtype, parts.vae.config, parts.family)), (parts.unet, dtype),
    ]  # fmt: skip
    for module, module_dtype in frozen:
        if module is None:
            continue
        module.requires_grad_(False)
        # Always cast: a folder saved in fp16 loads its text encoder as fp16 (transformers 5 keeps the
        # saved dtype) while the UNet loads as fp32, so an fp32 run would mix dtypes. One .to() casts
        # parameter by parameter on the way, so an fp16 run never holds fp32 weights on the device.
        module.to(device=device, dtype=module_dtype)


def load_parts(folder: Path) -> ModelParts:
    """Load the parts of the SD-1.x or SDXL folder ``folder`` (safetensors, local files only)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    local = {"local_files_only": True}
    weights = {"local_files_only": True, "use_safetensors": True}
    loaders: dict[str, tuple[Any, dict[str, Any]]] = {
        "tokenizer": (CLIPTokenizer, local),
        "text_encoder": (CLIPTextModel, weights),
        "vae": (AutoencoderKL, weights),
        "unet": (UNet2DConditionModel, weights),
        "noise_scheduler": (DDPMScheduler, local),
    }
    family = model_family(folder)
    if family == "sdxl":
        loaders["tokenizer_2"] = (CLIPTokenizer, local)
        loaders["text_encoder_2"] = (CLIPTextModelWithProjection, weights)
    loaded = {}
    for name, (cls, kwargs) in loaders.items():
        subfolder = "scheduler" if name == "noise_scheduler" else name
        try:
            loaded[name] = cls.from_pretrained(folder, subfolder=subfolder, **kwargs)
        except (OSError, ValueError) as exc:
            raise TrainConfigError(
                {"pretrained_model": f"cannot load {subfolder} from {folder} (safetensors only): {exc}"}
            ) from exc
    parts = ModelParts(**loaded, family=family)
    if unet_family(parts.unet.config) != family:
        raise TrainConfigError(
            {"pretrained_model": f"{folder} is laid out as an SDXL pipeline but its UNet does not take SDXL's "
             "'text_time' conditioning (addition_embed_type); it is neither SD-1.x nor SDXL"}
        )  # fmt: skip
    prediction_type = parts.noise_scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise TrainConfigError(
            {"pretrained_model": f"scheduler prediction_type {prediction_type!r} is not supported; "
             f"supported: {', '.join(PREDICTION_TYPES)}"}
        )  # fmt: skip
    return parts


def vae_dtype(dtype: torch.dtype, vae_config: Any, family: ModelFamily) -> torch.dtype:
    """The VAE's dtype: float32 instead of float16 when an SDXL VAE's config sets ``force_upcast``.

    As in diffusers, only SDXL pipelines honour the flag: ``AutoencoderKL`` defaults it to True, so
    SD-1.x VAEs carry it too, and their encoding stays as it always was (float16 under fp16).
    """
    if family == "sdxl" and dtype == torch.float16 and getattr(vae_config, "force_upcast", False):
        return torch.float32
    return dtype


def weight_dtype(mixed_precision: str) -> torch.dtype:
    """dtype of the frozen weights: half precision under mixed precision, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(str(mixed_precision), torch.float32)
