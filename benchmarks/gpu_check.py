"""One-shot GPU check: preflight estimate vs measured training memory, and studio generation overhead on CUDA.

``python -m benchmarks.gpu_check --out DIR`` on a CUDA machine (``--tiny``: tiny configs on the CPU, a
smoke run of the same code path). Every model is built from its published config with random weights,
directly on the target device, and saved as an ordinary diffusers folder of fp16 safetensors that the
real loaders read back; nothing is downloaded. Sections, each reported on its own (a failing one prints
its traceback and the others still run), one JSON line each, all collected in ``DIR/gpu_check.json``
(rewritten after every section, so a run cut short keeps what it measured):

1. ``env``: GPU, memory, library versions, whether bitsandbytes' 8-bit AdamW works on the device.
2. ``train_sd15`` / ``train_sdxl``: ``training.preflight.estimate`` of a run vs the peak CUDA memory
   (allocated and reserved) of the real trainer (``training.loop.train``) doing that run: SD-1.5 at
   512 px with AdamW; SDXL at 1024 px with 8-bit AdamW when bitsandbytes works, else AdamW. Both: fp16
   mixed precision, gradient checkpointing, batch 1, cached latents and text embeddings (the defaults),
   LoRA rank of our preset row for that resolution. Peaks are split into setup (load, freeze, caching)
   and training steps; s/step is the median step time after the first.
3. ``generation``: ``Studio.generate`` vs a plain diffusers call on the SD-1.5 folder (512x512, 20 Euler
   steps, CFG 7, fp16 on CUDA), warmed up, alternating, median of N runs (benchmarks/generation.py's
   method).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MB = 2**20
SEED = 1234
PROMPT = "studio product photo of a bottle on wet slate"
#: SDXL base 1.0's text encoders (CLIP ViT-L and OpenCLIP ViT-bigG), VAE and scheduler, as data.
SDXL_TEXT = {"architectures": ["CLIPTextModel"], "hidden_size": 768, "intermediate_size": 3072, "vocab_size": 49408,
             "num_attention_heads": 12, "num_hidden_layers": 12, "projection_dim": 768}  # fmt: skip
SDXL_TEXT_2 = {"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 1280, "intermediate_size": 5120,
               "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280, "hidden_act": "gelu",
               "vocab_size": 49408}  # fmt: skip
SDXL_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
                  "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "timestep_spacing": "leading"}  # fmt: skip
#: tiny SDXL-shaped configs for --tiny (as tests/sdxl_model.py)
TINY_XL_UNET = {"sample_size": 8, "block_out_channels": (32, 64), "layers_per_block": 2,
                "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
                "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "attention_head_dim": (2, 4),
                "use_linear_projection": True, "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
                "cross_attention_dim": 80, "projection_class_embeddings_input_dim": 6 * 8 + 16}  # fmt: skip
TINY_XL_TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 3,
                "projection_dim": 16}  # fmt: skip
TINY_XL_TEXT_2 = {**TINY_XL_TEXT, "hidden_size": 48, "intermediate_size": 53,
                  "architectures": ["CLIPTextModelWithProjection"]}  # fmt: skip


@dataclass(frozen=True)
class Arch:
    """A pipeline architecture as configs: UNet, VAE, text encoder(s); its training and image sizes."""

    family: str  # "sd1" | "sdxl"
    unet: dict[str, Any]
    vae: dict[str, Any]
    texts: tuple[dict[str, Any], ...]
    train_resolution: int
    image_size: int


def architectures(tiny: bool) -> dict[str, Arch]:
    from studio import builtin_model as tiny_sd
    from training.reference import SD15_TEXT, SD15_UNET, SD15_VAE, SDXL_UNET

    if tiny:
        xl_vae = {**tiny_sd.VAE_CONFIG, "scaling_factor": 0.13025, "force_upcast": True}
        return {"sd15": Arch("sd1", tiny_sd.UNET_CONFIG, tiny_sd.VAE_CONFIG, (tiny_sd.TEXT_CONFIG,), 64, 64),
                "sdxl": Arch("sdxl", TINY_XL_UNET, xl_vae, (TINY_XL_TEXT, TINY_XL_TEXT_2), 64, 64)}  # fmt: skip
    xl_vae = {**SD15_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
    return {"sd15": Arch("sd1", SD15_UNET, SD15_VAE, (SD15_TEXT,), 512, 512),
            "sdxl": Arch("sdxl", SDXL_UNET, xl_vae, (SDXL_TEXT, SDXL_TEXT_2), 1024, 1024)}  # fmt: skip


# -- random-weight model folders ------------------------------------------------------------------


def write_model(arch: Arch, device: str, folder: Path) -> dict[str, Any]:
    """Build the pipeline on ``device`` (random weights, fixed seeds) and save it as fp16 safetensors."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from studio.builtin_model import SCHEDULER_CONFIG, tokenizer_vocab

    vocab, merges = tokenizer_vocab()  # byte-level CLIP tokenizer (no merges), fully local
    ids = {"bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
           "pad_token_id": vocab["<|endoftext|>"]}  # fmt: skip
    start = time.perf_counter()
    with torch.device(device):
        torch.manual_seed(SEED)
        parts: dict[str, Any] = {"unet": diffusers.UNet2DConditionModel(**arch.unet),
                                 "vae": diffusers.AutoencoderKL(**arch.vae)}  # fmt: skip
        for i, cfg in enumerate(arch.texts):
            text = {"vocab_size": len(vocab), "max_position_embeddings": 77, "layer_norm_eps": 1e-5,
                    **{k: v for k, v in cfg.items() if k != "architectures"}, **ids}  # fmt: skip
            with_projection = "CLIPTextModelWithProjection" in cfg.get("architectures", ())
            model = (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(
                CLIPTextConfig(**text)
            )
            suffix = f"_{i + 1}" if i else ""
            parts[f"text_encoder{suffix}"] = model.eval()
            parts[f"tokenizer{suffix}"] = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    if arch.family == "sdxl":
        pipe: Any = diffusers.StableDiffusionXLPipeline(
            scheduler=diffusers.EulerDiscreteScheduler(**SDXL_SCHEDULER), **parts
        )
    else:
        pipe = diffusers.StableDiffusionPipeline(scheduler=diffusers.DDIMScheduler(**SCHEDULER_CONFIG), **parts,
                                                 safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)  # fmt: skip
    pipe.to(torch.float16)
    _sync()
    built = time.perf_counter()
    pipe.save_pretrained(folder, safe_serialization=True)
    saved = time.perf_counter()
    params = {
        name: sum(p.numel() for p in m.parameters()) for name, m in parts.items() if hasattr(m, "parameters")
    }
    del pipe, parts
    _free()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {"path": str(folder), "params_m": {k: round(v / 1e6, 1) for k, v in params.items()},
            "folder_mb": round(size / MB), "build_s": round(built - start, 2), "save_s": round(saved - built, 2)}  # fmt: skip


def write_dataset(folder: Path, size: int, n: int = 4) -> Path:
    """``n`` square photos (a coloured product on a plain ground) with captions, at the training size."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.new("RGB", (size, size), (20 + 40 * i, 120, 200))
        ImageDraw.Draw(im).rectangle(
            [size // 8 + i, size // 6, size // 2 + i, size * 5 // 6], fill=(250, 200, 0)
        )
        im.save(folder / f"img_{i}.png")
        (folder / f"img_{i}.txt").write_text("a photo of acm_bottle bottle")
    return folder


# -- device memory --------------------------------------------------------------------------------


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def peak_since_reset() -> dict[str, float]:
    """Peak allocated / reserved CUDA MB since the last reset, then reset (CPU: the process's peak RSS)."""
    import torch

    if not torch.cuda.is_available():
        return {"peak_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    _sync()
    peak = {"allocated": round(torch.cuda.max_memory_allocated() / MB, 1),
            "reserved": round(torch.cuda.max_memory_reserved() / MB, 1)}  # fmt: skip
    torch.cuda.reset_peak_memory_stats()
    return peak


def device_used_mb() -> dict[str, float]:
    """What the GPU says is in use (all processes, CUDA context included) next to this process's reserved."""
    import torch

    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    used, reserved = (total - free) / MB, torch.cuda.memory_reserved() / MB
    return {"device_used": round(used, 1), "reserved_now": round(reserved, 1),
            "allocated_now": round(torch.cuda.memory_allocated() / MB, 1),
            "context_and_other": round(used - reserved, 1)}  # fmt: skip


# -- 1. environment -------------------------------------------------------------------------------


def check_env(device: str) -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    versions = {}
    for dist in ("torch", "diffusers", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors",
                 "pydantic", "sqlalchemy", "numpy"):  # fmt: skip
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    out: dict[str, Any] = {"python": platform.python_version(), "versions": versions, "device": device,
                           "torch_cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads()}  # fmt: skip
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, total_mb=round(props.total_memory / MB), capability=f"{props.major}.{props.minor}",
                   bf16=torch.cuda.is_bf16_supported(), **device_used_mb())  # fmt: skip
    out["adamw8bit"] = probe_adamw8bit(device)
    return out


def probe_adamw8bit(device: str) -> str:
    """Return "ok" when bitsandbytes' AdamW8bit takes a step on ``device``, else why not."""
    try:
        import torch

        from training.optim import build_optimizer

        p = torch.nn.Parameter(torch.randn(64, 64, device=device))
        opt = build_optimizer([p], "adamw8bit", 1e-3)
        p.grad = torch.randn_like(p)
        opt.step()
        _sync()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means: measure with AdamW instead
        return f"unavailable: {type(exc).__name__}: {exc}"[:300]


# -- 2. training memory: preflight estimate vs the real trainer ------------------------------------


def preset_rank(family: str, resolution: int) -> tuple[int, str]:
    """The LoRA rank of the lowest preset tier training ``family`` at ``resolution`` with batch 1,
    checkpointing and half precision (the CPU row when none does, e.g. at --tiny sizes)."""
    from studio.train_presets import TABLE, TIERS

    for tier in TIERS[1:]:
        row = TABLE.get((family, tier))
        if row and (row.resolution, row.batch, row.checkpointing, row.half) == (resolution, 1, True, True):
            return row.rank, tier
    return TABLE[(family, "cpu")].rank, "cpu"


@contextlib.contextmanager
def step_probes(steps: list[dict[str, Any]], marks: dict[str, Any]) -> Iterator[None]:
    """Wrap the trainer's setup boundary and micro-step (``training.loop`` internals) to take the peak
    memory of setup (load, freeze, caching) and of every step, and time the steps; restored after."""
    from training import loop

    prepare, micro_step = loop._prepare_optimization, loop._micro_step

    def prepare_probe(*args: Any, **kwargs: Any) -> Any:
        marks["setup"] = peak_since_reset()
        marks["setup_s"] = time.perf_counter()
        return prepare(*args, **kwargs)

    def micro_step_probe(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        loss, lr = micro_step(*args, **kwargs)  # it reads the loss with .item(): the device is synced
        steps.append({"s": time.perf_counter() - start, "loss": loss, **peak_since_reset()})
        return loss, lr

    loop._prepare_optimization, loop._micro_step = prepare_probe, micro_step_probe  # type: ignore[assignment]
    try:
        yield
    finally:
        loop._prepare_optimization, loop._micro_step = prepare, micro_step  # type: ignore[assignment]


def check_training(
    arch: Arch, model: Path, device: str, work: Path, optimizer: str, steps: int
) -> dict[str, Any]:
    from training import TrainConfig
    from training.loop import train
    from training.preflight import estimate

    rank, tier = preset_rank(arch.family, arch.train_resolution)
    config = TrainConfig(
        pretrained_model=str(model), output_dir=str(work / "out"), max_train_steps=steps, seed=SEED,
        data_dir=str(write_dataset(work / "photos", arch.train_resolution)), resolution=arch.train_resolution,
        train_batch_size=1, rank=rank, alpha=float(rank), optimizer=optimizer,  # type: ignore[arg-type]
        mixed_precision="fp16" if device == "cuda" else "bf16", gradient_checkpointing=True,
    )  # fmt: skip
    est = estimate(config, device)
    _free()
    baseline = device_used_mb()
    peak_since_reset()
    measured: list[dict[str, Any]] = []
    marks: dict[str, Any] = {}
    start = time.perf_counter()
    error = None
    with step_probes(measured, marks):
        try:
            result: Any = train(config)
        except Exception as exc:  # noqa: BLE001 - keep the peaks measured so far
            traceback.print_exc()
            result, error = None, f"{type(exc).__name__}: {exc}"[:2000]
    after = device_used_mb()
    out: dict[str, Any] = {
        "family": arch.family, "resolution": config.resolution, "batch": 1, "rank": rank, "preset_tier": tier,
        "optimizer": optimizer, "mixed_precision": config.mixed_precision, "gradient_checkpointing": True,
        "cache_latents": config.cache_latents, "cache_text_embeddings": config.cache_text_embeddings,
        "steps": result.steps if result else len(measured), "final_loss": result.final_loss if result else None,
        "estimate_mb": {"peak": est.peak_mb, "weights": est.weights_mb, "lora_state": est.lora_state_mb,
                        "activations": est.activations_mb, "caching_phase": est.caching_phase_mb,
                        "overhead": est.overhead_mb,
                        "train_phase": round(est.weights_mb + est.lora_state_mb + est.activations_mb, 1)},
        "measured_setup_mb": marks.get("setup"), "measured_steps_mb": [{k: v for k, v in s.items() if k != "s"}
                                                                        for s in measured],
        "device_before_mb": baseline, "device_after_mb": after,
        "setup_s": round(marks.get("setup_s", start) - start, 2), "train_wall_s": round(time.perf_counter() - start, 2),
        "s_per_step": [round(s["s"], 4) for s in measured],
    }  # fmt: skip
    out.update(summarise(out, measured))
    if error:
        out["error"] = error
    shutil.rmtree(work / "out", ignore_errors=True)
    return out


def summarise(out: dict[str, Any], measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak of setup and steps, and the ratios estimate / measured (allocated; reserved + CUDA context),
    net of what was allocated before the run (should be ~0: earlier sections free their models)."""
    timed = [s["s"] for s in measured[1:]] or [s["s"] for s in measured]
    summary: dict[str, Any] = {"s_per_step_median": round(statistics.median(timed), 4) if timed else None}
    setup = out["measured_setup_mb"] or {}
    if "allocated" not in setup:
        return summary
    est = out["estimate_mb"]
    steps_alloc = max(s["allocated"] for s in measured) if measured else 0.0
    steps_reserved = max(s["reserved"] for s in measured) if measured else 0.0
    before = out["device_before_mb"].get("allocated_now", 0.0)
    steps_alloc, setup_alloc = steps_alloc - before, setup["allocated"] - before
    peak_alloc, peak_reserved = max(setup_alloc, steps_alloc), max(setup["reserved"], steps_reserved) - before
    context = out["device_after_mb"].get("context_and_other", 0.0)  # CUDA context (+ any other process)
    summary.update(
        measured_peak_mb={"allocated": peak_alloc, "reserved": peak_reserved, "steps_allocated": steps_alloc,
                          "steps_reserved": steps_reserved, "setup_allocated": setup_alloc,
                          "reserved_plus_context": round(peak_reserved + context, 1)},
        ratio_estimate_over_allocated=_ratio(est["peak"], peak_alloc),
        ratio_estimate_over_reserved_plus_context=_ratio(est["peak"], peak_reserved + context),
        ratio_train_phase_estimate_over_steps_allocated=_ratio(est["train_phase"], steps_alloc),
        ratio_caching_phase_estimate_over_setup_allocated=_ratio(est["caching_phase"], setup_alloc),
    )  # fmt: skip
    return summary


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


# -- 3. generation overhead: Studio.generate vs plain diffusers ------------------------------------


def check_generation(
    model: Path, device: str, size: int, work: Path, runs: int, warmup: int
) -> dict[str, Any]:
    import diffusers
    import torch

    dtype = "float16" if device == "cuda" else "float32"
    os.environ.update(
        BRAND_STUDIO_BASE_MODEL=str(model), BRAND_STUDIO_DEVICE=device, BRAND_STUDIO_DTYPE=dtype
    )
    from studio.api import open_studio
    from studio.schemas import GenerateRequest
    from studio.settings import Settings

    studio = open_studio(Settings(data_dir=work / "studio-data"))
    req = GenerateRequest.of(prompt=PROMPT, seed=SEED, num_inference_steps=20, scheduler="Euler", width=size,
                             height=size, guidance_scale=7.0)  # fmt: skip
    plain = diffusers.StableDiffusionPipeline.from_pretrained(
        model, use_safetensors=True, local_files_only=True, dtype=getattr(torch, dtype)
    ).to(device)
    plain.scheduler = diffusers.EulerDiscreteScheduler.from_config(plain.scheduler.config)
    plain.set_progress_bar_config(disable=True)
    pipes = {"plain": plain}  # dropped in the end, so the GPU memory is free for the next section
    del plain

    def plain_call() -> None:
        pipes["plain"](PROMPT, num_inference_steps=20, guidance_scale=7.0, width=size, height=size,
              generator=torch.Generator("cpu").manual_seed(SEED))  # fmt: skip

    try:
        for _ in range(warmup):
            plain_call()
            studio.generate(req)
        plain_t, studio_t = [], []
        for _ in range(runs):
            plain_t.append(_timed(plain_call))
            studio_t.append(_timed(lambda: studio.generate(req)))
        studio_runs_on = _studio_device(studio)
        memory = device_used_mb()
    finally:
        with contextlib.suppress(Exception):
            studio.engine().unload()
        studio.close()
        pipes.clear()
        _free()
    ps, ss = statistics.median(plain_t), statistics.median(studio_t)
    return {"size": f"{size}x{size}", "steps": 20, "scheduler": "Euler", "guidance_scale": 7.0, "runs": runs,
            "warmup": warmup, "studio_runs_on": studio_runs_on, "plain_runs_on": f"{device} {dtype}",
            "plain_median_s": round(ps, 4), "studio_median_s": round(ss, 4),
            "ratio_studio_over_plain": round(ss / ps, 3), "overhead_s": round(ss - ps, 4),
            "plain_s": [round(t, 4) for t in plain_t], "studio_s": [round(t, 4) for t in studio_t],
            "memory_mb": memory,
            "studio_includes": "recipe, A1111 parameters, PNG encode with metadata, blob write+fsync, DB row"}  # fmt: skip


def _studio_device(studio: Any) -> str:
    """Device and dtype of the studio engine's cached pipeline, e.g. "cuda:0 torch.float16"."""
    try:
        pipe = studio.engine().pipeline(Path(studio.resolve().path))
        return f"{pipe.device} {pipe.unet.dtype}"
    except Exception as exc:  # noqa: BLE001 - the engine's internals may change; the timings still count
        return f"unknown ({type(exc).__name__}: {exc})"


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


# -- driver ---------------------------------------------------------------------------------------


class Report:
    """Runs sections, prints one JSON line each and keeps ``gpu_check.json`` up to date."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path, self.budget_s, self.start = path, budget_s, time.perf_counter()
        self.results: list[dict[str, Any]] = []

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def section(
        self, name: str, fn: Callable[[], dict[str, Any]], needs_s: float = 0.0
    ) -> dict[str, Any] | None:
        if self.left_s() < needs_s:
            return self._record(
                {"section": name, "skipped": f"{self.left_s():.0f} s left, needs ~{needs_s:.0f} s"}
            )
        print(f"[gpu_check +{time.perf_counter() - self.start:.0f}s] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = {"section": name, **fn()}
        except Exception as exc:  # noqa: BLE001 - report it and go on with the other sections
            traceback.print_exc()
            self._record({"section": name, "error": f"{type(exc).__name__}: {exc}"[:2000],
                          "traceback": traceback.format_exc()[-4000:], "wall_s": round(time.perf_counter() - start, 2)})  # fmt: skip
            return None
        result["wall_s"] = round(time.perf_counter() - start, 2)
        return self._record(result)

    def _record(self, result: dict[str, Any]) -> dict[str, Any]:
        self.results.append(result)
        print(json.dumps(result, default=str), flush=True)
        self.path.write_text(json.dumps(self.results, indent=1, default=str))
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny configs on the CPU (smoke run of the same path)"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json")
    parser.add_argument(
        "--steps", type=int, default=6, help="optimizer steps per training run (first untimed)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed generations per side")
    parser.add_argument("--budget-s", type=float, default=330.0, help="skip sections that would overrun this")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    faulthandler.dump_traceback_later(args.budget_s + 60, exit=False)  # where it hangs, if it does
    device = "cpu" if args.tiny else "cuda"
    report = Report(args.out / "gpu_check.json", args.budget_s)
    env = report.section("env", lambda: check_env(device)) or {}
    if device == "cuda" and not _cuda():
        return 1
    archs = architectures(args.tiny)
    xl_optimizer = "adamw8bit" if env.get("adamw8bit") == "ok" else "adamw"
    warmup, runs = (1, 1) if args.tiny else (2, args.runs)
    steps = min(args.steps, 3) if args.tiny else args.steps
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        sd15 = report.section(
            "build_sd15", lambda: write_model(archs["sd15"], device, work / "sd15"), needs_s=60
        )
        if sd15:
            sd15_dir = Path(sd15["path"])
            report.section("train_sd15", lambda: check_training(archs["sd15"], sd15_dir, device, work / "t15",
                                                                 "adamw", steps), needs_s=45)  # fmt: skip
            report.section("generation", lambda: check_generation(sd15_dir, device, archs["sd15"].image_size,
                                                                  work, runs, warmup), needs_s=45)  # fmt: skip
            shutil.rmtree(sd15_dir, ignore_errors=True)
        xl = report.section(
            "build_sdxl", lambda: write_model(archs["sdxl"], device, work / "sdxl"), needs_s=130
        )
        if xl:
            report.section("train_sdxl", lambda: check_training(archs["sdxl"], Path(xl["path"]), device,
                                                                work / "txl", xl_optimizer, steps), needs_s=60)  # fmt: skip
    failed = [r["section"] for r in report.results if "error" in r]
    print(json.dumps({"section": "done", "failed": failed, "total_s": round(time.perf_counter() - report.start, 1)}),
          flush=True)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
