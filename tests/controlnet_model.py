"""A tiny ControlNet for tests: ``ControlNetModel.from_unet`` of the tiny base model's UNet.

``from_unet`` copies the UNet's encoder and starts the "zero convolutions" (and the last layer of the
conditioning embedding) at zero, so a fresh ControlNet changes nothing. Here they get small fixed
random weights (torch seed), so conditioning visibly changes pixels and the edges matter. Saved with
``safe_serialization``: an ordinary diffusers folder (``config.json`` +
``diffusion_pytorch_model.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

SEED = 2468


def build_tiny_controlnet(unet: object, seed: int = SEED) -> object:
    """A ControlNet shaped like ``unet``'s encoder, with non-zero zero-convolutions (same seed, same weights)."""
    import torch
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed)
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]  # fmt: skip
    with torch.no_grad():
        for conv in zero_convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.1)
            conv.bias.zero_()
    return controlnet.eval()


def write_tiny_controlnet(folder: Path, model_dir: Path) -> Path:
    """Write the tiny ControlNet for the diffusers model in ``model_dir`` into ``folder`` and return it."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet", use_safetensors=True)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_controlnet(unet).save_pretrained(folder, safe_serialization=True)  # type: ignore[attr-defined]
    return folder
