"""Memory and speed options: gradient checkpointing, SDPA attention, Adafactor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from training import train


def test_unet_trains_with_checkpointing_and_sdpa(small_config) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    from training.models import load_frozen_with_lora, make_accelerator

    config = small_config(gradient_checkpointing=True)
    parts, _ = load_frozen_with_lora(config, make_accelerator(config))
    unet = parts.unet
    assert unet.is_gradient_checkpointing and unet.training
    processors = unet.attn_processors
    assert processors and all(type(p) is AttnProcessor2_0 for p in processors.values())


def test_gradient_checkpointing_gives_the_same_training(small_config) -> None:
    plain = train(small_config("plain", max_train_steps=3))
    checkpointed = train(small_config("ckpt", max_train_steps=3, gradient_checkpointing=True))
    assert checkpointed.losses == pytest.approx(plain.losses, abs=1e-6, rel=0)
    a, b = load_file(str(plain.lora_path)), load_file(str(checkpointed.lora_path))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    with safe_open(str(checkpointed.lora_path), framework="pt") as f:
        assert f.metadata()["ss_gradient_checkpointing"] == "True"


def test_adafactor_uses_the_given_learning_rate() -> None:
    from transformers.optimization import Adafactor

    from training.optim import build_optimizer

    weight = torch.nn.Parameter(torch.randn(64, 32))
    optimizer = build_optimizer([weight], "adafactor", 1e-3)
    assert type(optimizer) is Adafactor
    assert (optimizer.defaults["relative_step"], optimizer.defaults["scale_parameter"]) == (False, False)
    before = weight.detach().clone()
    (weight**2).sum().backward()
    optimizer.step()
    step_rms = (weight.detach() - before).pow(2).mean().sqrt().item()
    assert step_rms == pytest.approx(1e-3, rel=0.05)  # first update has unit RMS, times lr


def test_training_with_adafactor(small_config, tmp_path: Path) -> None:
    result = train(small_config(optimizer="adafactor", learning_rate=3e-3, max_train_steps=3))
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    with safe_open(str(result.lora_path), framework="pt") as f:
        optimizer = f.metadata()["ss_optimizer"]
    assert optimizer.startswith("transformers.optimization.Adafactor(")
    assert "relative_step=False" in optimizer and "scale_parameter=False" in optimizer
