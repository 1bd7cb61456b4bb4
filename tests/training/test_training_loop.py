"""train(): determinism, early stop, accumulation, v-prediction, torch AdamW, bf16, repeated runs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from training import TrainConfig, TrainConfigError, train


def short_config(model: Path, data: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict = {
        "resolution": 64,
        "train_batch_size": 2,
        "max_train_steps": 4,
        "learning_rate": 1e-3,
        "center_crop": False,  # exercise the seeded random crop and flip too
        "random_flip": True,
    }
    settings.update(overrides)
    return TrainConfig(pretrained_model=str(model), data_dir=str(data), output_dir=str(out), **settings)


def header(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_same_config_same_tensors(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    first = train(short_config(tiny_model_dir, product_dir, tmp_path / "a"))
    again = train(short_config(tiny_model_dir, product_dir, tmp_path / "b"))
    other_seed = train(short_config(tiny_model_dir, product_dir, tmp_path / "c", seed=1))
    assert first.losses == again.losses
    assert first.tensor_sha256 == again.tensor_sha256
    assert other_seed.tensor_sha256 != first.tensor_sha256


def test_should_stop_ends_early_and_saves(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    updates: list = []
    config = short_config(tiny_model_dir, product_dir, tmp_path, max_train_steps=50)
    result = train(config, progress=updates.append, should_stop=lambda: len(updates) >= 3)
    assert result.steps == 3 and len(result.losses) == 3 and len(updates) == 3
    assert result.lora_path.is_file()
    meta = header(result.lora_path)
    assert (meta["ss_steps"], meta["ss_max_train_steps"]) == ("3", "50")
    assert meta["sshs_model_hash"] == result.tensor_sha256


def test_accumulation_vprediction_adamw_bf16(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "vpred-model"
    shutil.copytree(tiny_model_dir, model)
    scheduler_config = model / "scheduler" / "scheduler_config.json"
    settings = json.loads(scheduler_config.read_text())
    settings["prediction_type"] = "v_prediction"
    scheduler_config.write_text(json.dumps(settings))

    updates: list = []
    config = short_config(
        model, product_dir, tmp_path / "out",
        train_batch_size=1, gradient_accumulation_steps=2, max_train_steps=3, lr_warmup_steps=2,
        optimizer="adamw", mixed_precision="bf16",
    )  # fmt: skip
    result = train(config, progress=updates.append)
    assert result.steps == 3 and [u.step for u in updates] == [1, 2, 3]
    assert [u.lr for u in updates] == pytest.approx([0.0, 5e-4, 1e-3])  # linear warmup, then constant
    meta = header(result.lora_path)
    assert meta["modelspec.prediction_type"] == "v"
    assert meta["ss_optimizer"].startswith("torch.optim.adamw.AdamW(")
    assert (meta["ss_mixed_precision"], meta["ss_total_batch_size"]) == ("bf16", "2")
    with safe_open(str(result.lora_path), framework="pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float32"}


def test_a_model_saved_in_fp16_trains_in_fp32(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    """Real checkpoints are usually fp16: transformers then loads the text encoder as fp16 while
    diffusers loads the UNet as fp32; the CPU tier (no mixed precision) must cast both."""
    from diffusers import StableDiffusionPipeline

    model = tmp_path / "fp16-model"
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    pipe.to(torch.float16).save_pretrained(model, safe_serialization=True)
    result = train(short_config(model, product_dir, tmp_path / "out", max_train_steps=2, mixed_precision="no"))
    assert result.steps == 2 and all(math.isfinite(x) for x in result.losses)


def test_fp16_on_cpu_is_refused(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError) as info:
        train(short_config(tiny_model_dir, product_dir, tmp_path, mixed_precision="fp16"))
    assert "GPU" in info.value.problems["mixed_precision"]
    assert not list(tmp_path.iterdir())


def test_invalid_config_is_refused_before_loading(product_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError) as info:
        train(short_config(tmp_path / "missing-model", product_dir, tmp_path / "out", max_train_steps=0))
    assert set(info.value.problems) == {"pretrained_model", "max_train_steps"}
    assert not (tmp_path / "out").exists()


def test_divergence_stops_without_writing(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    from training.loop import TrainingDivergedError

    config = short_config(
        tiny_model_dir, product_dir, tmp_path / "out", learning_rate=1e30, max_train_steps=6
    )
    with pytest.raises(TrainingDivergedError, match="Lower learning_rate"):
        train(config)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
