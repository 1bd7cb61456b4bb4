"""Write a diffusers SD-1.x folder as an original (LDM / A1111 / Civitai-style) single-file checkpoint.

Test-only: it lets the single-file path be tested offline on the tiny model. The key layout is the
public one of Stable Diffusion's original checkpoints (``model.diffusion_model.*``,
``first_stage_model.*``, ``cond_stage_model.transformer.*``), generalised to any number of blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
          ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]  # fmt: skip
VAE_RESNET = [("conv_shortcut", "nin_shortcut")]
VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _unet_prefix_map(config: dict) -> list[tuple[str, str]]:
    layers = config["layers_per_block"]
    n = len(config["block_out_channels"])
    pairs = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0."),
             ("mid_block.resnets.1.", "middle_block.2.")]  # fmt: skip
    for i in range(n):
        for j in range(layers):
            k = i * (layers + 1) + j + 1
            pairs += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0."),
                      (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1.")]  # fmt: skip
        if i < n - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (layers + 1)}.0.op."))
        has_attn = "CrossAttn" in config["up_block_types"][i]
        for j in range(layers + 1):
            k = i * (layers + 1) + j
            pairs += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0."),
                      (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1.")]  # fmt: skip
        if i < n - 1:
            k = i * (layers + 1) + layers
            pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{k}.{2 if has_attn else 1}."))
    return pairs


def _rename(key: str, prefixes: list[tuple[str, str]], inner: list[tuple[str, str]]) -> str:
    for new, old in prefixes:
        if key.startswith(new):
            rest = key[len(new):]
            for a, b in inner:
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
            return old + rest
    raise KeyError(key)


def _vae_prefix_map(config: dict) -> list[tuple[str, str]]:
    n = len(config["block_out_channels"])
    pairs = [("encoder.mid_block.resnets.0.", "encoder.mid.block_1."), ("encoder.mid_block.resnets.1.", "encoder.mid.block_2."),
             ("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."), ("encoder.conv_norm_out.", "encoder.norm_out."),
             ("decoder.mid_block.resnets.0.", "decoder.mid.block_1."), ("decoder.mid_block.resnets.1.", "decoder.mid.block_2."),
             ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1."), ("decoder.conv_norm_out.", "decoder.norm_out."),
             ("encoder.conv_in.", "encoder.conv_in."), ("encoder.conv_out.", "encoder.conv_out."),
             ("decoder.conv_in.", "decoder.conv_in."), ("decoder.conv_out.", "decoder.conv_out."),
             ("quant_conv.", "quant_conv."), ("post_quant_conv.", "post_quant_conv.")]  # fmt: skip
    for i in range(n):
        for j in range(config["layers_per_block"]):
            pairs.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}."))
        pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv."))
        for j in range(config["layers_per_block"] + 1):
            pairs.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}."))
        pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{n - 1 - i}.upsample.conv."))
    return pairs


def write_ldm_checkpoint(folder: Path, target: Path) -> Path:
    """Convert ``folder`` (a diffusers SD-1.x pipeline) into one original-layout ``.safetensors``."""
    out: dict[str, torch.Tensor] = {}
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    for key, value in load_file(folder / "unet" / "diffusion_pytorch_model.safetensors").items():
        out["model.diffusion_model." + _rename(key, _unet_prefix_map(unet_cfg), RESNET)] = value
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    for key, value in load_file(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        new = _rename(key, _vae_prefix_map(vae_cfg), VAE_RESNET + VAE_ATTN)
        if ".attn_1." in new and value.ndim == 2:
            value = value[:, :, None, None]  # LDM's VAE attention uses 1x1 convolutions
        out["first_stage_model." + new] = value
    for key, value in load_file(folder / "text_encoder" / "model.safetensors").items():
        # transformers 5 saves CLIPTextModel keys without the "text_model." prefix the originals carry
        out["cond_stage_model.transformer." + (key if key.startswith("text_model.") else "text_model." + key)] = value
    save_file({k: v.contiguous() for k, v in out.items()}, str(target), metadata={"format": "pt"})
    return target
