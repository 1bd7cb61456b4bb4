"""A kohya-format copy of the LoRA: ``<output_name>.kohya.safetensors`` (sd-scripts ``networks.lora``).

Keys (formats.md section 6, kohya SD1.x): for a UNet module at diffusers path ``p``,
``lora_unet_<p with . -> _>.lora_down.weight`` (= PEFT ``lora_A``), ``.lora_up.weight`` (= ``lora_B``)
and ``.alpha``, a 0-d float32 tensor holding ``lora_alpha``. kohya and A1111 scale by ``alpha / rank``
as PEFT scales by ``lora_alpha / r``, so the file must carry ``lora_alpha`` itself -- *not* the rank,
which diffusers' ``convert_state_dict_to_kohya`` writes (it assumes ``lora_alpha == r``) and which
would change the LoRA's strength whenever they differ. Conv LoRA weights keep their 4-D shapes
(kohya's LoCon layout is PEFT's: a k x k down conv, a 1 x 1 up conv).

Only modules whose kohya name tools map back are exported: the SD1.x UNet paths that A1111's
``convert_diffusers_name_to_compvis`` knows (conv_in / conv_out, time_embedding, resnets' convs,
time_emb_proj and conv_shortcut, attentions' proj_in / proj_out / attn1 / attn2 / ff,
down- / upsamplers) -- all of which diffusers' kohya loader also maps (tests check the round trip).
A LoRA on anything else (say ``class_embedding.linear_1`` of a class-conditioned UNet: its kohya
name is mangled by both loaders) is left out with a warning and listed in the header key
``brand_studio.kohya_dropped_modules``; the PEFT file keeps it.

Header: the training metadata (``ss_*``, ``modelspec.*``) plus ``ss_network_module = networks.lora``,
``ss_network_dim`` / ``ss_network_alpha``, ``ss_network_args`` (JSON; kohya's string values, with
``conv_dim`` / ``conv_alpha`` when a k x k conv is trained) and the hashes of this file's own tensor
payload (``sshs_model_hash``, ``modelspec.hash_sha256``). No ``lora_adapter_metadata``: that key
describes PEFT names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.lora import ADAPTER_NAME, UNET_PREFIX, lora_state_dict, payload_sha256, write_atomic

logger = logging.getLogger(__name__)

KOHYA_SUFFIX = ".kohya.safetensors"
NETWORK_MODULE = "networks.lora"
DROPPED_KEY = "brand_studio.kohya_dropped_modules"
_BLOCK = r"(down_blocks\.\d+|mid_block|up_blocks\.\d+)"
#: Diffusers UNet module paths whose kohya names A1111 and diffusers both map back.
EXPRESSIBLE = re.compile(
    r"^(conv_in|conv_out|time_embedding\.linear_[12]"
    rf"|{_BLOCK}\.resnets\.\d+\.(conv1|conv2|time_emb_proj|conv_shortcut)"
    rf"|{_BLOCK}\.attentions\.\d+\.(proj_in|proj_out"
    r"|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))"
    r"|down_blocks\.\d+\.downsamplers\.0\.conv|up_blocks\.\d+\.upsamplers\.0\.conv)$"
)


def kohya_path_for(output_dir: Path, output_name: str) -> Path:
    return Path(output_dir) / f"{output_name}{KOHYA_SUFFIX}"


def kohya_tensors(unet: Any) -> tuple[dict[str, Any], list[str], bool]:
    """``(tensors under kohya names, dropped module paths, whether a k x k conv is included)``."""
    import torch

    config = unet.peft_config[ADAPTER_NAME]
    if config.rank_pattern or config.alpha_pattern:
        raise ValueError("per-module rank/alpha patterns cannot be exported; kohya files have one rank")
    alpha = torch.tensor(float(config.lora_alpha), dtype=torch.float32)
    tensors: dict[str, Any] = {}
    dropped: list[str] = []
    has_conv = False
    for key, tensor in lora_state_dict(unet).items():
        path, kind = key.removeprefix(f"{UNET_PREFIX}.").rsplit(".lora_", 1)
        if not EXPRESSIBLE.match(path):
            if kind == "A.weight":
                dropped.append(path)
            continue
        name = "lora_unet_" + path.replace(".", "_")
        if kind == "A.weight":
            tensors[f"{name}.lora_down.weight"] = tensor
            tensors[f"{name}.alpha"] = alpha.clone()
            has_conv = has_conv or (tensor.dim() == 4 and tuple(tensor.shape[2:]) != (1, 1))
        else:
            tensors[f"{name}.lora_up.weight"] = tensor
    return tensors, sorted(dropped), has_conv


def export_kohya(unet: Any, path: Path, metadata: Mapping[str, str]) -> str | None:
    """Write the kohya copy atomically; return its tensor hash, or None when nothing is exportable."""
    import safetensors.torch

    tensors, dropped, has_conv = kohya_tensors(unet)
    if dropped:
        logger.warning(
            "kohya export leaves out %d LoRA module(s) with no kohya SD1.x name that loaders map back: %s "
            "(the diffusers/PEFT file keeps them)",
            len(dropped), ", ".join(dropped),
        )  # fmt: skip
    if not tensors:
        logger.warning("no LoRA module can be named in kohya's format; %s not written", path.name)
        return None
    config = unet.peft_config[ADAPTER_NAME]
    rank, alpha = str(config.r), str(float(config.lora_alpha))
    tensor_hash = payload_sha256(safetensors.torch.save(tensors))
    header = {
        **metadata,
        "format": "pt",
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": rank,
        "ss_network_alpha": alpha,
        "ss_network_args": json.dumps({"conv_dim": rank, "conv_alpha": alpha} if has_conv else {}),
        "sshs_model_hash": tensor_hash,
        "modelspec.hash_sha256": f"0x{tensor_hash}",
    }
    if dropped:
        header[DROPPED_KEY] = json.dumps(dropped)
    data = safetensors.torch.save(tensors, metadata=header)
    write_atomic(path, data)
    logger.info("saved kohya-format LoRA %s (%d modules)", path, len(tensors) // 3)
    return tensor_hash
