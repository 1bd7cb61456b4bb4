"""Loading the SD-1.x parts, freezing them, attaching the LoRA; the run's Accelerator."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.config import TrainConfig, TrainConfigError
from training.lora import attach_lora
from training.metadata import PREDICTION_TYPES

logger = logging.getLogger(__name__)


@dataclass
class ModelParts:
    """The pipeline parts training uses; ``vae`` / ``text_encoder`` become None once released."""

    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any


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
    recomputes activations in the backward pass when ``gradient_checkpointing`` is on.
    """
    from diffusers.training_utils import cast_training_params

    parts = load_parts(Path(config.pretrained_model))
    dtype = weight_dtype(accelerator.mixed_precision)
    for module in (parts.text_encoder, parts.vae, parts.unet):
        module.requires_grad_(False)
        module.to(accelerator.device)
        if dtype != torch.float32:
            module.to(dtype=dtype)
    attach_lora(parts.unet, rank=config.rank, alpha=config.alpha, target_modules=config.target_modules)
    cast_training_params(parts.unet, dtype=torch.float32)
    if config.gradient_checkpointing:
        parts.unet.enable_gradient_checkpointing()
    parts.unet.train()
    return parts, dtype


def load_parts(folder: Path) -> ModelParts:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    local = {"local_files_only": True}
    weights = {"local_files_only": True, "use_safetensors": True}
    loaders: dict[str, tuple[Any, dict[str, Any]]] = {
        "tokenizer": (CLIPTokenizer, local),
        "text_encoder": (CLIPTextModel, weights),
        "vae": (AutoencoderKL, weights),
        "unet": (UNet2DConditionModel, weights),
        "noise_scheduler": (DDPMScheduler, local),
    }
    loaded = {}
    for name, (cls, kwargs) in loaders.items():
        subfolder = "scheduler" if name == "noise_scheduler" else name
        try:
            loaded[name] = cls.from_pretrained(folder, subfolder=subfolder, **kwargs)
        except (OSError, ValueError) as exc:
            raise TrainConfigError(
                {"pretrained_model": f"cannot load {subfolder} from {folder} (safetensors only): {exc}"}
            ) from exc
    parts = ModelParts(**loaded)
    prediction_type = parts.noise_scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise TrainConfigError(
            {"pretrained_model": f"scheduler prediction_type {prediction_type!r} is not supported; "
             f"supported: {', '.join(PREDICTION_TYPES)}"}
        )  # fmt: skip
    return parts


def weight_dtype(mixed_precision: str) -> torch.dtype:
    """dtype of the frozen weights: half precision under mixed precision, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(str(mixed_precision), torch.float32)
