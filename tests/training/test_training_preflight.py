"""Preflight: the peak-memory estimate is built from the model's configs (meta device, no weights) and
the budget ladder downgrades with reasons, or refuses with numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import TrainConfig
from training.preflight import DeviceMemory, PreflightError, estimate, fit_to_budget, model_family
from training.reference import SD15_TEXT, SD15_UNET, SD15_VAE


@pytest.fixture(scope="module")
def sd15_configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with only the SD-1.5 component configs: enough to estimate, nothing to load."""
    folder = tmp_path_factory.mktemp("sd15-configs")
    for name, cfg in (("unet", SD15_UNET), ("text_encoder", SD15_TEXT), ("vae", SD15_VAE)):
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps(cfg))
    return folder


def _config(folder: Path, **changes: object) -> TrainConfig:
    return TrainConfig(
        pretrained_model=str(folder), data_dir="", output_dir="", rank=16, alpha=16.0, **changes
    )  # type: ignore[arg-type]


def test_sd15_estimate_counts_real_parameters_and_memory_settings_shrink_it(sd15_configs: Path) -> None:
    plain = estimate(_config(sd15_configs, optimizer="adamw"), "cuda")
    ours = estimate(_config(sd15_configs, gradient_checkpointing=True, mixed_precision="fp16"), "cuda")
    assert model_family(sd15_configs) == "sd1"
    # SD-1.5's UNet has 859.5 M parameters: float32 weights are ~3.2 GiB, half of that in fp16
    assert 3200 < plain.weights_mb < 3300 and 1600 < ours.weights_mb < 1650
    # checkpointing keeps a small fraction of the activations; AdamW8bit keeps 2 bytes, not 8, per parameter
    assert ours.activations_mb < plain.activations_mb / 3
    assert ours.lora_state_mb < plain.lora_state_mb
    # the caching phase holds the text encoder and VAE too, briefly
    assert ours.caching_phase_mb > ours.weights_mb
    assert ours.peak_mb < 4096 < plain.peak_mb, (ours.summary(), plain.summary())


def test_activations_grow_with_resolution_and_batch(sd15_configs: Path) -> None:
    small = estimate(_config(sd15_configs, resolution=256), "cuda")
    large = estimate(_config(sd15_configs, resolution=512), "cuda")
    batch2 = estimate(_config(sd15_configs, resolution=512, train_batch_size=2), "cuda")
    assert large.activations_mb > 3.5 * small.activations_mb  # ~4x the latent pixels
    assert batch2.activations_mb == pytest.approx(2 * large.activations_mb, rel=0.01)


def test_ladder_downgrades_with_reasons_until_it_fits(sd15_configs: Path) -> None:
    device = DeviceMemory("cuda", "6 GB test budget", 6144, 5800, supports_bf16=False)
    config = _config(sd15_configs, optimizer="adamw", train_batch_size=4)
    plan = fit_to_budget(config, device)
    assert plan.fits and plan.estimate.peak_mb <= 5800
    joined = " | ".join(plan.changes)
    assert "gradient checkpointing" in joined and "GB" in joined
    assert plan.config.gradient_checkpointing
    # the request is untouched; the effective batch is kept when micro-batches shrink
    assert config.train_batch_size == 4 and not config.gradient_checkpointing
    effective = plan.config.train_batch_size * plan.config.gradient_accumulation_steps
    assert effective == 4


def test_plenty_of_memory_changes_nothing(sd15_configs: Path) -> None:
    plan = fit_to_budget(_config(sd15_configs), DeviceMemory("cuda", "80 GB", 81920, 78000))
    assert plan.changes == [] and plan.config == _config(sd15_configs)


def test_too_small_a_device_is_refused_with_numbers(sd15_configs: Path) -> None:
    with pytest.raises(PreflightError, match=r"needs ~\d+\.\d GB peak .* has 1\.0 GB usable"):
        fit_to_budget(_config(sd15_configs), DeviceMemory("cuda", "tiny GPU", 1024, 1024))


def test_resolution_is_lowered_only_down_to_the_family_floor(sd15_configs: Path) -> None:
    device = DeviceMemory("cuda", "3 GB", 3072, 2900)
    try:
        plan = fit_to_budget(_config(sd15_configs, resolution=768), device)
    except PreflightError as exc:
        assert "resolution 768 -> 704" in str(exc)
    else:
        assert 384 <= plan.config.resolution < 768
        assert any("resolution" in change for change in plan.changes)


def test_text_encoder_training_and_prior_preservation_cost_memory(sd15_configs: Path) -> None:
    base = estimate(_config(sd15_configs), "cuda")
    with_te = estimate(_config(sd15_configs, train_text_encoder=True), "cuda")
    with_prior = estimate(_config(sd15_configs, class_data_dir=str(sd15_configs)), "cuda")
    # the text encoder stays on the device (123 M parameters, ~470 MB in float32) and gets a LoRA
    assert 400 < with_te.weights_mb - base.weights_mb < 520
    assert with_te.lora_state_mb > base.lora_state_mb
    # the class batch's activations are alive together with the instance batch's
    assert with_prior.activations_mb == pytest.approx(2 * base.activations_mb, rel=0.01)
