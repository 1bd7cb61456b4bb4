"""The LoRA training loop: SD-1.x UNet, epsilon / v-prediction noise loss, one Accelerator per run.

The parts live beside it: models.py (loading, freezing, LoRA), buckets.py (sizes and batch order),
dataset.py (pixels, masks), caching.py (latents, text embeddings), losses.py (the loss),
optim.py, checkpoints.py (save / resume), lora.py and kohya.py (the output files).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.buckets import BatchPlan, assign_bucket, bucket_info, make_buckets
from training.caching import TrainInputs
from training.checkpoints import (
    Checkpointer,
    CheckpointState,
    checkpoints_root,
    find_resume_point,
    fingerprint,
    remove_stale,
)
from training.config import TrainConfig
from training.dataset import Example, TrainingImages, find_examples, load_mask, upright_size
from training.kohya import export_kohya, kohya_path_for
from training.lora import file_tensor_sha256, save_lora
from training.losses import noise_loss
from training.metadata import RunFacts, training_metadata
from training.models import ModelParts, load_frozen_with_lora, make_accelerator
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
    losses: list[float]  #: mean loss of each optimizer step (a resumed run: from step 1, not just its own)
    final_loss: float  #: last entry of ``losses`` (nan when no step ran)
    elapsed_s: float
    tensor_sha256: str  #: SHA-256 of the tensor payload: same weights -> same hash (= sshs_model_hash)
    kohya_path: Path | None = None  #: ``<output_name>.kohya.safetensors`` when ``export_kohya``


@dataclass
class _Data:
    inputs: TrainInputs
    plan: BatchPlan
    bucket_info: str


@dataclass
class _Run:
    """Everything the step loop works with, and where it is."""

    config: TrainConfig
    accelerator: Any
    parts: ModelParts
    unet: Any  # the accelerate-prepared UNet (parts.unet is the bare one)
    optimizer: Any
    lr_scheduler: Any
    data: _Data
    checkpointer: Checkpointer
    clock_start: float
    progress: Callable[[TrainProgress], None] | None
    should_stop: Callable[[], bool] | None
    losses: list[float] = field(default_factory=list)
    step: int = 0  #: optimizer steps done
    epoch: int = 0  #: epoch of the next micro-batch
    batch_in_epoch: int = 0  #: micro-batches of that epoch already consumed (this process's share)
    _epoch_batches: tuple[int, list[list[int]]] | None = None


def train(
    config: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a UNet LoRA as ``config`` says and save it to ``<output_dir>/<output_name>.safetensors``.

    ``progress`` is called after every optimizer step; ``should_stop`` is asked before every
    optimizer step and, when it returns True, training ends early: a checkpoint of the steps done is
    written (when ``checkpointing_steps`` > 0) and the LoRA of the steps done so far is saved.
    Exceptions from either callback abort the run without writing a LoRA. With ``resume_from`` the
    run continues from a checkpoint and ends as if it had never been interrupted.
    """
    from accelerate.utils import set_seed

    # 1. Validate the config, the data and the checkpoint to resume from, before loading anything.
    config.validate()
    examples = find_examples(Path(config.data_dir))
    run_id = fingerprint(config, examples)
    resume = find_resume_point(config, run_id)
    started_at, clock_start = time.time(), time.perf_counter()

    # 2. A fresh Accelerator for this run, then seed every RNG (python, numpy, torch).
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    if accelerator.is_main_process:
        remove_stale(checkpoints_root(config))

    # 3. Load the model parts, freeze them, attach the LoRA (the only trainable weights).
    parts, weight_dtype = load_frozen_with_lora(config, accelerator)

    # 4. Sizes, batch order and the UNet's inputs (cached, then the VAE / text encoder released).
    data = _make_data(config, examples, accelerator, parts, weight_dtype)

    # 5. Optimizer and LR schedule; accelerate prepares them with the UNet (devices, DDP, AMP).
    unet, optimizer, lr_scheduler = _prepare_optimization(config, accelerator, parts.unet)
    checkpointer = Checkpointer(accelerator, parts.unet, config, run_id, started_at)
    run = _Run(
        config, accelerator, parts, unet, optimizer, lr_scheduler, data, checkpointer,
        clock_start, progress, should_stop,
    )  # fmt: skip

    # 6. Resume: optimizer, scheduler, RNG states, LoRA weights, data position, losses so far.
    if resume is not None:
        started_at = _resume(run, *resume)

    # 7. Train until max_train_steps or until should_stop() says so.
    _run_steps(run)

    # 8. Save the LoRA (main process) with its metadata and hashes, and its kohya-format copy.
    lora_path = Path(config.output_dir) / f"{config.output_name}.safetensors"
    sha256, kohya_path = _save(run, lora_path, num_images=len(examples), started_at=started_at)
    accelerator.free_memory()

    # 9. Report.
    elapsed = time.perf_counter() - clock_start
    logger.info("trained %d/%d steps in %.1f s -> %s", run.step, config.max_train_steps, elapsed, lora_path)
    return TrainResult(
        lora_path=lora_path,
        sha256=sha256,
        steps=run.step,
        losses=list(run.losses),
        final_loss=run.losses[-1] if run.losses else math.nan,
        elapsed_s=elapsed,
        tensor_sha256=file_tensor_sha256(lora_path),
        kohya_path=kohya_path,
    )


def _prepare_optimization(config: TrainConfig, accelerator: Any, unet: Any) -> tuple[Any, Any, Any]:
    """The prepared ``(unet, optimizer, lr_scheduler)``; only the LoRA parameters are optimised."""
    optimizer = build_optimizer(
        [p for p in unet.parameters() if p.requires_grad], config.optimizer, config.learning_rate
    )
    lr_scheduler = build_lr_scheduler(
        optimizer,
        warmup_steps=config.lr_warmup_steps,
        total_steps=config.max_train_steps,
        num_processes=accelerator.num_processes,
    )
    return tuple(accelerator.prepare(unet, optimizer, lr_scheduler))  # type: ignore[return-value]


def _resume(run: _Run, folder: Path, state: CheckpointState) -> float:
    """Restore the checkpoint into ``run``; return the interrupted run's start time."""
    run.checkpointer.load(folder, state)
    run.step, run.epoch, run.batch_in_epoch = state.step, state.epoch, state.batch_in_epoch
    run.losses = list(state.losses)
    return state.started_at


def _make_data(
    config: TrainConfig, examples: list[Example], accelerator: Any, parts: ModelParts, dtype: torch.dtype
) -> _Data:
    """Assign each image its training size, check masks, build the batch plan and the inputs."""
    image_sizes = [upright_size(e.image_path) for e in examples]
    if config.enable_bucket:
        buckets = make_buckets(config.resolution, *config.bucket_range(), config.bucket_reso_steps)
        sizes = [assign_bucket(size, buckets) for size in image_sizes]
    else:
        sizes = [(config.resolution, config.resolution)] * len(examples)
    images = TrainingImages(
        examples, sizes, seed=config.seed, center_crop=config.center_crop,
        random_flip=config.random_flip, masked_loss=config.masked_loss,
    )  # fmt: skip
    for path, size in zip(images.masks, image_sizes, strict=True):
        if path is not None:
            load_mask(path, size)  # refuse a bad mask now, not in the middle of the run
    if config.masked_loss and not any(images.masks):
        logger.warning(
            "masked_loss is on but no <name>.mask.png exists in %s: every pixel weighs 1", config.data_dir
        )
    inputs = TrainInputs(images, parts, accelerator.device, dtype)
    inputs.build_caches(latents=config.cache_latents, text=config.cache_text_embeddings)
    plan = BatchPlan(
        tuple(sizes), config.train_batch_size, config.seed,
        num_processes=accelerator.num_processes, process_index=accelerator.process_index,
    )  # fmt: skip
    info = bucket_info(image_sizes, sizes) if config.enable_bucket else ""
    return _Data(inputs, plan, info)


def _save(run: _Run, lora_path: Path, *, num_images: int, started_at: float) -> tuple[str, Path | None]:
    """Write the LoRA (and kohya copy) on the main process; return the LoRA file's SHA-256 and the
    kohya file's path (None when not written) on every process."""
    accelerator, optimizer = run.accelerator, run.optimizer
    facts = RunFacts(
        num_train_images=num_images,
        steps_done=run.step,
        num_processes=accelerator.num_processes,
        optimizer=describe_optimizer(getattr(optimizer, "optimizer", optimizer)),  # unwrap accelerate's
        prediction_type=run.parts.noise_scheduler.config.prediction_type,
        started_at=started_at,
        finished_at=time.time(),
        cache_latents=run.data.inputs.caches_latents,
        bucket_info=run.data.bucket_info,
        epoch=run.epoch + (1 if run.batch_in_epoch else 0),
    )
    sha256 = ""
    kohya_path = kohya_path_for(lora_path.parent, run.config.output_name) if run.config.export_kohya else None
    if accelerator.is_main_process:
        metadata = training_metadata(run.config, facts)
        sha256 = save_lora(accelerator.unwrap_model(run.unet), lora_path, metadata)
        if (
            kohya_path is not None
            and export_kohya(accelerator.unwrap_model(run.unet), kohya_path, metadata) is None
        ):
            kohya_path = None
    accelerator.wait_for_everyone()
    if kohya_path is not None and not kohya_path.is_file():
        kohya_path = None  # another process's view: the main process wrote nothing exportable
    return sha256 or _file_sha256(lora_path), kohya_path


def _run_steps(run: _Run) -> None:
    """The optimisation loop: micro-batches in the plan's order, an optimizer step per window."""
    config = run.config
    window: list[float] = []  # losses of the micro-batches of the current optimizer step
    lr = 0.0
    while run.step < config.max_train_steps:
        # Ask between optimizer steps only, so a stop never drops half an accumulation window.
        if not window and run.should_stop is not None and run.should_stop():
            logger.info("stop requested after %d/%d steps", run.step, config.max_train_steps)
            if config.checkpointing_steps and run.step and run.checkpointer.last_step != run.step:
                _checkpoint(run)
            return
        epoch, indices = _next_batch(run)
        loss, lr = _micro_step(run, indices, epoch)
        window.append(loss)
        if not run.accelerator.sync_gradients:
            continue
        run.step += 1
        run.losses.append(sum(window) / len(window))
        window = []
        if not math.isfinite(run.losses[-1]):
            raise TrainingDivergedError(
                f"the loss became {run.losses[-1]} at step {run.step}; nothing was saved. "
                "Lower learning_rate, or use mixed_precision 'no' or 'bf16' instead of 'fp16'."
            )
        _report(run, lr)
        if config.checkpointing_steps and run.step % config.checkpointing_steps == 0:
            _checkpoint(run)


def _next_batch(run: _Run) -> tuple[int, list[int]]:
    """The next micro-batch's epoch and example indices; advances the position."""
    if run._epoch_batches is None or run._epoch_batches[0] != run.epoch:
        run._epoch_batches = (run.epoch, run.data.plan.local_batches(run.epoch))
    epoch, batches = run._epoch_batches
    indices = batches[run.batch_in_epoch]
    run.batch_in_epoch += 1
    if run.batch_in_epoch == len(batches):
        run.epoch, run.batch_in_epoch = epoch + 1, 0
    return epoch, indices


def _micro_step(run: _Run, indices: list[int], epoch: int) -> tuple[float, float]:
    """Forward and backward one micro-batch (and step the optimizer at a window's end)."""
    config, accelerator = run.config, run.accelerator
    with accelerator.accumulate(run.unet):
        batch = run.data.inputs.batch(indices, epoch)
        loss = noise_loss(
            run.unet, run.parts.noise_scheduler, batch.latents, batch.encoder_hidden_states,
            mask=batch.mask, noise_offset=config.noise_offset, min_snr_gamma=config.min_snr_gamma,
        )  # fmt: skip
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            trainable = [p for p in run.unet.parameters() if p.requires_grad]
            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        run.lr_scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return accelerator.gather(loss.detach().reshape(1)).mean().item(), lr


def _checkpoint(run: _Run) -> None:
    run.checkpointer.save(run.step, run.epoch, run.batch_in_epoch, run.losses)


def _report(run: _Run, lr: float) -> None:
    total, step = run.config.max_train_steps, run.step
    update = TrainProgress(step, total, run.losses[-1], lr, time.perf_counter() - run.clock_start)
    if step == total or step % max(1, total // 10) == 0:
        logger.info("step %d/%d loss %.4f lr %.2e", step, total, update.loss, lr)
    else:
        logger.debug("step %d/%d loss %.4f lr %.2e", step, total, update.loss, lr)
    if run.progress is not None:
        run.progress(update)


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
