"""A kohya-format copy of the LoRA: ``<output_name>.kohya.safetensors`` (sd-scripts ``networks.lora``).

It is written from the trained UNet (``export_kohya``) or from a diffusers/PEFT file that ``save_lora``
wrote, e.g. a checkpoint's ``lora.safetensors`` (``kohya_from_file``); both give the same file.

Keys (formats.md section 6, kohya SD1.x): for a UNet module at diffusers path ``p``,
``lora_unet_<p with . -> _>.lora_down.weight`` (= PEFT ``lora_A``), ``.lora_up.weight`` (= ``lora_B``)
and ``.alpha``, a 0-d float32 tensor holding ``lora_alpha``. kohya and A1111 scale by ``alpha / rank``
as PEFT scales by ``lora_alpha / r``, so the file must carry ``lora_alpha`` itself -- *not* the rank,
which diffusers' ``convert_state_dict_to_kohya`` writes (it assumes ``lora_alpha == r``) and which
would change the LoRA's strength whenever they differ. Conv LoRA weights keep their 4-D shapes
(kohya's LoCon layout is PEFT's: a k x k down conv, a 1 x 1 up conv).

SDXL (formats.md section 6, kohya SDXL): UNet modules get the names of SDXL's original SGM UNet
(``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``, ``lora_unet_middle_block_1_...``,
``lora_unet_output_blocks_...``; sgm.py), which is what sd-scripts writes and A1111 / ComfyUI look up;
the header's ``modelspec.implementation`` is then Stability's generative-models URL.

SD-1.x: only modules whose kohya name tools map back are exported: the SD1.x UNet paths that A1111's
``convert_diffusers_name_to_compvis`` knows (conv_in / conv_out, time_embedding, resnets' convs,
time_emb_proj and conv_shortcut, attentions' proj_in / proj_out / attn1 / attn2 / ff,
down- / upsamplers) -- all of which diffusers' kohya loader also maps (tests check the round trip).
A LoRA on anything else (say ``class_embedding.linear_1`` of a class-conditioned UNet: its kohya
name is mangled by both loaders) is left out with a warning and listed in the header key
``brand_studio.kohya_dropped_modules``; the PEFT file keeps it. SDXL likewise drops what has no SGM
name.

Text encoders (``train_text_encoder``): SD-1.x's as ``lora_te_text_model_encoder_layers_N_self_attn_q_proj``,
SDXL's as ``lora_te1_...`` / ``lora_te2_...`` (text_encoder.py), each ``.alpha`` the encoder LoRA's own.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from training.config import RESERVED_METADATA_KEYS
from training.family import ModelFamily, unet_family
from training.lora import (
    ADAPTER_NAME,
    UNET_PREFIX,
    lora_state_dict,
    payload_sha256,
    text_encoder_state_dict,
    write_atomic,
)
from training.metadata import FAMILIES, header_family
from training.sgm import LAYOUT_KEY, block_names, sgm_path, unet_layout
from training.text_encoder import adapter_rank_alpha, is_text_encoder_key, kohya_text_encoder_tensors

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
#: Maps a diffusers UNet module path to its kohya module path (without ``lora_unet_``), or None.
Namer = Callable[[str], "str | None"]
KohyaTensors = tuple[dict[str, Any], list[str], bool]


def kohya_path_for(output_dir: Path, output_name: str) -> Path:
    return Path(output_dir) / f"{output_name}{KOHYA_SUFFIX}"


def kohya_namer(family: ModelFamily, layout: Mapping[str, Any] | None = None) -> Namer:
    """SD-1.x: the diffusers path itself when loaders map it back; SDXL: the SGM name (needs ``layout``)."""
    if family == "sdxl":
        if layout is None:
            raise ValueError("SDXL kohya names need the UNet's layout (sgm.unet_layout)")
        blocks = block_names(layout)
        return lambda path: sgm_path(path, blocks)
    return lambda path: path if EXPRESSIBLE.match(path) else None


def kohya_tensors(unet: Any, text_encoders: Mapping[str, Any] | None = None) -> KohyaTensors:
    """``(tensors under kohya names, dropped module paths, whether a k x k conv is included)``.

    ``text_encoders`` (key prefix -> text encoder with an adapter) adds their LoRAs.
    """
    config = unet.peft_config[ADAPTER_NAME]
    _check_single_rank(config.rank_pattern, config.alpha_pattern)
    family = unet_family(unet.config)
    namer = kohya_namer(family, unet_layout(unet.config) if family == "sdxl" else None)
    tensors, dropped, has_conv = convert_tensors(lora_state_dict(unet), float(config.lora_alpha), namer)
    encoder_tensors: dict[str, Any] = {}
    alphas: dict[str, float] = {}
    for prefix, encoder in (text_encoders or {}).items():
        encoder_config = encoder.peft_config[ADAPTER_NAME]
        _check_single_rank(encoder_config.rank_pattern, encoder_config.alpha_pattern)
        encoder_tensors.update(text_encoder_state_dict(encoder, prefix))
        alphas[prefix] = float(encoder_config.lora_alpha)
    tensors.update(kohya_text_encoder_tensors(encoder_tensors, alphas, family))
    return tensors, dropped, has_conv


def convert_tensors(peft_tensors: Mapping[str, Any], alpha: float, namer: Namer) -> KohyaTensors:
    """Rename ``unet.<path>.lora_A/B.weight`` tensors to kohya's ``lora_down/up`` and add ``.alpha``."""
    import torch

    alpha_tensor = torch.tensor(float(alpha), dtype=torch.float32)
    tensors: dict[str, Any] = {}
    dropped: list[str] = []
    has_conv = False
    for key, tensor in peft_tensors.items():
        if not key.startswith(f"{UNET_PREFIX}."):
            continue  # the text encoders' (text_encoder.kohya_text_encoder_tensors)
        path, kind = key.removeprefix(f"{UNET_PREFIX}.").rsplit(".lora_", 1)
        kohya_path = namer(path)
        if kohya_path is None:
            if kind == "A.weight":
                dropped.append(path)
            continue
        name = "lora_unet_" + kohya_path.replace(".", "_")
        if kind == "A.weight":
            tensors[f"{name}.lora_down.weight"] = tensor
            tensors[f"{name}.alpha"] = alpha_tensor.clone()
            has_conv = has_conv or (tensor.dim() == 4 and tuple(tensor.shape[2:]) != (1, 1))
        else:
            tensors[f"{name}.lora_up.weight"] = tensor
    return tensors, sorted(dropped), has_conv


def export_kohya(
    unet: Any, path: Path, metadata: Mapping[str, str], text_encoders: Mapping[str, Any] | None = None
) -> str | None:
    """Write the kohya copy atomically; return its tensor hash, or None when nothing is exportable.

    ``text_encoders`` (key prefix -> text encoder with an adapter) adds their LoRAs.
    """
    config = unet.peft_config[ADAPTER_NAME]
    converted = kohya_tensors(unet, text_encoders)
    return _write(path, converted, config.r, config.lora_alpha, metadata, unet_family(unet.config))


def kohya_from_file(
    lora_path: Path, kohya_path: Path, metadata: Mapping[str, str] | None = None
) -> str | None:
    """Convert a diffusers/PEFT LoRA file written by ``save_lora`` into its kohya copy, no UNet needed.

    Text-encoder LoRAs in the file (``text_encoder.`` / ``text_encoder_2.`` keys) are converted too.
    Rank and alpha come from the file's ``lora_adapter_metadata``; the header of the copy is the
    file's own metadata (``ss_*``, ``modelspec.*``...; without the PEFT-only keys) updated with
    ``metadata``, and the family (SD-1.x / SDXL, and SDXL's UNet layout) is read from that header.
    The copy is written atomically with ``export_kohya``'s header conventions; the file of a
    finished run gives the kohya file that run wrote. Returns the copy's tensor hash, or None when
    no module can be named in kohya's format (nothing is written). Raises ``ValueError`` when
    ``lora_path`` is not such a file or ``metadata`` holds keys the export writes itself.
    """
    reserved = sorted(RESERVED_METADATA_KEYS & set(metadata or {}))
    if reserved:
        raise ValueError(f"metadata keys {reserved} are written by the export itself; remove them")
    tensors, header = _read_peft_file(Path(lora_path))
    rank, alpha, encoder_alphas = _adapter_rank_alpha(header, lora_path, tensors)
    merged = {k: v for k, v in header.items() if k not in RESERVED_METADATA_KEYS and k != DROPPED_KEY}
    merged.update(metadata or {})
    family = header_family(merged)
    layout = _header_layout(merged, lora_path) if family == "sdxl" else None
    converted = convert_tensors(tensors, alpha, kohya_namer(family, layout))
    converted[0].update(kohya_text_encoder_tensors(tensors, encoder_alphas, family))
    return _write(Path(kohya_path), converted, rank, alpha, merged, family)


def _check_single_rank(rank_pattern: Any, alpha_pattern: Any) -> None:
    if rank_pattern or alpha_pattern:
        raise ValueError("per-module rank/alpha patterns cannot be exported; kohya files have one rank")


def _read_peft_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The LoRA tensors (UNet, text encoders) and header of a diffusers/PEFT file; ValueError if it is
    not one."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as stream:
        header = dict(stream.metadata() or {})
        tensors = {key: stream.get_tensor(key) for key in stream.keys()}  # noqa: SIM118
    pattern = re.compile(rf"^{UNET_PREFIX}\..+\.lora_[AB]\.weight$")
    foreign = [key for key in tensors if not pattern.match(key) and not is_text_encoder_key(key)]
    if not tensors or foreign or "lora_adapter_metadata" not in header:
        raise ValueError(
            f"{path} is not a UNet LoRA in diffusers/PEFT format as save_lora writes it "
            f"(unet.<module>.lora_A/B.weight tensors and a lora_adapter_metadata header); "
            f"unexpected keys: {foreign[:3]}"
        )
    return tensors, header


def _adapter_rank_alpha(
    header: Mapping[str, str], path: Path, tensors: Mapping[str, Any]
) -> tuple[int, float, dict[str, float]]:
    """``(r, lora_alpha)`` of the UNet and ``lora_alpha`` of each text encoder with tensors in the file,
    from the ``lora_adapter_metadata`` header (LoraConfig keys prefixed ``unet.`` / ``text_encoder.`` ...)."""
    prefixes = sorted({key.split(".", 1)[0] for key in tensors} - {UNET_PREFIX})
    try:
        adapter = json.loads(header["lora_adapter_metadata"])
        rank, alpha = adapter_rank_alpha(adapter, UNET_PREFIX)
        encoder_alphas = {prefix: adapter_rank_alpha(adapter, prefix)[1] for prefix in prefixes}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: lora_adapter_metadata has no usable r / lora_alpha of {', '.join([UNET_PREFIX, *prefixes])} "
            f"({exc})"
        ) from exc
    for prefix in (UNET_PREFIX, *prefixes):
        _check_single_rank(adapter.get(f"{prefix}.rank_pattern"), adapter.get(f"{prefix}.alpha_pattern"))
    return rank, alpha, encoder_alphas


def _header_layout(header: Mapping[str, str], path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(header[LAYOUT_KEY]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} is an SDXL LoRA without a readable {LAYOUT_KEY} header; its SGM (kohya SDXL) names "
            "depend on the UNet's layout, so convert it with export_kohya from the UNet instead"
        ) from exc


def _write(
    path: Path,
    converted: KohyaTensors,
    rank: int,
    alpha: float,
    metadata: Mapping[str, str],
    family: ModelFamily,
) -> str | None:
    """Write the kohya file (export_kohya's header conventions); its tensor hash, or None if empty."""
    import safetensors.torch

    tensors, dropped, has_conv = converted
    if dropped:
        logger.warning(
            "kohya export leaves out %d LoRA module(s) with no kohya name that loaders map back: %s "
            "(the diffusers/PEFT file keeps them)",
            len(dropped), ", ".join(dropped),
        )  # fmt: skip
    if not tensors:
        logger.warning("no LoRA module can be named in kohya's format; %s not written", path.name)
        return None
    rank_text, alpha_text = str(rank), str(float(alpha))
    tensor_hash = payload_sha256(safetensors.torch.save(tensors))
    header = {
        **metadata,
        "format": "pt",
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": rank_text,
        "ss_network_alpha": alpha_text,
        "ss_network_args": json.dumps({"conv_dim": rank_text, "conv_alpha": alpha_text} if has_conv else {}),
        "sshs_model_hash": tensor_hash,
        "modelspec.hash_sha256": f"0x{tensor_hash}",
    }
    implementation = FAMILIES[family].kohya_implementation
    if implementation and "modelspec.sai_model_spec" in metadata:  # SGM names: say so in the model spec
        header["modelspec.implementation"] = implementation
    if dropped:
        header[DROPPED_KEY] = json.dumps(dropped)
    data = safetensors.torch.save(tensors, metadata=header)
    write_atomic(path, data)
    logger.info("saved kohya-format LoRA %s (%d modules)", path, len(tensors) // 3)
    return tensor_hash
