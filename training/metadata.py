"""Header metadata of a trained LoRA: the kohya ``ss_*`` subset and SAI ModelSpec ``modelspec.*``.

All values are strings (safetensors headers are ``str -> str``). kohya's formats are followed where
tools parse them: timestamps as Unix seconds, ``ss_resolution`` as ``"(512, 512)"``.

Not written on purpose: ``ss_network_module`` -- this file uses diffusers/PEFT key names, not
kohya's ``lora_unet_*`` names, so claiming ``networks.lora`` would make kohya-aware tools misread it
(the kohya export, kohya.py, adds it and ``ss_network_args``); ``ss_session_id`` (random);
``sshs_legacy_hash`` (see lora.py). The hashes (``sshs_model_hash``, ``modelspec.hash_sha256``) are
added by ``save_lora``.

Family values (``FAMILIES``): SD-1.x files say ``ss_base_model_version`` "sd_v1" and ModelSpec
architecture "stable-diffusion-v1/lora"; SDXL files "sdxl_base_v1-0" and
"stable-diffusion-xl-v1-base/lora", and carry their UNet's layout (``sgm.LAYOUT_KEY``) so the
kohya copy can be made from the file alone. ModelSpec ``implementation`` names the key convention:
"diffusers" for these diffusers/PEFT-named files and the SD-1.x kohya copy, Stability's
generative-models URL for the SDXL kohya copy (SGM names; kohya's ``sai_model_spec`` does the same).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from training.config import TrainConfig
from training.family import ModelFamily
from training.optim import LR_SCHEDULER
from training.sgm import LAYOUT_KEY

MODELSPEC_VERSION = "1.0.1"
MODELSPEC_ARCHITECTURE = "stable-diffusion-v1/lora"
MODELSPEC_IMPLEMENTATION = "diffusers"
BASE_MODEL_VERSION = "sd_v1"
SGM_IMPLEMENTATION = "https://github.com/Stability-AI/generative-models"


@dataclass(frozen=True)
class FamilyInfo:
    """The header values that differ between model families."""

    base_model_version: str  #: ``ss_base_model_version``
    architecture: str  #: ``modelspec.architecture``
    kohya_implementation: str | None  #: ``modelspec.implementation`` of the kohya copy (None: as the LoRA's)


FAMILIES: dict[ModelFamily, FamilyInfo] = {
    "sd1": FamilyInfo(BASE_MODEL_VERSION, MODELSPEC_ARCHITECTURE, None),
    "sdxl": FamilyInfo("sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", SGM_IMPLEMENTATION),
}
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
    model_family: ModelFamily = "sd1"
    unet_layout: str = ""  #: SDXL: ``sgm.layout_json`` of the UNet ("" = not written)
    num_reg_images: int = 0  #: class images of prior preservation (kohya's "regularization images")


def family_metadata(family: ModelFamily, unet_layout: str = "") -> dict[str, str]:
    """The family's ``ss_base_model_version`` and ``modelspec.architecture`` (and UNet layout, if any)."""
    info = FAMILIES[family]
    values = {"ss_base_model_version": info.base_model_version, "modelspec.architecture": info.architecture}
    if unet_layout:
        values[LAYOUT_KEY] = unet_layout
    return values


def header_family(header: Mapping[str, str]) -> ModelFamily:
    """The family a LoRA header names (``ss_base_model_version`` or ``modelspec.architecture``);
    "sd1" when it names none."""
    for key, field in (
        ("ss_base_model_version", "base_model_version"),
        ("modelspec.architecture", "architecture"),
    ):
        for family, info in FAMILIES.items():
            if header.get(key) == getattr(info, field):
                return family
    return "sd1"


def _network_and_prior(config: TrainConfig, facts: RunFacts) -> dict[str, str]:
    """What was trained (UNet only, or the text encoders too) and the class images, as kohya says it.

    ``ss_reg_dataset_dirs`` is ``{"<folder name>": {"n_repeats": 1, "img_count": N}}`` (``{}``
    without class images), as sd-scripts writes it for DreamBooth-style data sets.
    """
    reg_dirs = {}
    if config.class_data_dir is not None and facts.num_reg_images:
        reg_dirs[Path(config.class_data_dir).name] = {"n_repeats": 1, "img_count": facts.num_reg_images}
    return {
        "ss_network_train_unet_only": str(not config.train_text_encoder),
        "ss_text_encoder_lr": str(config.text_encoder_settings()[0]) if config.train_text_encoder else "None",
        "ss_num_reg_images": str(facts.num_reg_images),
        "ss_reg_dataset_dirs": json.dumps(reg_dirs),
        "ss_prior_loss_weight": str(config.prior_loss_weight),
    }


def training_metadata(config: TrainConfig, facts: RunFacts) -> dict[str, str]:
    """The header a trained LoRA carries; ``config.metadata`` (the caller's keys) wins on conflicts."""
    resolution = config.resolution
    finished = datetime.fromtimestamp(facts.finished_at, tz=UTC)
    kohya = {
        "ss_training_started_at": repr(facts.started_at),
        "ss_training_finished_at": repr(facts.finished_at),
        "ss_output_name": config.output_name,
        "ss_sd_model_name": Path(config.pretrained_model).name,
        "ss_base_model_version": FAMILIES[facts.model_family].base_model_version,
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
        **_network_and_prior(config, facts),
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
        "modelspec.architecture": FAMILIES[facts.model_family].architecture,
        "modelspec.implementation": MODELSPEC_IMPLEMENTATION,
        "modelspec.title": config.output_name,
        "modelspec.date": finished.isoformat(timespec="seconds"),
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.prediction_type": PREDICTION_TYPES[facts.prediction_type],
    }
    layout = {LAYOUT_KEY: facts.unet_layout} if facts.unet_layout else {}
    return {**kohya, **modelspec, **layout, **config.metadata}
