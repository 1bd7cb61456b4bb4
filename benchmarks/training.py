"""Our trainer vs a plain diffusers+peft LoRA loop (no caching) on the same tiny model and data.

The plain loop uses torch AdamW, so "ours-adamw" is the like-for-like comparison; "ours-adamw8bit"
is our default optimizer (bitsandbytes 8-bit state: a GPU memory saver that is slow on CPU).

Each side runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own; both train the same
LoRA targets, rank, resolution, batch size and steps; the first steps are a warm-up and not timed.
Reports steps/s and peak memory, and the ratios ours/plain.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS, WARMUP, RESOLUTION, BATCH, RANK = 30, 5, 64, 4, 8


def _dataset(folder: Path, n: int = 8) -> Path:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.new("RGB", (96, 96), (20, 120, 200))
        ImageDraw.Draw(im).rectangle([10 + 3 * i, 15, 50 + 3 * i, 80], fill=(250, 200, 0))
        im.save(folder / f"img_{i}.png")
        (folder / f"img_{i}.txt").write_text("a photo of acm_bottle bottle")
    return folder


def run(runs: int = 1) -> dict[str, Any]:
    from studio.builtin_model import materialize_builtin

    with tempfile.TemporaryDirectory() as tmp:
        model = materialize_builtin(Path(tmp) / "models")
        data = _dataset(Path(tmp) / "data")
        sides = ("plain", "ours-adamw", "ours-adamw8bit")
        results = {side: _side(side, model, data, Path(tmp) / side) for side in sides}
    plain = results["plain"]
    out: dict[str, Any] = {"model": "builtin:tiny", "steps_timed": STEPS - WARMUP, "resolution": RESOLUTION,
                           "batch": BATCH, "rank": RANK, **results}  # fmt: skip
    for side in sides[1:]:
        out[f"speedup_{side}_over_plain"] = round(results[side]["steps_per_s"] / plain["steps_per_s"], 3)
        out[f"peak_rss_ratio_{side}_over_plain"] = round(results[side]["peak_rss_mb"] / plain["peak_rss_mb"], 3)
    return out


def _side(side: str, model: Path, data: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "benchmarks.training", side, str(model), str(data), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ours(model: Path, data: Path, out: Path, optimizer: str) -> list[float]:
    from training import TrainConfig, train

    stamps: list[float] = []
    config = TrainConfig(pretrained_model=str(model), data_dir=str(data), output_dir=str(out), resolution=RESOLUTION,
                         train_batch_size=BATCH, max_train_steps=STEPS, learning_rate=1e-3, rank=RANK,
                         alpha=float(RANK), optimizer=optimizer)  # type: ignore[arg-type]
    train(config, progress=lambda p: stamps.append(time.perf_counter()))
    return stamps


def _plain(model: Path, data: Path, out: Path) -> list[float]:
    """The diffusers example-script way: encode images and captions on every step."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    from training.config import DEFAULT_TARGET_MODULES

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    te = CLIPTextModel.from_pretrained(model, subfolder="text_encoder").requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae").requires_grad_(False)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet").requires_grad_(False)
    sched = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian",
                                target_modules=list(DEFAULT_TARGET_MODULES)))  # fmt: skip
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    images = sorted(data.glob("*.png"))
    pixels = torch.stack([
        torch.from_numpy(__import__("numpy").asarray(Image.open(p).convert("RGB").resize((RESOLUTION, RESOLUTION))))
        .permute(2, 0, 1).float() / 127.5 - 1 for p in images])  # fmt: skip
    captions = [p.with_suffix(".txt").read_text() for p in images]
    stamps = []
    for step in range(STEPS):
        idx = [(step * BATCH + i) % len(images) for i in range(BATCH)]
        with torch.no_grad():
            latents = vae.encode(pixels[idx]).latent_dist.sample() * vae.config.scaling_factor
            ids = tok([captions[i] for i in idx], padding="max_length", max_length=77, truncation=True,
                      return_tensors="pt").input_ids  # fmt: skip
            cond = te(ids)[0]
        noise = torch.randn_like(latents)
        t = torch.randint(0, sched.config.num_train_timesteps, (BATCH,))
        pred = unet(sched.add_noise(latents, noise, t), t, cond).sample
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        opt.step()
        opt.zero_grad()
        stamps.append(time.perf_counter())
    return stamps


def main() -> None:
    side, model, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    stamps = _plain(model, data, out) if side == "plain" else _ours(model, data, out, side.split("-", 1)[1])
    timed = stamps[WARMUP:]
    steps_per_s = (len(timed) - 1) / (timed[-1] - timed[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps({"steps_per_s": round(steps_per_s, 3), "peak_rss_mb": round(peak, 1)}) + "\n")


if __name__ == "__main__":
    main()
