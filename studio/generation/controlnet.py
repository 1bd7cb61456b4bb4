"""Load a ControlNet from a local diffusers folder or a single ``.safetensors`` file, safetensors only.

A single file may use diffusers' key names (``controlnet_cond_embedding.*``) or the original
ControlNet release's (``control_model.input_blocks.*``, or the same without the prefix); the
architecture is taken from the base model's UNet (``ControlNetModel.from_unet``), so no config has to
be downloaded, and every tensor must fit it exactly. Pickle files are never opened: the studio refuses
them before a path gets here, and ``safetensors`` cannot unpickle anything anyway.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def load_controlnet(path: Path, unet: Any) -> Any:
    """The ``ControlNetModel`` at ``path`` (a folder or a file), checked against the base ``unet``."""
    from diffusers import ControlNetModel

    if path.is_dir():
        try:
            model = ControlNetModel.from_pretrained(path, use_safetensors=True, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"could not load the ControlNet in {path.name}: {exc}") from exc
    else:
        model = _from_single_file(path, unet)
    check_fits(model, unet, path.name)
    check_finite(model, path.name)
    return model.eval()


def _from_single_file(path: Path, unet: Any) -> Any:
    """Build the architecture from the UNet's config and load the file's tensors into it, strictly."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path.name} is not a readable .safetensors file: {exc}") from exc
    template = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    try:
        converted = convert_controlnet_checkpoint(state, dict(template.config))
    except (KeyError, ValueError, IndexError) as exc:
        raise ValueError(f"{path.name} is not a ControlNet this base model can use: {exc}") from exc
    try:
        result = template.load_state_dict(converted, strict=False)
    except RuntimeError as exc:  # shape mismatch: made for another architecture
        raise ValueError(f"{path.name} does not fit this base model ({_first_line(exc)})") from exc
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path.name} does not fit this base model: {len(result.missing_keys)} weights missing, "
            f"{len(result.unexpected_keys)} unexpected (e.g. {(result.missing_keys or result.unexpected_keys)[0]}); "
            "was it made for another Stable Diffusion family?"
        )
    return template


def check_fits(model: Any, unet: Any, name: str) -> None:
    """The ControlNet must read the same text embeddings and conditioning as the base UNet."""
    for key in ("cross_attention_dim", "addition_embed_type", "in_channels"):
        mine, base = model.config.get(key), unet.config.get(key)
        if key == "in_channels":
            base = 4 if base == 9 else base  # an inpainting UNet's latents are still 4 channels
        if mine != base:
            raise ValueError(
                f"ControlNet {name} was made for a different base model ({key} {mine}, this model has "
                f"{base}); pick a ControlNet of the same family (SD 1.x or SDXL)"
            )


def check_finite(model: Any, name: str) -> None:
    """Refuse NaN/Inf weights: they would silently draw black images."""
    import torch

    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"ControlNet {name} contains invalid values (NaN/Inf in {key}); re-download it")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[1].strip() if len(text) > 1 else (text[0] if text else type(exc).__name__)
