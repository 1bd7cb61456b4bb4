"""Switching between two loaded LoRAs with the Engine vs reloading the pipeline and the LoRA each time.

Two LoRA files (rank 8 on the attention projections, random non-zero weights) for the built-in tiny
model; both sides use the same device, dtype (float32) and torch threads. Two measurements:

- **switch only** (the headline): what the engine does to change LoRA on its cached pipeline
  (``Engine._apply_loras``: ``enable_lora`` + ``set_adapters``, step 2 of ``Engine.generate``),
  alternating A and B (both loaded once in the warm-up), vs what a process without a pipeline cache
  must do for the same change: ``DiffusionPipeline.from_pretrained`` + ``load_lora_weights``.
- **switch + 1-step generation**: ``Engine.generate`` alternating A/B vs the reload plus the same
  1-step pipeline call at the model's size (on the tiny model the step is cheap, so this ratio shows
  how much of a real request the reload would be; at SD sizes the step dominates both).

Also reported: the engine repeating one LoRA (no switch). Sides alternate; warm-up first; medians.
The benchmark runs torch on 1 thread: on a shared 2-core machine two OpenMP threads spin against
other processes and make CPU timings 10x noisier.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPT = "studio product photo of a bottle on wet slate"
SEED = 1234
RANK = 8


def make_lora(model_path: Path, target: Path, seed: int) -> Path:
    """A LoRA file for ``model_path``'s UNet with random (non-zero) weights, in our diffusers format."""
    import torch
    from diffusers import UNet2DConditionModel

    from training import save_lora
    from training.lora import attach_lora

    unet = UNet2DConditionModel.from_pretrained(model_path, subfolder="unet", local_files_only=True)
    attach_lora(unet, rank=RANK, alpha=float(RANK), target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    save_lora(unet, target, {"ss_output_name": target.stem})
    return target


def run(runs: int = 9, warmup: int = 2) -> dict[str, Any]:
    import torch
    from diffusers import DiffusionPipeline

    from studio.api import open_studio
    from studio.generation.engine import Engine, GenerationJob, LoraSpec, resolve_device
    from studio.settings import Settings

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        studio = open_studio(Settings(data_dir=Path(tmp) / "data", base_model="builtin:tiny"))
        model = studio.resolve()
        size = model.default_size
        loras = [make_lora(model.path, Path(tmp) / f"lora_{name}.safetensors", seed) for seed, name in enumerate("ab")]
        device = resolve_device("auto")
        engine = Engine(device=device, dtype="float32")

        def job(index: int) -> GenerationJob:
            return GenerationJob(model_path=model.path, prompt=PROMPT, negative_prompt="", scheduler="Euler",
                                 num_inference_steps=1, guidance_scale=7.0, width=size, height=size, seeds=(SEED,),
                                 loras=(LoraSpec(key=f"l{index}", path=loras[index], weight=1.0),))  # fmt: skip

        def reload(index: int) -> Any:
            pipe = DiffusionPipeline.from_pretrained(model.path, use_safetensors=True, local_files_only=True)
            pipe.set_progress_bar_config(disable=True)
            pipe = pipe.to(device)
            pipe.load_lora_weights(str(loras[index]), adapter_name=f"l{index}")
            with torch.inference_mode():
                return pipe(PROMPT, num_inference_steps=1, guidance_scale=7.0, width=size, height=size,
                            generator=torch.Generator("cpu").manual_seed(SEED)).images[0]  # fmt: skip

        a_img, b_img = (engine.generate(job(i)).images[0].pixel_sha256 for i in (0, 1))
        assert a_img != b_img, "the two LoRAs must change the image (else nothing was switched)"
        pipe = engine.pipeline(model.path)

        def switch(index: int) -> None:
            with torch.inference_mode():  # as inside Engine.generate
                engine._apply_loras(pipe, job(index).loras)

        def reload_only(index: int) -> Any:
            loaded = DiffusionPipeline.from_pretrained(model.path, use_safetensors=True, local_files_only=True)
            loaded.to(device).load_lora_weights(str(loras[index]), adapter_name=f"l{index}")
            return loaded

        for _ in range(warmup):
            engine.generate(job(0)), engine.generate(job(1)), reload(0), reload_only(1)
        times: dict[str, list[float]] = {k: [] for k in ("switch", "reload_only", "switch_gen", "same_gen", "reload_gen")}
        for r in range(runs):
            x = r % 2
            times["switch"].append(_timed(lambda x=x: switch(x)))
            times["reload_only"].append(_timed(lambda x=x: reload_only(x)))
            engine.generate(job(1 - x))  # the other LoRA is active before each timed switch
            times["switch_gen"].append(_timed(lambda x=x: engine.generate(job(x))))
            times["same_gen"].append(_timed(lambda x=x: engine.generate(job(x))))  # the same LoRA: no switch
            times["reload_gen"].append(_timed(lambda x=x: reload(x)))
            switch(1 - x)  # the next timed switch changes LoRA again
        studio.close()
    torch.set_num_threads(threads)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": model.ref, "size": f"{size}x{size}", "lora_rank": RANK, "runs": runs, "device": device,
        "torch_threads": 1, "load_average_1min": round(os.getloadavg()[0], 2),
        "switch_only_median_s": round(med["switch"], 5), "reload_only_median_s": round(med["reload_only"], 4),
        "ratio_reload_over_switch": round(med["reload_only"] / med["switch"], 1),
        "engine_switch_1step_median_s": round(med["switch_gen"], 4),
        "engine_same_lora_1step_median_s": round(med["same_gen"], 4),
        "reload_1step_median_s": round(med["reload_gen"], 4),
        "ratio_reload_over_engine_switch_1step": round(med["reload_gen"] / med["switch_gen"], 1),
    }  # fmt: skip


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
