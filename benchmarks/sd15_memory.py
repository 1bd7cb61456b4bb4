"""Peak memory of ONE LoRA training step at full SD-1.5 UNet size (random weights from the SD-1.5 UNet
config, 512 px -> 64x64 latents, batch 1): our memory settings (gradient checkpointing, LoRA-only
gradients, 8-bit AdamW states) vs none of them (plain AdamW, no checkpointing). Each side runs in its own
process; on CPU the figure is peak RSS, on CUDA peak allocated VRAM. Latents and text embeddings are
random tensors of the right shape, as if cached (the VAE and text encoder are not loaded on either side).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

from training.reference import SD15_UNET, SDXL_UNET


def run(runs: int = 1) -> dict[str, Any]:
    sides = {side: _side(side) for side in ("plain", "ours")}
    device = sides["ours"]["device"]
    for side in sides.values():
        side["estimate_over_measured"] = round(side["preflight_estimate_mb"] / side["peak_mb"], 3)
    return {
        "unet": "SD-1.5 config, random weights", "resolution": 512, "batch": 1, **sides,
        "peak_ratio_ours_over_plain": round(sides["ours"]["peak_mb"] / sides["plain"]["peak_mb"], 3),
        "sdxl_1024_estimate_mb": _sdxl_estimates(device),
    }  # fmt: skip


def _estimate(unet_config: dict[str, Any], device: str, **settings: Any) -> float:
    """The trainer's preflight estimate (training.preflight) for a UNet config, rank 16, no VAE / text
    encoder resident (as in this step: inputs as if cached)."""
    import tempfile
    from pathlib import Path

    from training.config import TrainConfig
    from training.preflight import estimate

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "unet").mkdir()
        (Path(tmp) / "unet" / "config.json").write_text(json.dumps(unet_config))
        config = TrainConfig(pretrained_model=tmp, data_dir="", output_dir="", rank=16, alpha=16.0, **settings)
        return estimate(config, device).peak_mb


def _sdxl_estimates(device: str) -> dict[str, float]:
    """Estimated (not measured) peaks of one SDXL LoRA step at 1024 px, batch 1, on CUDA."""
    del device
    return {
        "fp16_checkpointing_8bit": _estimate(SDXL_UNET, "cuda", resolution=1024, mixed_precision="fp16",
                                             gradient_checkpointing=True),
        "fp32_plain_adamw": _estimate(SDXL_UNET, "cuda", resolution=1024, optimizer="adamw"),
    }  # fmt: skip


def _side(side: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.sd15_memory", side], capture_output=True, text=True,
                          check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _step(ours: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    from training.config import DEFAULT_TARGET_MODULES

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).requires_grad_(False)
    unet.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian",
                                target_modules=list(DEFAULT_TARGET_MODULES)))  # fmt: skip
    if ours:
        unet.enable_gradient_checkpointing()
    unet.train().to(device)
    params = [p for p in unet.parameters() if p.requires_grad]
    if ours:
        import bitsandbytes as bnb

        opt: Any = bnb.optim.AdamW8bit(params, lr=1e-4, min_8bit_size=64)
    else:
        opt = torch.optim.AdamW(params, lr=1e-4)
    latents = torch.randn(1, 4, 64, 64, device=device)
    cond = torch.randn(1, 77, 768, device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = torch.tensor([500], device=device)
    loss = F.mse_loss(unet(latents, t, cond).sample, torch.randn_like(latents))
    loss.backward()
    opt.step()
    opt.zero_grad()
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    settings = {"gradient_checkpointing": True} if ours else {"optimizer": "adamw"}
    return {"device": device, "peak_mb": round(peak, 1), "lora_params": sum(p.numel() for p in params),
            "preflight_estimate_mb": _estimate(SD15_UNET, device, **settings)}  # fmt: skip


if __name__ == "__main__":
    sys.stdout.write(json.dumps(_step(sys.argv[1] == "ours")) + "\n")
