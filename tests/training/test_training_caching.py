"""Latent and text-embedding caching: same losses as encoding every step, models released after."""

from __future__ import annotations

import gc
import logging
import weakref
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from training import train
from training.caching import TrainInputs
from training.dataset import TrainingImages, find_examples
from training.models import load_parts


def header(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


@pytest.mark.parametrize("random_flip", [False, True])
def test_cached_run_has_the_losses_of_an_uncached_one(small_config, random_flip: bool) -> None:
    common = {"center_crop": True, "random_flip": random_flip, "max_train_steps": 4}
    cached = train(small_config("cached", **common))
    uncached = train(small_config("uncached", cache_latents=False, cache_text_embeddings=False, **common))
    assert len(cached.losses) == 4
    assert cached.losses == pytest.approx(uncached.losses, abs=1e-5, rel=0)
    assert header(cached.lora_path)["ss_cache_latents"] == "True"
    assert header(uncached.lora_path)["ss_cache_latents"] == "False"


def test_random_crops_do_not_cache_latents(small_config, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="training.caching"):
        result = train(small_config(center_crop=False, random_flip=True, max_train_steps=2))
    assert "cache_latents is off for this run: center_crop is false" in caplog.text
    assert header(result.lora_path)["ss_cache_latents"] == "False"


def make_inputs(model: Path, data: Path, **options: object) -> tuple[TrainInputs, object]:
    examples = find_examples(data)
    parts = load_parts(model)
    images = TrainingImages(examples, [(64, 64)] * len(examples), seed=0, **options)  # type: ignore[arg-type]
    return TrainInputs(images, parts, torch.device("cpu"), torch.float32), parts


def test_caching_encodes_each_variant_once_then_releases_the_models(
    tiny_model_dir: Path, product_dir: Path
) -> None:
    inputs, parts = make_inputs(tiny_model_dir, product_dir, center_crop=True, random_flip=True)
    vae, text_encoder = weakref.ref(parts.vae), weakref.ref(parts.text_encoder)  # type: ignore[attr-defined]
    expected = inputs._encode(inputs.images.fixed_variants(0)[1:]).detach()  # image 0, mirrored

    inputs.build_caches(latents=True, text=True)
    gc.collect()
    assert parts.vae is None and parts.text_encoder is None  # type: ignore[attr-defined]
    assert vae() is None and text_encoder() is None  # nothing else keeps them alive
    assert inputs.latent_cache is not None and inputs.text_cache is not None
    assert len(inputs.latent_cache) == 8  # 4 images x (plain, mirrored)
    assert len(inputs.text_cache) == 4  # one per distinct caption
    mirrored = inputs.images.fixed_variants(0)[1]
    torch.testing.assert_close(inputs.latent_cache[mirrored], expected[0], atol=1e-6, rtol=0)

    batch = inputs.batch([0, 2], epoch=3)  # served from the caches without the released models
    assert batch.latents.shape == (2, 4, 8, 8)
    assert batch.encoder_hidden_states.shape[0] == 2 and batch.mask is None


def test_random_crops_keep_the_vae(tiny_model_dir: Path, product_dir: Path) -> None:
    inputs, parts = make_inputs(tiny_model_dir, product_dir, center_crop=False)
    inputs.build_caches(latents=True, text=True)
    assert inputs.latent_cache is None and parts.vae is not None  # type: ignore[attr-defined]
    assert inputs.text_cache is not None and parts.text_encoder is None  # type: ignore[attr-defined]
    first, again = inputs.batch([3], epoch=0), inputs.batch([3], epoch=0)
    torch.testing.assert_close(first.latents, again.latents)  # the latent sample is seeded per variant
