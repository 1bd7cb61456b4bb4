"""Studio generation (seeded noise, recipe, PNG with metadata, blob + DB row) vs a plain diffusers call.

Same model folder, scheduler, steps, size, prompt and seed on both sides; runs alternate so drift
hits both equally; each side is warmed up first. Reports medians and studio/plain ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = 20
PROMPT = "studio product photo of a bottle on wet slate"
SEED = 1234


def run(runs: int = 9, warmup: int = 2) -> dict[str, Any]:
    import diffusers
    import torch

    from studio.api import open_studio
    from studio.schemas import GenerateRequest
    from studio.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        studio = open_studio(Settings(data_dir=Path(tmp) / "data", base_model="builtin:tiny"))
        model = studio.resolve()
        size = model.default_size
        req = GenerateRequest.of(prompt=PROMPT, seed=SEED, num_inference_steps=STEPS, scheduler="Euler",
                                 width=size, height=size)  # fmt: skip
        plain = diffusers.StableDiffusionPipeline.from_pretrained(model.path, use_safetensors=True, local_files_only=True)
        plain.scheduler = diffusers.EulerDiscreteScheduler.from_config(plain.scheduler.config)
        plain.set_progress_bar_config(disable=True)

        def plain_call() -> None:
            plain(PROMPT, num_inference_steps=STEPS, guidance_scale=7.0, width=size, height=size,
                  generator=torch.Generator("cpu").manual_seed(SEED))  # fmt: skip

        def studio_call() -> None:
            studio.generate(req)

        for _ in range(warmup):
            plain_call()
            studio_call()
        plain_t, studio_t = [], []
        for _ in range(runs):
            plain_t.append(_timed(plain_call))
            studio_t.append(_timed(studio_call))
        studio.close()
    ps, ss = statistics.median(plain_t), statistics.median(studio_t)
    return {
        "model": model.ref, "steps": STEPS, "size": f"{size}x{size}", "runs": runs, "device": "cpu",
        "torch_threads": torch.get_num_threads(), "plain_median_s": round(ps, 4), "studio_median_s": round(ss, 4),
        "ratio_studio_over_plain": round(ss / ps, 3),
        "studio_includes": "recipe, A1111 parameters, PNG encode with metadata, blob write+fsync, DB row",
    }  # fmt: skip


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
