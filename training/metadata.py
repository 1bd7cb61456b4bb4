"""Header metadata of a trained LoRA: the kohya ``ss_*`` subset and SAI ModelSpec ``modelspec.*``.

All values are strings (safetensors headers are ``str -> str``). kohya's formats are followed where
tools parse them: timestamps as Unix seconds, ``ss_resolution`` as ``"(512, 512)"``.

Not written on purpose: ``ss_network_module`` -- this file uses diffusers/PEFT key names, not
kohya's ``lora_unet_*`` names, so claiming ``networks.lora`` would make kohya-aware tools misread it
(the kohya export, kohya.py, adds it and ``ss_network_args``); ``ss_session_id`` (random);
``sshs_legacy_hash`` (see lora.py). The hashes (``sshs_model_hash``, ``modelspec.hash_sha256``) are
added by ``save_lora``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from training.config import TrainConfig
from training.optim import LR_SCHEDULER

MODELSPEC_VERSION = "1.0.1"
MODELSPEC_ARCHITECTURE = "stable-diffusion-v1/lora"
MODELSPEC_IMPLEMENTATION = "diffusers"
BASE_MODEL_VERSION = "sd_v1"
#: ModelSpec ``prediction_type`` values for a scheduler's ``prediction_type``.
PREDICTION_TYPES = {"epsilon": "epsilon", "v_prediction": "v"}


@dataclass(frozen=True)
class RunFacts:
    """What is only known while or after training."""

    num_train_images: int
    steps_done: int
    num_processes: int
    optimizer: str
    prediction_type: str
    started_at: float
    finished_at: float
    cache_latents: bool = False  #: whether latents were really cached (off with random crops)
    bucket_info: str = ""  #: kohya ``ss_bucket_info`` JSON ("" without buckets)
    epoch: int = 0  #: epochs begun when training ended


def training_metadata(config: TrainConfig, facts: RunFacts) -> dict[str, str]:
    """The header a trained LoRA carries; ``config.metadata`` (the caller's keys) wins on conflicts."""
    resolution = config.resolution
    finished = datetime.fromtimestamp(facts.finished_at, tz=UTC)
    kohya = {
        "ss_training_started_at": repr(facts.started_at),
        "ss_training_finished_at": repr(facts.finished_at),
        "ss_output_name": config.output_name,
        "ss_sd_model_name": Path(config.pretrained_model).name,
        "ss_base_model_version": BASE_MODEL_VERSION,
        "ss_v2": "False",
        "ss_network_dim": str(config.rank),
        "ss_network_alpha": str(config.alpha),
        "ss_learning_rate": str(config.learning_rate),
        "ss_unet_lr": str(config.learning_rate),
        "ss_max_train_steps": str(config.max_train_steps),
        "ss_steps": str(facts.steps_done),
        "ss_seed": str(config.seed),
        "ss_resolution": str((resolution, resolution)),
        "ss_num_train_images": str(facts.num_train_images),
        "ss_batch_size_per_device": str(config.train_batch_size),
        "ss_total_batch_size": str(
            config.train_batch_size * config.gradient_accumulation_steps * facts.num_processes
        ),
        "ss_gradient_accumulation_steps": str(config.gradient_accumulation_steps),
        "ss_lr_scheduler": LR_SCHEDULER,
        "ss_lr_warmup_steps": str(config.lr_warmup_steps),
        "ss_optimizer": facts.optimizer,
        "ss_max_grad_norm": str(config.max_grad_norm),
        "ss_mixed_precision": config.mixed_precision,
        "ss_random_crop": str(not config.center_crop),
        "ss_flip_aug": str(config.random_flip),
        "ss_gradient_checkpointing": str(config.gradient_checkpointing),
        "ss_cache_latents": str(facts.cache_latents),
        "ss_epoch": str(facts.epoch),
        "ss_noise_offset": str(config.noise_offset) if config.noise_offset > 0 else "None",
        "ss_min_snr_gamma": str(config.min_snr_gamma),
        "ss_masked_loss": str(config.masked_loss),
        "ss_enable_bucket": str(config.enable_bucket),
    }
    if config.enable_bucket:
        low, high = config.bucket_range()
        kohya.update(
            ss_min_bucket_reso=str(low),
            ss_max_bucket_reso=str(high),
            ss_bucket_no_upscale="False",
            ss_bucket_info=facts.bucket_info or "None",
        )
    modelspec = {
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": MODELSPEC_ARCHITECTURE,
        "modelspec.implementation": MODELSPEC_IMPLEMENTATION,
        "modelspec.title": config.output_name,
        "modelspec.date": finished.isoformat(timespec="seconds"),
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.prediction_type": PREDICTION_TYPES[facts.prediction_type],
    }
    return {**kohya, **modelspec, **config.metadata}
