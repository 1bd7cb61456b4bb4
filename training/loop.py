"""The LoRA training loop: SD-1.x UNet, epsilon / v-prediction noise loss, one Accelerator per run."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from training.config import TrainConfig, TrainConfigError
from training.dataset import ImageCaptionDataset, find_examples
from training.lora import attach_lora, file_tensor_sha256, save_lora
from training.metadata import PREDICTION_TYPES, RunFacts, training_metadata
from training.optim import build_lr_scheduler, build_optimizer, describe_optimizer

logger = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became inf/nan; the run stops and writes no LoRA."""


@dataclass
class TrainProgress:
    step: int
    total_steps: int
    loss: float
    lr: float
    elapsed_s: float


@dataclass
class TrainResult:
    lora_path: Path
    sha256: str  #: SHA-256 of the whole file (changes with header timestamps)
    steps: int  #: optimizer steps done (< max_train_steps when stopped early)
    losses: list[float]  #: mean loss of each optimizer step
    final_loss: float  #: last entry of ``losses`` (nan when no step ran)
    elapsed_s: float
    tensor_sha256: str  #: SHA-256 of the tensor payload: same weights -> same hash (= sshs_model_hash)


@dataclass
class _Parts:
    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any


@dataclass
class _Run:
    """Everything the step loop works with."""

    config: TrainConfig
    accelerator: Any
    parts: _Parts
    unet: Any  # the accelerate-prepared UNet (parts.unet is the bare one)
    optimizer: Any
    loader: Any
    lr_scheduler: Any
    weight_dtype: torch.dtype
    clock_start: float
    progress: Callable[[TrainProgress], None] | None
    should_stop: Callable[[], bool] | None
    losses: list[float] = field(default_factory=list)


def train(
    config: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a UNet LoRA as ``config`` says and save it to ``<output_dir>/<output_name>.safetensors``.

    ``progress`` is called after every optimizer step; ``should_stop`` is asked before every
    optimizer step and, when it returns True, training ends early and the LoRA of the steps done
    so far is saved. Exceptions from either callback abort the run without writing a file.
    """
    from accelerate.utils import set_seed

    # 1. Validate the config (fields, model folder, images + captions) before loading anything.
    config.validate()
    examples = find_examples(Path(config.data_dir))
    started_at, clock_start = time.time(), time.perf_counter()

    # 2. A fresh Accelerator for this run, then seed every RNG (python, numpy, torch).
    accelerator = _make_accelerator(config)
    set_seed(config.seed)

    # 3. Load the model parts, freeze them, attach the LoRA (the only trainable weights).
    parts, weight_dtype = _load_frozen_with_lora(config, accelerator)

    # 4. Data, optimizer and LR schedule, handed to accelerate (device placement, sharding, AMP).
    loader = _make_loader(examples, config)
    optimizer = build_optimizer(
        [p for p in parts.unet.parameters() if p.requires_grad], config.optimizer, config.learning_rate
    )
    lr_scheduler = build_lr_scheduler(
        optimizer,
        warmup_steps=config.lr_warmup_steps,
        total_steps=config.max_train_steps,
        num_processes=accelerator.num_processes,
    )
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(parts.unet, optimizer, loader, lr_scheduler)
    run = _Run(
        config, accelerator, parts, unet, optimizer, loader, lr_scheduler, weight_dtype,
        clock_start, progress, should_stop,
    )  # fmt: skip

    # 5. Train until max_train_steps or until should_stop() says so.
    steps = _run_steps(run)

    # 6. Save the LoRA (main process) with its metadata and hashes; every process waits for it.
    lora_path = Path(config.output_dir) / f"{config.output_name}.safetensors"
    sha256 = _save(run, lora_path, steps=steps, num_images=len(examples), started_at=started_at)
    accelerator.free_memory()

    # 7. Report.
    elapsed = time.perf_counter() - clock_start
    logger.info("trained %d/%d steps in %.1f s -> %s", steps, config.max_train_steps, elapsed, lora_path)
    return TrainResult(
        lora_path=lora_path,
        sha256=sha256,
        steps=steps,
        losses=list(run.losses),
        final_loss=run.losses[-1] if run.losses else math.nan,
        elapsed_s=elapsed,
        tensor_sha256=file_tensor_sha256(lora_path),
    )


def _load_frozen_with_lora(config: TrainConfig, accelerator: Any) -> tuple[_Parts, torch.dtype]:
    """Load the parts, freeze them (half precision under mixed precision) and add a float32 LoRA."""
    from diffusers.training_utils import cast_training_params

    parts = _load_parts(Path(config.pretrained_model))
    weight_dtype = _weight_dtype(accelerator.mixed_precision)
    for module in (parts.text_encoder, parts.vae, parts.unet):
        module.requires_grad_(False)
        module.to(accelerator.device)
        if weight_dtype != torch.float32:
            module.to(dtype=weight_dtype)
    attach_lora(parts.unet, rank=config.rank, alpha=config.alpha, target_modules=config.target_modules)
    cast_training_params(parts.unet, dtype=torch.float32)
    parts.unet.train()
    return parts, weight_dtype


def _save(run: _Run, lora_path: Path, *, steps: int, num_images: int, started_at: float) -> str:
    """Write the LoRA on the main process; return the file's SHA-256 on every process."""
    accelerator, optimizer = run.accelerator, run.optimizer
    facts = RunFacts(
        num_train_images=num_images,
        steps_done=steps,
        num_processes=accelerator.num_processes,
        optimizer=describe_optimizer(getattr(optimizer, "optimizer", optimizer)),  # unwrap accelerate's
        prediction_type=run.parts.noise_scheduler.config.prediction_type,
        started_at=started_at,
        finished_at=time.time(),
    )
    sha256 = ""
    if accelerator.is_main_process:
        metadata = training_metadata(run.config, facts)
        sha256 = save_lora(accelerator.unwrap_model(run.unet), lora_path, metadata)
    accelerator.wait_for_everyone()
    return sha256 or _file_sha256(lora_path)


def _run_steps(run: _Run) -> int:
    """The optimisation loop; returns the number of optimizer steps done."""
    config, accelerator = run.config, run.accelerator
    trainable = [p for p in run.unet.parameters() if p.requires_grad]
    step = 0
    window: list[float] = []  # losses of the micro-batches of the current optimizer step
    while step < config.max_train_steps:
        for batch in run.loader:
            # Ask between optimizer steps only, so a stop never drops half an accumulation window.
            if not window and run.should_stop is not None and run.should_stop():
                logger.info("stop requested after %d/%d steps", step, config.max_train_steps)
                return step
            with accelerator.accumulate(run.unet):
                loss = _noise_loss(run, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                lr = run.optimizer.param_groups[0]["lr"]
                run.optimizer.step()
                run.lr_scheduler.step()
                run.optimizer.zero_grad(set_to_none=True)
            window.append(accelerator.gather(loss.detach().reshape(1)).mean().item())
            if not accelerator.sync_gradients:
                continue
            step += 1
            run.losses.append(sum(window) / len(window))
            window = []
            if not math.isfinite(run.losses[-1]):
                raise TrainingDivergedError(
                    f"the loss became {run.losses[-1]} at step {step}; nothing was saved. "
                    "Lower learning_rate, or use mixed_precision 'no' or 'bf16' instead of 'fp16'."
                )
            _report(run, step, lr)
            if step >= config.max_train_steps:
                break
    return step


def _report(run: _Run, step: int, lr: float) -> None:
    total = run.config.max_train_steps
    update = TrainProgress(step, total, run.losses[-1], lr, time.perf_counter() - run.clock_start)
    if step == total or step % max(1, total // 10) == 0:
        logger.info("step %d/%d loss %.4f lr %.2e", step, total, update.loss, lr)
    else:
        logger.debug("step %d/%d loss %.4f lr %.2e", step, total, update.loss, lr)
    if run.progress is not None:
        run.progress(update)


def _noise_loss(run: _Run, batch: dict[str, Any]) -> torch.Tensor:
    """MSE between the UNet's prediction and the scheduler's target (noise or velocity)."""
    parts, device = run.parts, run.accelerator.device
    pixels = batch["pixel_values"].to(device, dtype=run.weight_dtype)
    with torch.no_grad():
        latents = parts.vae.encode(pixels).latent_dist.sample() * parts.vae.config.scaling_factor
        input_ids = parts.tokenizer(
            list(batch["caption"]),
            padding="max_length",
            max_length=parts.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        encoder_hidden_states = parts.text_encoder(input_ids, return_dict=False)[0]
    noise = torch.randn_like(latents)
    num_timesteps = parts.noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, num_timesteps, (latents.shape[0],), device=device).long()
    noisy_latents = parts.noise_scheduler.add_noise(latents, noise, timesteps)
    if parts.noise_scheduler.config.prediction_type == "v_prediction":
        target = parts.noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    prediction = run.unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
    return F.mse_loss(prediction.float(), target.float(), reduction="mean")


def _make_accelerator(config: TrainConfig) -> Any:
    """Create this run's Accelerator, clearing the process-wide state an earlier run left behind.

    accelerate keeps its state in class-level singletons, so a second ``Accelerator`` with other
    settings in one process would otherwise fail. The distributed ``PartialState`` is kept when a
    process group is up (``accelerate launch``): it must not be initialised twice.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    AcceleratorState._reset_state(reset_partial_state=not distributed)
    GradientState._reset_state()
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise TrainConfigError({"mixed_precision": "fp16 needs a GPU; use 'bf16' or 'no' on CPU"})
    return accelerator


def _load_parts(folder: Path) -> _Parts:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    local = {"local_files_only": True}
    weights = {"local_files_only": True, "use_safetensors": True}
    loaders: dict[str, tuple[Any, dict[str, Any]]] = {
        "tokenizer": (CLIPTokenizer, local),
        "text_encoder": (CLIPTextModel, weights),
        "vae": (AutoencoderKL, weights),
        "unet": (UNet2DConditionModel, weights),
        "noise_scheduler": (DDPMScheduler, local),
    }
    loaded = {}
    for name, (cls, kwargs) in loaders.items():
        subfolder = "scheduler" if name == "noise_scheduler" else name
        try:
            loaded[name] = cls.from_pretrained(folder, subfolder=subfolder, **kwargs)
        except (OSError, ValueError) as exc:
            raise TrainConfigError(
                {"pretrained_model": f"cannot load {subfolder} from {folder} (safetensors only): {exc}"}
            ) from exc
    parts = _Parts(**loaded)
    prediction_type = parts.noise_scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise TrainConfigError(
            {"pretrained_model": f"scheduler prediction_type {prediction_type!r} is not supported; "
             f"supported: {', '.join(PREDICTION_TYPES)}"}
        )  # fmt: skip
    return parts


def _weight_dtype(mixed_precision: str) -> torch.dtype:
    """dtype of the frozen weights: half precision under mixed precision, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(str(mixed_precision), torch.float32)


def _make_loader(examples: list[Any], config: TrainConfig) -> torch.utils.data.DataLoader:
    dataset = ImageCaptionDataset(
        examples,
        config.resolution,
        seed=config.seed,
        center_crop=config.center_crop,
        random_flip=config.random_flip,
    )
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=config.train_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        num_workers=0,  # the dataset's per-index augmentation counters live in this process
    )


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
