"""The saved LoRA: loads in diffusers with the right alpha, changes images, unloads cleanly, carries
its metadata and hashes, and was trained with 8-bit AdamW."""

from __future__ import annotations

import hashlib
import json
import stat
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tests.fixtures import render_np as render
from training import TrainConfigError, save_lora
from training.config import DEFAULT_TARGET_MODULES
from training.lora import attach_lora, file_tensor_sha256, matched_modules
from training.reference import SD15_UNET


def load_unet(model_dir: Path):  # -> UNet2DConditionModel
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", local_files_only=True)



# -- targets ------------------------------------------------------------------------------------


def test_default_targets_exist_in_tiny_and_sd15_unets(tiny_model_dir: Path) -> None:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # SD-1.5 shapes without allocating 860M weights
        sd15 = UNet2DConditionModel(**SD15_UNET)
    for unet in (load_unet(tiny_model_dir), sd15):
        matches = matched_modules(unet, DEFAULT_TARGET_MODULES)
        assert all(matches.values()), {t: len(p) for t, p in matches.items()}
        for paths in matches.values():  # peft can wrap every one of them
            assert all(isinstance(unet.get_submodule(p), torch.nn.Linear | torch.nn.Conv2d) for p in paths)
    assert len(matched_modules(sd15, ["to_q"])["to_q"]) == 32  # 16 transformer blocks x attn1/attn2


def test_no_matching_target_is_a_config_error(tiny_model_dir: Path) -> None:
    unet = load_unet(tiny_model_dir)
    with pytest.raises(TrainConfigError) as info:
        attach_lora(unet, rank=4, alpha=4.0, target_modules=["q_proj", "attention.query"])
    assert "q_proj" in info.value.problems["target_modules"]
    assert not getattr(unet, "peft_config", None)


# -- the trained run ------------------------------------------------------------------------------


def test_loss_falls(trained) -> None:
    losses = trained.result.losses
    assert len(losses) == trained.result.steps == 40
    assert all(np.isfinite(losses))
    first, last = statistics.mean(losses[:5]), statistics.mean(losses[-5:])
    assert last < 0.9 * first, (first, last)
    assert trained.result.final_loss == losses[-1]


def test_progress_reported_every_step(trained) -> None:
    updates = trained.progress
    assert [u.step for u in updates] == list(range(1, 41))
    assert all(u.total_steps == 40 for u in updates)
    assert [u.loss for u in updates] == trained.result.losses
    assert all(u.lr == pytest.approx(3e-3) for u in updates)  # constant, no warmup
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(updates, updates[1:], strict=False))


def test_lora_loads_changes_the_image_and_unloads_exactly(trained, tiny_model_dir: Path) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    pipe.load_lora_weights(str(trained.result.lora_path), adapter_name="brandx")
    with_lora = render(pipe)
    assert np.abs(with_lora - base).max() > 0.01
    pipe.disable_lora()
    np.testing.assert_array_equal(render(pipe), base)
    pipe.enable_lora()
    np.testing.assert_array_equal(render(pipe), with_lora)
    pipe.unload_lora_weights()
    np.testing.assert_array_equal(render(pipe), base)


def test_loaded_lora_uses_the_trained_alpha(trained, tiny_model_dir: Path) -> None:
    """alpha (2) != rank (4): the layer must add (alpha / rank) * B @ A, read from the file."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    pipe.load_lora_weights(str(trained.result.lora_path), adapter_name="brandx")
    config = pipe.unet.peft_config["brandx"]
    assert (config.r, config.lora_alpha) == (4, 2.0)
    assert set(config.target_modules) == set(DEFAULT_TARGET_MODULES)

    name = "up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    with safe_open(str(trained.result.lora_path), framework="pt") as f:
        lora_a = f.get_tensor(f"unet.{name}.lora_A.weight")
        lora_b = f.get_tensor(f"unet.{name}.lora_B.weight")
    assert lora_b.abs().max() > 0  # trained away from peft's zero init
    layer = pipe.unet.get_submodule(name)
    x = torch.randn(2, 32)
    with torch.no_grad():
        delta = layer(x) - layer.base_layer(x)
    torch.testing.assert_close(delta, (2.0 / 4) * x @ lora_a.T @ lora_b.T)


def test_file_has_peft_keys_metadata_and_hashes(trained) -> None:
    path: Path = trained.result.lora_path
    assert path.name == "brandx_v1.safetensors"
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert keys and all(
        k.startswith("unet.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys
    )
    assert all(isinstance(v, str) for v in meta.values())

    adapter = json.loads(meta["lora_adapter_metadata"])
    assert adapter["unet.r"] == 4 and adapter["unet.lora_alpha"] == 2.0
    assert adapter["unet.target_modules"] == sorted(DEFAULT_TARGET_MODULES)
    expected = {
        "format": "pt",
        "ss_network_dim": "4",
        "ss_network_alpha": "2.0",
        "ss_learning_rate": "0.003",
        "ss_unet_lr": "0.003",
        "ss_max_train_steps": "40",
        "ss_steps": "40",
        "ss_seed": "0",
        "ss_resolution": "(64, 64)",
        "ss_num_train_images": "4",
        "ss_batch_size_per_device": "4",
        "ss_mixed_precision": "no",
        "ss_output_name": "brandx_v1",
        "ss_base_model_version": "sd_v1",
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": "BrandX bottle v1",  # the caller's value wins
        "modelspec.trigger_phrase": "brandx bottle",
        "modelspec.resolution": "64x64",
        "modelspec.prediction_type": "epsilon",
    }
    assert {k: meta.get(k) for k in expected} == expected
    started, finished = float(meta["ss_training_started_at"]), float(meta["ss_training_finished_at"])
    assert 0 < finished - started < 600
    assert meta["modelspec.date"][:4].isdigit() and meta["modelspec.date"].endswith("+00:00")

    # Hashes: the whole file, and kohya's tensor-payload hash (header excluded).
    data = path.read_bytes()
    assert trained.result.sha256 == hashlib.sha256(data).hexdigest()
    payload = data[8 + int.from_bytes(data[:8], "little") :]
    tensor_hash = hashlib.sha256(payload).hexdigest()
    assert trained.result.tensor_sha256 == tensor_hash == meta["sshs_model_hash"]
    assert meta["modelspec.hash_sha256"] == f"0x{tensor_hash}"


def test_trained_with_8bit_adamw(trained) -> None:
    with safe_open(str(trained.result.lora_path), framework="pt") as f:
        optimizer = f.metadata()["ss_optimizer"]
    assert optimizer.startswith("bitsandbytes.optim.adamw.AdamW8bit(")


def test_adamw8bit_keeps_8bit_state_for_every_lora_tensor(tiny_model_dir: Path) -> None:
    import bitsandbytes as bnb

    from training.optim import build_optimizer

    unet = load_unet(tiny_model_dir)
    unet.requires_grad_(False)
    attach_lora(unet, rank=4, alpha=4.0, target_modules=list(DEFAULT_TARGET_MODULES))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, "adamw8bit", 1e-3)
    assert type(optimizer) is bnb.optim.AdamW8bit
    sum((p.float() ** 2).sum() for p in params).backward()
    optimizer.step()
    assert all(optimizer.state[p]["state1"].dtype == torch.uint8 for p in params)
    assert all(optimizer.state[p]["state2"].dtype == torch.uint8 for p in params)
    assert type(build_optimizer(params, "adamw", 1e-3)) is torch.optim.AdamW


def test_output_dir_holds_only_the_lora_and_its_kohya_copy(trained) -> None:
    assert sorted(p.name for p in Path(trained.config.output_dir).iterdir()) == [
        "brandx_v1.kohya.safetensors", "brandx_v1.safetensors",
    ]  # fmt: skip
    assert stat.S_IMODE(trained.result.lora_path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE(trained.result.kohya_path.stat().st_mode) == 0o644


def test_save_lora_refuses_reserved_keys_and_leaves_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    unet = load_unet(tiny_model_dir)
    attach_lora(unet, rank=2, alpha=2.0, target_modules=["to_q"])
    target = tmp_path / "out" / "a.safetensors"
    digest = save_lora(unet, target, {"ss_output_name": "a"})
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    before = target.read_bytes()
    with pytest.raises(ValueError, match="sshs_model_hash"):
        save_lora(unet, target, {"sshs_model_hash": "x"})
    with pytest.raises(TypeError, match="str -> str"):
        save_lora(unet, target, {"ss_steps": 3})  # type: ignore[dict-item]
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["a.safetensors"]
    # Same weights, other metadata: other file hash, same tensor hash.
    other = tmp_path / "out" / "b.safetensors"
    assert save_lora(unet, other, {"ss_output_name": "b"}) != digest
    assert file_tensor_sha256(other) == file_tensor_sha256(target)


def test_layout_matches_diffusers_save_lora_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Same tensor names and adapter metadata as diffusers' own writer (sets compared unordered)."""
    from diffusers import StableDiffusionPipeline
    from peft import get_peft_model_state_dict

    unet = load_unet(tiny_model_dir)
    attach_lora(unet, rank=4, alpha=8.0, target_modules=["to_q", "conv1"])
    ours = tmp_path / "ours.safetensors"
    save_lora(unet, ours, {})
    StableDiffusionPipeline.save_lora_weights(
        tmp_path / "diffusers",
        unet_lora_layers=get_peft_model_state_dict(unet),
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
    )

    def read(path: Path) -> tuple[dict, dict]:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            adapter = json.loads(f.metadata()["lora_adapter_metadata"])
        adapter["unet.target_modules"] = sorted(adapter["unet.target_modules"])
        return tensors, adapter

    our_tensors, our_adapter = read(ours)
    their_tensors, their_adapter = read(tmp_path / "diffusers" / "pytorch_lora_weights.safetensors")
    assert our_adapter == their_adapter
    assert our_tensors.keys() == their_tensors.keys()
    assert all(torch.equal(our_tensors[k], their_tensors[k]) for k in our_tensors)
