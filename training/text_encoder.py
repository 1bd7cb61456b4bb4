"""The text-encoder LoRA (``train_text_encoder``): attached to the CLIP text encoder(s), named for kohya.

As diffusers' ``train_dreambooth_lora.py`` / ``train_dreambooth_lora_sdxl.py`` do, a peft LoRA goes on
the self-attention projections (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``) of every layer of
the text encoder (SDXL: of both), at ``text_encoder_rank`` / ``text_encoder_alpha`` (default: the
UNet's), and trains with the UNet's LoRA under one optimizer (its own learning rate,
``text_encoder_lr``). SDXL conditions on the *penultimate* hidden states of its first encoder, so that
encoder's last layer cannot learn anything: it gets no LoRA (no dead weights in the file, and no
parameters without gradients, which DDP would refuse).

Text embeddings then change every step and are not cached; the encoders stay on the device.

kohya names (formats.md section 6): ``lora_te_text_model_encoder_layers_0_self_attn_q_proj`` for
SD-1.x's encoder; ``lora_te1_...`` / ``lora_te2_...`` for SDXL's two. ``.alpha`` holds the encoder
LoRA's own ``lora_alpha``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from training.family import ModelFamily
from training.lora import ADAPTER_NAME, TEXT_ENCODER_PREFIXES, TEXT_MODEL

logger = logging.getLogger(__name__)

#: The text-encoder modules that get a LoRA (diffusers' DreamBooth LoRA scripts' choice).
TEXT_ENCODER_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
#: kohya's name prefix of each text encoder's modules, per family.
KOHYA_PREFIXES: dict[tuple[ModelFamily, str], str] = {
    ("sd1", "text_encoder"): "lora_te_",
    ("sdxl", "text_encoder"): "lora_te1_",
    ("sdxl", "text_encoder_2"): "lora_te2_",
}
_LORA_KEY = re.compile(r"^(?P<prefix>text_encoder(?:_2)?)\.(?P<path>.+)\.lora_(?P<kind>[AB])\.weight$")


def text_encoders_of(parts: Any) -> dict[str, Any]:
    """The text encoders of ``parts`` that carry a LoRA, by key prefix (``text_encoder``, ``text_encoder_2``)."""
    found = {prefix: getattr(parts, prefix, None) for prefix in TEXT_ENCODER_PREFIXES}
    return {p: m for p, m in found.items() if m is not None and ADAPTER_NAME in getattr(m, "peft_config", {})}


def attach_text_encoder_lora(
    parts: Any, *, rank: int, alpha: float, gradient_checkpointing: bool
) -> dict[str, Any]:
    """Add a trainable float32 LoRA to each text encoder of ``parts``; return them by key prefix."""
    import torch
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    attached: dict[str, Any] = {}
    for prefix in TEXT_ENCODER_PREFIXES:
        encoder = getattr(parts, prefix, None)
        if encoder is None:
            continue
        targets = _targets(encoder, skip_last=parts.family == "sdxl" and prefix == "text_encoder")
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; a float alpha is kept
            init_lora_weights="gaussian",
            target_modules=targets,
        )
        inject_adapter_in_model(config, encoder, adapter_name=ADAPTER_NAME)  # sets encoder.peft_config
        cast_training_params(encoder, dtype=torch.float32)
        if gradient_checkpointing:
            _enable_checkpointing(encoder)
        encoder.train()
        wrapped = sum(isinstance(module, LoraLayer) for module in encoder.modules())
        logger.info("%s LoRA rank %d alpha %g on %d modules", prefix, rank, alpha, wrapped)
        attached[prefix] = encoder
    return attached


def _targets(encoder: Any, *, skip_last: bool) -> list[str]:
    """Target names: the four projections everywhere, or listed per layer without the last one."""
    if not skip_last:
        return list(TEXT_ENCODER_TARGETS)
    layers = encoder.config.num_hidden_layers
    return [
        f"encoder.layers.{i}.self_attn.{name}" for i in range(layers - 1) for name in TEXT_ENCODER_TARGETS
    ]


def _enable_checkpointing(encoder: Any) -> None:
    kwargs = {"use_reentrant": False}  # the frozen embeddings' outputs need no grad
    if hasattr(encoder, "activation_checkpointing_enable"):  # transformers >= 5 (the old name warns)
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - older transformers
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def load_text_encoder_lora(encoder: Any, tensors: Mapping[str, Any], prefix: str) -> None:
    """Load the ``<prefix>.`` tensors of a file ``save_lora`` wrote into ``encoder``'s adapter.

    Raises ``ValueError`` when they do not fit the adapter (missing or unexpected LoRA tensors).
    """
    from peft import set_peft_model_state_dict

    flat = not hasattr(encoder, "text_model")  # transformers >= 5 dropped that level from CLIPTextModel
    state = {}
    for key, tensor in tensors.items():
        if key.startswith(f"{prefix}."):
            path = key.removeprefix(f"{prefix}.")
            state[path.removeprefix(TEXT_MODEL) if flat else path] = tensor
    result: Any = set_peft_model_state_dict(encoder, state, adapter_name=ADAPTER_NAME)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing or not state:
        raise ValueError(
            f"the {prefix} LoRA does not fit this text encoder (unexpected {result.unexpected_keys[:3]}, "
            f"missing {missing[:3]}, {len(state)} tensors)"
        )


def adapter_rank_alpha(adapter: Mapping[str, Any], prefix: str) -> tuple[int, float]:
    """``(r, lora_alpha)`` of component ``prefix`` from a parsed ``lora_adapter_metadata``."""
    return int(adapter[f"{prefix}.r"]), float(adapter[f"{prefix}.lora_alpha"])


def kohya_text_encoder_tensors(
    peft_tensors: Mapping[str, Any], alphas: Mapping[str, float], family: ModelFamily
) -> dict[str, Any]:
    """Rename the text encoders' ``lora_A/B`` tensors to kohya's ``lora_down/up`` and add ``.alpha``.

    ``peft_tensors`` may hold other (UNet) keys, which are skipped; ``alphas`` maps a key prefix to
    that encoder's ``lora_alpha``.
    """
    import torch

    converted: dict[str, Any] = {}
    for key, tensor in peft_tensors.items():
        match = _LORA_KEY.match(key)
        if match is None:
            continue
        prefix = match["prefix"]
        kohya_prefix = KOHYA_PREFIXES.get((family, prefix))
        if kohya_prefix is None:
            raise ValueError(f"an {family} model has no {prefix}; cannot name {key} for kohya")
        name = kohya_prefix + match["path"].replace(".", "_")
        if match["kind"] == "A":
            converted[f"{name}.lora_down.weight"] = tensor
            converted[f"{name}.alpha"] = torch.tensor(float(alphas[prefix]), dtype=torch.float32)
        else:
            converted[f"{name}.lora_up.weight"] = tensor
    return converted


def is_text_encoder_key(key: str) -> bool:
    """Whether ``key`` is a text-encoder LoRA tensor of a file ``save_lora`` wrote."""
    return _LORA_KEY.match(key) is not None
