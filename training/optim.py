"""Optimizer and learning-rate schedule for the LoRA parameters."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

WEIGHT_DECAY = 1e-2
LR_SCHEDULER = "constant_with_warmup"
#: bitsandbytes keeps the Adam state of tensors smaller than ``min_8bit_size`` (default 4096
#: elements) in 32 bit. LoRA tensors are small (rank 4 on a 320-wide SD-1.5 layer is 1280
#: elements), so with the default most of a LoRA would silently train with 32-bit state. Every
#: tensor of at least this many elements gets 8-bit state.
MIN_8BIT_SIZE = 64


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | list[dict[str, Any]], name: str, learning_rate: float
) -> Any:
    """``bitsandbytes.optim.AdamW8bit`` (``adamw8bit``), ``torch.optim.AdamW`` (``adamw``) or
    ``transformers.optimization.Adafactor`` (``adafactor``).

    ``params`` is a list of parameters, or of param groups (``{"params": [...], "lr": ...}``: the
    UNet's and the text encoders' LoRA with their own learning rates); ``learning_rate`` is the default.

    Adafactor runs with the given learning rate as is: ``relative_step=False`` (no built-in
    schedule), ``scale_parameter=False`` (no scaling by each tensor's RMS, which is 0 for LoRA's
    zero-initialised ``lora_B``) and ``warmup_init=False`` -- kohya's recommended LoRA settings.
    """
    groups: list[Any] = [{**g, "params": list(g["params"])} if isinstance(g, dict) else g for g in params]
    if not groups or any(isinstance(g, dict) and not g["params"] for g in groups):
        raise ValueError("no trainable parameters: the LoRA adapter was not attached")
    if name == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(
            groups, lr=learning_rate, weight_decay=WEIGHT_DECAY, min_8bit_size=MIN_8BIT_SIZE
        )
    if name == "adamw":
        import torch

        return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            groups, lr=learning_rate, relative_step=False, scale_parameter=False, warmup_init=False
        )
    raise ValueError(f"unknown optimizer {name!r}; use 'adamw8bit', 'adamw' or 'adafactor'")


def describe_optimizer(optimizer: Any) -> str:
    """kohya-style ``ss_optimizer`` text: ``bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01,...)``."""
    cls = type(optimizer)
    args = [f"weight_decay={optimizer.defaults.get('weight_decay')}"]
    bnb_args = getattr(optimizer, "args", None)  # bitsandbytes optimizers keep their settings here
    if bnb_args is not None and hasattr(bnb_args, "min_8bit_size"):
        args.append(f"min_8bit_size={bnb_args.min_8bit_size}")
    for key in ("relative_step", "scale_parameter", "warmup_init"):  # Adafactor
        if key in optimizer.defaults:
            args.append(f"{key}={optimizer.defaults[key]}")
    return f"{cls.__module__}.{cls.__name__}({','.join(args)})"


def build_lr_scheduler(optimizer: Any, *, warmup_steps: int, total_steps: int, num_processes: int) -> Any:
    """Constant LR after a linear warmup (diffusers ``get_scheduler``).

    Accelerate steps a prepared scheduler once per process per optimizer step, hence the
    ``num_processes`` factor (as in diffusers' training scripts).
    """
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        LR_SCHEDULER,
        optimizer=optimizer,
        num_warmup_steps=warmup_steps * num_processes,
        num_training_steps=total_steps * num_processes,
    )
