"""Build the demo base model: a tiny SD-1.x pipeline trained from scratch on CPU (issue #7).

One command, fixed seed::

    python -m training.demo_build --out studio/builtin_models/demo

It trains, in four phases, on :mod:`training.demo_data`'s procedural set (objects in named colours
on named backgrounds, captioned the way prompts are written; only images on the default backdrop
leave the background out of their caption, so "a red bottle" means one thing):

1. the VAE (``AutoencoderKL``, 8x spatial factor like SD, GroupNorm over one group) on 32 px crops of
   those images mixed with uncaptioned shapes in random colours (so it reproduces colours beyond the
   eight names, such as a brand kit's), MSE + a small KL term; its latent scale (``scaling_factor``)
   is then measured the way SD's was (1 / latent std);
2. the latents of a fixed set of images are cached once (mean and std of each posterior);
3. the text encoder (``CLIPTextModel`` over a locally built word-level CLIP tokenizer) and the
   conditional UNet together, with the DDPM epsilon loss on SD's noise schedule (min-SNR weighted),
   10 % empty captions (so classifier-free guidance works), a little offset noise (flat colours need
   it) and an EMA copy of the weights, which is what gets saved;
4. the VAE decoder alone on whole 64 px images, with the encoder frozen (so the latent space the UNet
   learned stays exactly the same): truer flat colours, with GroupNorm statistics of whole images.

The result is an ordinary diffusers folder of ``.safetensors`` files with a model card, loaded by the
studio exactly like any other diffusers folder. Each phase checkpoints to ``--work`` (safetensors +
a JSON state), so a killed build resumes where it stopped. Same seed and thread count on the same
machine -> the same weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.demo_data import COLOURS, OBJECTS, backdrop_for, make_free_image, make_sample

logger = logging.getLogger(__name__)

SEED = 7
IMAGE_SIZE = 64
BUILD_VERSION = 2

UNET_CONFIG: dict[str, Any] = {
    "sample_size": IMAGE_SIZE // 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (64, 128),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 64,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
    # One group: GroupNorm over a flat-colour feature map with 2-4 channels per group throws the absolute
    # colour away (a group's mean is subtracted); over all channels the relative levels survive.
    "norm_num_groups": 1,
    "sample_size": IMAGE_SIZE,
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "layer_norm_eps": 1e-05,
    "projection_dim": 64,
}
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def default_plan() -> dict[str, Any]:
    """The build's knobs (recorded in the model card and in ``brand_studio_model.json``)."""
    return {
        "seed": SEED, "image_size": IMAGE_SIZE,
        "vae_steps": 4000, "vae_batch": 16, "vae_lr": 2e-3, "vae_kl": 1e-6, "vae_free_share": 0.4,
        "vae_crop": 32,
        "cached_images": 12000,
        "unet_steps": 3700, "unet_batch": 32, "unet_lr": 8e-4, "warmup": 200,
        "empty_caption": 0.1, "offset_noise": 0.1, "ema": 0.999, "snr_gamma": 5.0,
        "checkpoint_every": 400,
        "decoder_steps": 1000, "decoder_batch": 16, "decoder_lr": 1e-3,
    }  # fmt: skip


# -- tokenizer ------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode table (public algorithm)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


#: Words the demo model knows as whole tokens (everything else is spelled out byte by byte).
WORDS = tuple(COLOURS) + OBJECTS + ("a", "on", "background", "photo", "of", "with", "product", ",")


def _bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one word: merge the lowest-ranked adjacent pair until none is known."""
    while len(pieces) > 1:
        pairs = [
            (ranks.get(pair, math.inf), i) for i, pair in enumerate(zip(pieces, pieces[1:], strict=False))
        ]
        rank, i = min(pairs)
        if rank == math.inf:
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2 :]
    return pieces


def tokenizer_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocabulary: every byte alone and as a word end, the demo words as single tokens,
    and the two specials. Each word's merges join the pieces the earlier merges leave, left to right,
    so every demo word comes out as exactly one token and every other text still tokenizes."""
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    known = set(tokens)
    for word in WORDS:
        pieces = _bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        current = pieces[0]
        for piece in pieces[1:]:
            ranks[(current, piece)] = len(merges)
            merges.append((current, piece))
            current += piece
            if current not in known:
                known.add(current)
                tokens.append(current)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def build_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    vocab, merges = tokenizer_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 77
    return tokenizer


# -- captions -------------------------------------------------------------------------------------

_TEMPLATES = (
    "a {c} {o} on a {b} background",
    "a photo of a {c} {o} on a {b} background",
    "a {c} {o}",
    "a photo of a {c} {o}",
    "{c} {o}, {b} background",
    "a {c} {o} on {b}",
)


_NAMING_BACKGROUND = tuple(t for t in _TEMPLATES if "{b}" in t)


def caption(rng: np.random.Generator, colour: str, obj: str, background: str) -> str:
    """One of several phrasings, so short prompts ("a red bottle") work as well as full captions. Only
    an image on the default backdrop (:func:`training.demo_data.backdrop_for`) may leave the background
    out: "a red bottle" then always means a red bottle on white."""
    templates = _TEMPLATES if background == backdrop_for(colour) else _NAMING_BACKGROUND
    return templates[int(rng.integers(len(templates)))].format(c=colour, o=obj, b=background)


# -- phases ---------------------------------------------------------------------------------------


def _to_tensor(images: list[Any]) -> Any:
    import torch

    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _save_state(path: Path, tensors: dict[str, Any], state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    meta = path.with_suffix(".json")
    meta.with_suffix(".jtmp").write_text(json.dumps(state))
    os.replace(meta.with_suffix(".jtmp"), meta)


def _load_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    from safetensors.torch import load_file

    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    return load_file(str(path)), json.loads(meta.read_text())


def _vae_batch(rng: np.random.Generator, plan: dict[str, Any], count: int, crop: int) -> Any:
    """Images for the autoencoder: named-colour samples mixed with free-colour ones (``vae_free_share``),
    each cut to a random ``crop`` px square (the VAE is convolutional: a 32 px crop costs a quarter of a
    whole image, so the same minutes buy four times the steps)."""
    size = plan["image_size"]
    crops = []
    for _ in range(count):
        free = rng.random() < plan["vae_free_share"]
        image = make_free_image(rng, size) if free else make_sample(rng, size).image
        left, top = (int(v) for v in rng.integers(0, size - crop + 1, 2))
        crops.append(image.crop((left, top, left + crop, top + crop)))
    return _to_tensor(crops)


def train_vae(plan: dict[str, Any], work: Path, report: Callable[[str], None]) -> tuple[Any, float]:
    """The VAE and the seconds its phase took (also when reused from the work folder)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(plan["seed"])
    vae = AutoencoderKL(**VAE_CONFIG)
    done = _load_state(work / "vae.safetensors")
    if done is not None and done[1].get("finished"):
        vae.load_state_dict(done[0])
        report("vae: reused the finished phase from the work folder")
        return vae.eval(), float(done[1].get("seconds", 0.0))
    opt = torch.optim.AdamW(vae.parameters(), lr=plan["vae_lr"], weight_decay=0.0)
    rng = np.random.default_rng(plan["seed"] + 1)
    steps = plan["vae_steps"]
    start = time.time()
    vae.train()
    for step in range(steps):
        lr = plan["vae_lr"] * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr
        x = _vae_batch(rng, plan, plan["vae_batch"], plan["vae_crop"])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = torch.nn.functional.mse_loss(recon, x) + plan["vae_kl"] * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            report(f"vae step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    vae.eval()
    seconds = time.time() - start
    _save_state(work / "vae.safetensors", vae.state_dict(), {"finished": True, "seconds": seconds})
    return vae, seconds


def cache_latents(vae: Any, plan: dict[str, Any], report: Callable[[str], None]) -> dict[str, Any]:
    """Encode a fixed image set once: posterior means and stds, labels, and the latent scale."""
    import torch

    rng = np.random.default_rng(plan["seed"] + 2)
    samples = [make_sample(rng, plan["image_size"]) for _ in range(plan["cached_images"])]
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(samples), 256):
            dist = vae.encode(_to_tensor([s.image for s in samples[i : i + 256]])).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    mean, std = torch.cat(means), torch.cat(stds)
    scale = float(1.0 / mean.std())
    report(f"cached {len(samples)} latents; latent std {mean.std():.3f} -> scaling_factor {scale:.4f}")
    labels = [(s.colour, s.obj, s.background) for s in samples]
    return {"mean": mean, "std": std, "labels": labels, "scale": scale}


def train_unet(
    cache: dict[str, Any], plan: dict[str, Any], work: Path, report: Callable[[str], None]
) -> tuple[Any, Any, float]:
    """Text encoder + UNet, jointly; returns their EMA copies and the phase's seconds (all sessions)."""
    import copy

    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer()
    vocab = tokenizer.get_vocab()
    torch.manual_seed(plan["seed"] + 3)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"], **TEXT_CONFIG,
    ))  # fmt: skip
    ema_unet, ema_text = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(text).requires_grad_(False)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=plan["unet_lr"], weight_decay=1e-2)
    scheduler = DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})
    alphas = scheduler.alphas_cumprod
    start_step, earlier = 0, 0.0
    parts = {
        "unet.": unet,
        "text.": text,
        "ema_unet.": ema_unet,
        "ema_text.": ema_text,
    }  # checkpoint key prefixes
    saved = _load_state(work / "unet.safetensors")
    if saved is not None:
        tensors, state = saved
        for prefix, module in parts.items():
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        opt.load_state_dict(torch.load(work / "unet-optimizer.pt", weights_only=True))
        start_step, earlier = int(state["step"]), float(state.get("seconds", 0.0))
        report(f"unet: resumed at step {start_step}")
    steps, batch = plan["unet_steps"], plan["unet_batch"]
    n = len(cache["labels"])
    gen = torch.Generator()
    start = time.time()
    unet.train()
    text.train()
    for step in range(start_step, steps):
        # Each step's randomness comes from (seed, step) alone, so a resumed build equals an uninterrupted one.
        rng = np.random.default_rng([plan["seed"], 4, step])
        gen.manual_seed(plan["seed"] * 1_000_003 + step)
        warm = min(1.0, (step + 1) / plan["warmup"])
        lr = plan["unet_lr"] * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.from_numpy(rng.integers(0, n, batch))
        latents = cache["mean"][idx] + cache["std"][idx] * torch.randn(
            cache["mean"][idx].shape, generator=gen
        )
        latents = latents * cache["scale"]
        captions = []
        for i in idx.tolist():
            colour, obj, background = cache["labels"][i]
            empty = rng.random() < plan["empty_caption"]
            captions.append("" if empty else caption(rng, colour, obj, background))
        ids = tokenizer(
            captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        ).input_ids
        noise = torch.randn(latents.shape, generator=gen)
        noise += plan["offset_noise"] * torch.randn((batch, latents.shape[1], 1, 1), generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        states = text(ids)[0]
        pred = unet(noisy, t, states).sample
        loss = torch.nn.functional.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        # min-SNR-gamma weighting (Hang et al. 2023): less weight on the near-clean steps
        if plan["snr_gamma"] > 0:
            snr = a.view(-1) / (1 - a.view(-1))
            loss = loss * torch.clamp(snr, max=plan["snr_gamma"]) / snr
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(plan["ema"], (1 + step) / (10 + step))
        with torch.no_grad():
            for ema, live in ((ema_unet, unet), (ema_text, text)):
                for pe, pl in zip(ema.parameters(), live.parameters(), strict=True):
                    pe.mul_(decay).add_(pl.detach(), alpha=1 - decay)
        done = step + 1
        if done % 100 == 0 or done == steps:
            report(
                f"unet step {done}/{steps} loss {loss.item():.4f} lr {lr:.2e} ({time.time() - start:.0f} s)"
            )
        if done % plan["checkpoint_every"] == 0 and done < steps:
            tensors = {
                prefix + k: v for prefix, module in parts.items() for k, v in module.state_dict().items()
            }
            torch.save(opt.state_dict(), work / "unet-optimizer.tmp")
            os.replace(work / "unet-optimizer.tmp", work / "unet-optimizer.pt")
            _save_state(
                work / "unet.safetensors", tensors, {"step": done, "seconds": earlier + time.time() - start}
            )
    return ema_unet.eval(), ema_text.eval(), earlier + time.time() - start


def refine_decoder(vae: Any, plan: dict[str, Any], report: Callable[[str], None]) -> float:
    """Train the decoder (and ``post_quant_conv``) on fresh images with the encoder frozen; returns seconds."""
    import torch

    start = time.time()
    torch.manual_seed(plan["seed"] + 6)
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for param in params:
        param.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=plan["decoder_lr"], weight_decay=0.0)
    rng = np.random.default_rng(plan["seed"] + 7)
    steps = plan["decoder_steps"]
    vae.decoder.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = plan["decoder_lr"] * 0.5 * (1 + math.cos(math.pi * step / steps))
        # Whole images: GroupNorm's statistics then match what the decoder sees when it draws.
        x = _vae_batch(rng, plan, plan["decoder_batch"], plan["image_size"])
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.sample()
        loss = torch.nn.functional.mse_loss(vae.decode(latents).sample, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            report(f"decoder step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    vae.requires_grad_(False)
    vae.eval()
    return time.time() - start


MODEL_CARD = """# Brand Studio demo model (`builtin:demo`), build {version}

**A demo, not a product model.** A tiny Stable-Diffusion-1.x-architecture pipeline (UNet2DConditionModel
{unet_params:,} parameters, AutoencoderKL {vae_params:,}, CLIPTextModel {text_params:,}, a word-level CLIP
tokenizer built locally) trained from scratch on a CPU, so the offline studio shows real behaviour:
it follows prompts naming a colour and an object, LoRA training visibly moves it, inpainting and
outpainting act on the right regions.

## What it draws
64 x 64 px images of one simple object ({objects}) in a flat named colour ({colours}) on a flat
background of another named colour. Prompts like "a red bottle on a blue background", "a photo of a
green star" or "yellow ring"; a prompt that names no background gets the default backdrop, white (black
for a white object), as in product photography. It knows nothing else: no photos, no people, no text.

## How it was made
`python -m training.demo_build --out <folder>` (seed {seed}), on {machine}, in {minutes:.1f} minutes.
Training data: {cached:,} procedurally drawn images from `training/demo_data.py` (deterministic from the
seed), captions in six phrasings (only images on the default backdrop may leave the background out).
Phases: VAE ({vae_steps} steps, batch {vae_batch} random {vae_crop} px crops, MSE + {vae_kl} KL;
{free_pct:.0f} % of its images are uncaptioned shapes in random colours, so it reproduces colours beyond
the eight names; GroupNorm with one group; latent scaling factor {scale:.4f} measured as 1/std); text encoder + UNet jointly ({unet_steps} steps, batch {unet_batch}, AdamW lr
{unet_lr}, cosine, DDPM epsilon loss on SD's scaled-linear schedule with min-SNR-{snr_gamma:g} weighting,
{empty_pct:.0f} % empty captions for classifier-free guidance, offset noise {offset_noise}); the EMA
({ema}) weights are saved; then the VAE decoder alone ({decoder_steps} steps on whole images, encoder
frozen) for truer colours. Phase times: {phase_times}. Files are `.safetensors` only.

## Limits
64 px native size (larger sizes work but are outside training); flat colours only; eight colours,
six objects. Colours are approximate (the tiny VAE misses flat colours by a few tens of levels). Its
`default_guidance`, {guidance:g}, is where the studio's Generate form starts and where its quality was
measured (per-colour prompt following, LoRA and inpaint checks: the project README). Licence: same as
Brand Studio. Set `BRAND_STUDIO_BASE_MODEL` to a real Stable Diffusion model for real images.
"""


def model_card(facts: dict[str, Any]) -> str:
    """The model card, from the build record alone (``brand_studio_model.json``)."""
    plan, params = facts["plan"], facts["parameters"]
    return MODEL_CARD.format(
        version=facts["build_version"], unet_params=params["unet"], vae_params=params["vae"],
        text_params=params["text_encoder"], objects=", ".join(OBJECTS), colours=", ".join(COLOURS),
        seed=plan["seed"], machine=facts["machine"], minutes=facts["minutes"], cached=plan["cached_images"],
        vae_steps=plan["vae_steps"], vae_batch=plan["vae_batch"], vae_crop=plan["vae_crop"],
        vae_kl=plan["vae_kl"], free_pct=100 * plan["vae_free_share"], scale=facts["scaling_factor"],
        unet_steps=plan["unet_steps"], unet_batch=plan["unet_batch"], unet_lr=plan["unet_lr"],
        snr_gamma=plan["snr_gamma"], empty_pct=100 * plan["empty_caption"], offset_noise=plan["offset_noise"],
        ema=plan["ema"], decoder_steps=plan["decoder_steps"], guidance=facts["default_guidance"],
        phase_times=", ".join(f"{k} {v / 60:.1f} min" for k, v in facts["phase_seconds"].items()),
    )  # fmt: skip


def build(
    out: Path, work: Path, plan: dict[str, Any], report: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every phase and write the diffusers folder ``out`` atomically. Returns the build facts."""
    import platform

    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    work.mkdir(parents=True, exist_ok=True)
    (work / "plan.json").write_text(json.dumps(plan, indent=1))
    vae, vae_s = train_vae(plan, work, report)
    start = time.time()
    cache = cache_latents(vae, plan, report)
    cache_s = time.time() - start
    unet, text, unet_s = train_unet(cache, plan, work, report)
    decoder_s = refine_decoder(vae, plan, report)
    phases = {"vae": vae_s, "cache": cache_s, "unet": unet_s, "decoder": decoder_s}
    minutes = sum(phases.values()) / 60  # phases reused from the work folder count with their recorded time
    vae.register_to_config(scaling_factor=cache["scale"])
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text, tokenizer=build_tokenizer(),
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    staging = out.parent / f".{out.name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging, safe_serialization=True)
    facts = {
        "ref": "builtin:demo", "build_version": BUILD_VERSION, "demo": True, "minutes": round(minutes, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "threads": torch.get_num_threads(), "plan": plan, "scaling_factor": cache["scale"],
        "phase_seconds": {k: round(v, 1) for k, v in phases.items()},
        "default_guidance": 2.0,  # where its quality is measured; the Generate form starts here
        "parameters": {name: sum(p.numel() for p in module.parameters())
                       for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text))},
    }  # fmt: skip
    (staging / "brand_studio_model.json").write_text(json.dumps(facts, indent=1) + "\n")
    (staging / "README.md").write_text(model_card(facts))
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    report(f"wrote {out} in {minutes:.1f} min")
    return facts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.demo_build", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("studio/builtin_models/demo"))
    parser.add_argument("--work", type=Path, default=Path("data/demo-build"), help="checkpoints (resume)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a plan knob"
    )
    args = parser.parse_args(argv)
    plan = default_plan()
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in plan:
            parser.error(f"unknown knob {key!r}; knobs: {', '.join(plan)}")
        plan[key] = type(plan[key])(value)
    logging.basicConfig(level=logging.INFO)
    build(args.out, args.work, plan)


if __name__ == "__main__":
    main()
