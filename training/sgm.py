"""SDXL's original UNet module names (Stability's SGM / generative-models code) for diffusers paths.

kohya files of SDXL LoRAs name UNet modules as SGM's ``UNetModel`` does (formats.md section 6), since
sd-scripts, A1111 and ComfyUI all run SDXL as that model: ``input_blocks.N.i``, ``middle_block.i``,
``output_blocks.N.i``, ``out.2``... This module maps a diffusers ``UNet2DConditionModel`` path to
that name. The block numbering follows from the UNet's layout, not from SDXL's exact shape:

- ``input_blocks.0.0`` is ``conv_in``; then, per down block, one input block per layer
  (``.0`` its resnet, ``.1`` its transformer when the block has attentions) and, except for the
  last block, one holding the downsampler (``.0.op``);
- ``middle_block.0`` / ``.1`` / ``.2`` are the mid block's resnet, transformer, resnet;
- per up block, one output block per layer (``layers_per_block + 1`` of them): ``.0`` resnet,
  ``.1`` transformer, and on the block's last layer (except in the last block) the upsampler
  (``.1.conv`` without attentions, ``.2.conv`` with);
- inside a resnet: ``conv1`` -> ``in_layers.2``, ``conv2`` -> ``out_layers.3``,
  ``time_emb_proj`` -> ``emb_layers.1``, ``conv_shortcut`` -> ``skip_connection``; inside a
  transformer the names are SGM's already (``proj_in``, ``transformer_blocks.N.attn1.to_q`` ...);
- ``time_embedding.linear_1|2`` -> ``time_embed.0|2``, ``add_embedding.linear_1|2`` ->
  ``label_emb.0.0|0.2``, ``conv_out`` -> ``out.2``.

The layout (``unet_layout``) is what the mapping needs from the UNet config; LoRA files of SDXL
UNets carry it in their header (``LAYOUT_KEY``) so a file can be converted without its UNet.

Note: diffusers' kohya loader (``_maybe_map_sgm_blocks_to_diffusers``) reads output-block slot ``.1``
as a transformer, so it misplaces the upsampler of an up block *without* attentions. SDXL has none
(its attention-free up block is the last one, which has no upsampler); the tests check that diffusers
maps every name back for SDXL's layout and the tiny test model's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Header key of a LoRA file holding its UNet's layout (JSON of ``unet_layout``).
LAYOUT_KEY = "brand_studio.unet_layout"
_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "conv_out": "out.2",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
_RESNET_LAYERS = {
    "conv1": "in_layers.2",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_TRANSFORMER_LAYER = re.compile(
    r"^(proj_in|proj_out"
    r"|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))$"
)
_BLOCK_PATH = re.compile(
    r"^((?:down_blocks|up_blocks)\.\d+\.(resnets|attentions|downsamplers|upsamplers)\.\d+"
    r"|mid_block\.(resnets|attentions)\.\d+)\.(.+)$"
)
_MID_WITH_ATTENTION = "UNetMidBlock2DCrossAttn"


def unet_layout(unet_config: Mapping[str, Any]) -> dict[str, Any]:
    """What the SGM numbering depends on: layers per down block and which blocks have attentions."""
    down_types = list(unet_config["down_block_types"])
    per_block = unet_config["layers_per_block"]
    layers = [per_block] * len(down_types) if isinstance(per_block, int) else list(per_block)
    return {
        "layers_per_block": layers,
        "down_attentions": [_has_attentions(t) for t in down_types],
        "up_attentions": [_has_attentions(t) for t in unet_config["up_block_types"]],
        "mid_attention": unet_config.get("mid_block_type", _MID_WITH_ATTENTION) == _MID_WITH_ATTENTION,
    }


def layout_json(unet_config: Mapping[str, Any]) -> str:
    """``unet_layout`` as the header value stored under ``LAYOUT_KEY``."""
    return json.dumps(unet_layout(unet_config), sort_keys=True)


def _has_attentions(block_type: str) -> bool:
    return "Attn" in block_type


def block_names(layout: Mapping[str, Any]) -> dict[str, str]:
    """SGM prefix of every diffusers resnet / attention / down- and upsampler of ``layout``."""
    layers, n = list(layout["layers_per_block"]), len(layout["layers_per_block"])
    names: dict[str, str] = {}
    index = 1
    for i, (count, attentions) in enumerate(zip(layers, layout["down_attentions"], strict=True)):
        for j in range(count):
            names[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{index}.0"
            if attentions:
                names[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{index}.1"
            index += 1
        if i < n - 1:
            names[f"down_blocks.{i}.downsamplers.0"] = f"input_blocks.{index}.0"
            index += 1
    if layout["mid_attention"]:
        names.update({"mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
                      "mid_block.resnets.1": "middle_block.2"})  # fmt: skip
    index = 0
    for i, (count, attentions) in enumerate(zip(reversed(layers), layout["up_attentions"], strict=True)):
        for j in range(count + 1):
            names[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{index}.0"
            if attentions:
                names[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{index}.1"
            if j == count and i < n - 1:
                names[f"up_blocks.{i}.upsamplers.0"] = f"output_blocks.{index}.{2 if attentions else 1}"
            index += 1
    return names


def sgm_path(path: str, blocks: Mapping[str, str]) -> str | None:
    """The SGM name of diffusers UNet module ``path`` (``blocks`` from ``block_names``), or None
    when SGM has no such layer (or the mapping does not cover it)."""
    if path in _TOP_LEVEL:
        return _TOP_LEVEL[path]
    match = _BLOCK_PATH.match(path)
    if match is None or match.group(1) not in blocks:
        return None
    prefix, inner = blocks[match.group(1)], match.group(4)
    kind = match.group(2) or match.group(3)
    if kind == "resnets":
        leaf = _RESNET_LAYERS.get(inner)
    elif kind == "attentions":
        leaf = inner if _TRANSFORMER_LAYER.match(inner) else None
    else:  # SGM's Downsample calls its conv "op", Upsample "conv"
        leaf = ("op" if kind == "downsamplers" else "conv") if inner == "conv" else None
    return None if leaf is None else f"{prefix}.{leaf}"
