"""The LoRA training loop: SD-1.x or SDXL UNet, epsilon / v-prediction noise loss, one Accelerator per run.

The parts live beside it: models.py (loading, freezing, LoRA), buckets.py (sizes and batch order),
dataset.py (pixels, masks), caching.py (latents, text embeddings), losses.py (the loss),
optim.py, checkpoints.py (save / resume), lora.py, kohya.py and sgm.py (the output files);
text_encoder.py (the optional text-encoder LoRA), class_images.py and prior.py (optional prior
preservation).
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

from training.buckets import BatchPlan, bucket_info, training_sizes
from training.caching import TrainInputs
from training.checkpoints import (
    Checkpointer,
    CheckpointState,
    checkpoints_root,
    find_resume_point,
    fingerprint,
    remove_stale,
)
from training.class_images import prepare_class_images
from training.config import TrainConfig
from training.dataset import Example, TrainingImages, find_examples, load_mask, upright_size
from training.kohya import export_kohya, kohya_path_for
from training.lora import file_sha256, file_tensor_sha256, save_lora
from training.losses import noise_loss
from training.metadata import RunFacts, training_metadata
from training.models import ModelParts, load_frozen_with_lora, make_accelerator
from training.optim import build_lr_scheduler, build_optimizer, describe_optimizer
from training.prior import ClassBatches, make_class_batches
from training.sgm import layout_json
from training.text_encoder import text_encoders_of

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
    #: the checkpoint folder written at this step (it holds ``lora.safetensors``, loadable on its own),
    #: None on steps without one. A progress callback may sample validation images from it.
    checkpoint: Path | None = None


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
    prior: ClassBatches | None = None  #: the class images (prior preservation), None when off


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
    text_encoders: tuple[Any, ...] = ()  #: the accelerate-prepared text encoders being trained


def train(
    config: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a UNet LoRA as ``config`` says and save it to ``<output_dir>/<output_name>.safetensors``.

    Optionally also a text-encoder LoRA (``train_text_encoder``, text_encoder.py) and with prior
    preservation (``class_data_dir``: class images, generated first when missing; prior.py).

    ``progress`` is called after every optimizer step; ``should_stop`` is asked before every
    optimizer step and, when it returns True, training ends early: a checkpoint of the steps done is
    written (when ``checkpointing_steps`` > 0) and the LoRA of the steps done so far is saved.
    Exceptions from either callback abort the run without writing a LoRA. With ``resume_from`` the
    run continues from a checkpoint and ends as if it had never been interrupted.
    """
    from accelerate.utils import set_seed

    # 1. Validate the config and the data before loading anything; a fresh Accelerator for this run.
    config.validate()
    examples = find_examples(Path(config.data_dir))
    started_at, clock_start = time.time(), time.perf_counter()
    accelerator = make_accelerator(config)

    # 2. Class images (prior preservation; missing ones generated), the checkpoint to resume from,
    #    then seed every RNG (python, numpy, torch).
    class_examples = prepare_class_images(config, accelerator)
    run_id = fingerprint(config, examples, class_examples)
    resume = find_resume_point(config, run_id)
    set_seed(config.seed)
    if accelerator.is_main_process:
        remove_stale(checkpoints_root(config))

    # 3. Load the model parts, freeze them, attach the LoRA(s) (the only trainable weights).
    parts, weight_dtype = load_frozen_with_lora(config, accelerator)

    # 4. Sizes, batch order and the UNet's inputs (cached, then the VAE / text encoder released).
    data = _make_data(config, examples, class_examples, accelerator, parts, weight_dtype)

    # 5. Optimizer and LR schedule; accelerate prepares them with the UNet and the trained text
    #    encoders (devices, DDP, AMP).
    unet, encoders, optimizer, lr_scheduler = _prepare_optimization(config, accelerator, parts)
    if encoders:
        for inputs in [data.inputs, *([data.prior.inputs] if data.prior else [])]:
            inputs.train_text_encoders(*encoders)
    checkpointer = Checkpointer(accelerator, parts.unet, config, run_id, started_at, text_encoders_of(parts))
    run = _Run(
        config, accelerator, parts, unet, optimizer, lr_scheduler, data, checkpointer,
        clock_start, progress, should_stop, text_encoders=encoders,
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


def _prepare_optimization(
    config: TrainConfig, accelerator: Any, parts: ModelParts
) -> tuple[Any, tuple[Any, ...], Any, Any]:
    """The prepared ``(unet, text encoders, optimizer, lr_scheduler)``; only LoRA parameters are optimised.

    Trained text encoders (none unless ``train_text_encoder``) form a second param group with
    their own learning rate.
    """
    encoders = tuple(text_encoders_of(parts).values())
    params: Any = [p for p in parts.unet.parameters() if p.requires_grad]
    if encoders:
        encoder_params = [p for encoder in encoders for p in encoder.parameters() if p.requires_grad]
        params = [
            {"params": params, "lr": config.learning_rate},
            {"params": encoder_params, "lr": config.text_encoder_settings()[0]},
        ]
    optimizer = build_optimizer(params, config.optimizer, config.learning_rate)
    lr_scheduler = build_lr_scheduler(
        optimizer,
        warmup_steps=config.lr_warmup_steps,
        total_steps=config.max_train_steps,
        num_processes=accelerator.num_processes,
    )
    unet, *prepared = accelerator.prepare(parts.unet, *encoders, optimizer, lr_scheduler)
    return unet, tuple(prepared[: len(encoders)]), prepared[-2], prepared[-1]


def _resume(run: _Run, folder: Path, state: CheckpointState) -> float:
    """Restore the checkpoint into ``run``; return the interrupted run's start time."""
    run.checkpointer.load(folder, state)
    run.step, run.epoch, run.batch_in_epoch = state.step, state.epoch, state.batch_in_epoch
    if run.data.prior is not None:
        run.data.prior.restore(state.class_epoch, state.class_batch_in_epoch)
    run.losses = list(state.losses)
    return state.started_at


def _make_data(
    config: TrainConfig, examples: list[Example], class_examples: list[Example], accelerator: Any,
    parts: ModelParts, dtype: torch.dtype,
) -> _Data:  # fmt: skip
    """Assign each image its training size, check masks, build the batch plans and the inputs."""
    image_sizes = [upright_size(e.image_path) for e in examples]
    sizes = training_sizes(config, image_sizes)
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
    cache_text = config.cache_text_embeddings and not config.train_text_encoder
    if config.cache_text_embeddings and config.train_text_encoder:
        logger.warning(
            "cache_text_embeddings is off for this run: train_text_encoder is on, so the text encoder "
            "changes every step and its outputs cannot be cached; the text encoder(s) stay on the "
            "device (latent caching is unaffected)"
        )
    prior = make_class_batches(config, class_examples, accelerator, parts, dtype, cache_text=cache_text)
    inputs = TrainInputs(images, parts, accelerator.device, dtype)
    inputs.build_caches(latents=config.cache_latents, text=cache_text)
    plan = BatchPlan(
        tuple(sizes), config.train_batch_size, config.seed,
        num_processes=accelerator.num_processes, process_index=accelerator.process_index,
    )  # fmt: skip
    info = bucket_info(image_sizes, sizes) if config.enable_bucket else ""
    return _Data(inputs, plan, info, prior)


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
        model_family=run.parts.family,
        unet_layout=layout_json(run.parts.unet.config) if run.parts.family == "sdxl" else "",
        num_reg_images=run.data.prior.num_images if run.data.prior else 0,
    )
    sha256 = ""
    kohya_path = kohya_path_for(lora_path.parent, run.config.output_name) if run.config.export_kohya else None
    if accelerator.is_main_process:
        metadata = training_metadata(run.config, facts)
        unet, encoders = accelerator.unwrap_model(run.unet), text_encoders_of(run.parts)
        sha256 = save_lora(unet, lora_path, metadata, encoders)
        if kohya_path is not None and export_kohya(unet, kohya_path, metadata, encoders) is None:
            kohya_path = None
    accelerator.wait_for_everyone()
    if kohya_path is not None and not kohya_path.is_file():
        kohya_path = None  # another process's view: the main process wrote nothing exportable
    return sha256 or file_sha256(lora_path), kohya_path


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
        folder = None
        if config.checkpointing_steps and run.step % config.checkpointing_steps == 0:
            folder = _checkpoint(run)
        _report(run, lr, folder)


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
    """Forward and backward one micro-batch (and step the optimizer at a window's end).

    With prior preservation the loss adds ``prior_loss_weight`` x the next class batch's loss.
    """
    config, accelerator, prior = run.config, run.accelerator, run.data.prior
    with accelerator.accumulate(run.unet, *run.text_encoders):
        batch = run.data.inputs.batch(indices, epoch)
        loss = noise_loss(
            run.unet, run.parts.noise_scheduler, batch.latents, batch.encoder_hidden_states,
            mask=batch.mask, noise_offset=config.noise_offset, min_snr_gamma=config.min_snr_gamma,
            pooled_embeds=batch.pooled_embeds, time_ids=batch.time_ids,
        )  # fmt: skip
        if prior is not None:
            class_loss = prior.loss(
                run.unet, run.parts.noise_scheduler,
                noise_offset=config.noise_offset, min_snr_gamma=config.min_snr_gamma,
            )  # fmt: skip
            loss = loss + prior.weight * class_loss
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            models = (run.unet, *run.text_encoders)
            trainable = [p for model in models for p in model.parameters() if p.requires_grad]
            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        run.lr_scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return accelerator.gather(loss.detach().reshape(1)).mean().item(), lr


def _checkpoint(run: _Run) -> Path:
    prior = run.data.prior
    class_position = prior.position if prior is not None else (0, 0)
    return run.checkpointer.save(run.step, run.epoch, run.batch_in_epoch, run.losses, class_position)


def _report(run: _Run, lr: float, checkpoint: Path | None = None) -> None:
    total, step = run.config.max_train_steps, run.step
    elapsed = time.perf_counter() - run.clock_start
    update = TrainProgress(step, total, run.losses[-1], lr, elapsed, checkpoint)
    if step == total or step % max(1, total // 10) == 0:
        logger.info("step %d/%d loss %.4f lr %.2e", step, total, update.loss, lr)
    else:
        logger.debug("step %d/%d loss %.4f lr %.2e", step, total, update.loss, lr)
    if run.progress is not None:
        run.progress(update)
