"""The kohya-format export: key names, alpha (not rank), 4-D conv weights, metadata, and the same
pixels as the diffusers/PEFT file when diffusers loads it."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.fixtures import render_np as render
from training.config import DEFAULT_TARGET_MODULES
from training.kohya import DROPPED_KEY, export_kohya
from training.lora import attach_lora


def pipeline(model: Path):  # -> StableDiffusionPipeline
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_kohya_file_gives_the_pixels_of_the_peft_file(trained, tiny_model_dir: Path, tmp_path: Path) -> None:
    """Rank 4, alpha 2: diffusers' kohya loader must scale by 2/4 exactly as the PEFT file does.

    Pixels are compared for equality: both files hold the same float32 tensors and the loaders
    build the same peft layers with the same scale, so there is no rounding to allow for.
    """
    kohya_path = trained.result.kohya_path
    assert kohya_path == Path(trained.config.output_dir) / "brandx_v1.kohya.safetensors"
    pipe = pipeline(tiny_model_dir)
    base = render(pipe)
    pipe.load_lora_weights(str(trained.result.lora_path), adapter_name="peft")
    with_peft = render(pipe)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(kohya_path), adapter_name="kohya")
    config = pipe.unet.peft_config["kohya"]
    assert (config.r, config.lora_alpha) == (4, 2.0)
    with_kohya = render(pipe)
    assert np.abs(with_peft - base).max() > 0.01
    np.testing.assert_array_equal(with_kohya, with_peft)

    # The alpha matters: the same file with alpha = rank (diffusers' convert_state_dict_to_kohya) differs.
    tensors, meta = read(kohya_path)
    as_rank = {k: torch.tensor(4.0) if k.endswith(".alpha") else v for k, v in tensors.items()}
    save_file(as_rank, str(tmp_path / "alpha_is_rank.safetensors"), metadata=meta)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(tmp_path / "alpha_is_rank.safetensors"), adapter_name="wrong")
    assert np.abs(render(pipe) - with_peft).max() > 1e-3


def test_kohya_keys_shapes_and_header(trained) -> None:
    peft, peft_meta = read(trained.result.lora_path)
    kohya, meta = read(trained.result.kohya_path)
    assert len(kohya) == len(peft) // 2 * 3  # down, up and alpha per module
    for key, tensor in peft.items():
        path, kind = key.removeprefix("unet.").rsplit(".lora_", 1)
        name = "lora_unet_" + path.replace(".", "_")
        suffix = ".lora_down.weight" if kind == "A.weight" else ".lora_up.weight"
        assert torch.equal(kohya[name + suffix], tensor)  # same values, same (4-D for convs) shape
        assert kohya[name + ".alpha"].shape == () and kohya[name + ".alpha"].item() == 2.0
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert kohya[f"{conv}.lora_down.weight"].shape == (4, 32, 3, 3)
    assert kohya[f"{conv}.lora_up.weight"].shape == (32, 4, 1, 1)
    assert "lora_unet_up_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight" in kohya

    assert (meta["ss_network_module"], meta["ss_network_dim"], meta["ss_network_alpha"]) == (
        "networks.lora", "4", "2.0",
    )  # fmt: skip
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "2.0"}
    assert "lora_adapter_metadata" not in meta and DROPPED_KEY not in meta
    shared = {k for k in peft_meta if k.startswith(("ss_", "modelspec.")) and k != "modelspec.hash_sha256"}
    assert {k: meta[k] for k in shared} == {k: peft_meta[k] for k in shared}
    data = trained.result.kohya_path.read_bytes()
    payload = hashlib.sha256(data[8 + int.from_bytes(data[:8], "little") :]).hexdigest()
    assert meta["sshs_model_hash"] == payload and meta["modelspec.hash_sha256"] == f"0x{payload}"
    assert payload != trained.result.tensor_sha256  # its own payload, not the PEFT file's


def test_inexpressible_modules_are_left_out_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A class-conditioned UNet has ``class_embedding.linear_1``: kohya loaders mangle its name."""
    from diffusers import UNet2DConditionModel

    from studio.builtin_model import UNET_CONFIG  # test-only: the tiny UNet's architecture

    unet = UNet2DConditionModel(**UNET_CONFIG, class_embed_type="timestep")
    attach_lora(unet, rank=2, alpha=1.0, target_modules=["to_q", "linear_1"])
    path = tmp_path / "x.kohya.safetensors"
    with caplog.at_level(logging.WARNING, logger="training.kohya"):
        assert export_kohya(unet, path, {"ss_output_name": "x"}) is not None
    assert "class_embedding.linear_1" in caplog.text
    tensors, meta = read(path)
    assert json.loads(meta[DROPPED_KEY]) == ["class_embedding.linear_1"]
    assert "lora_unet_time_embedding_linear_1.lora_down.weight" in tensors  # expressible: kept
    assert not any("class_embedding" in k for k in tensors)
    assert json.loads(meta["ss_network_args"]) == {}  # no k x k conv among the targets


def test_every_default_target_of_sd15_is_expressible() -> None:
    from diffusers import UNet2DConditionModel

    from training.kohya import EXPRESSIBLE
    from training.lora import matched_modules
    from training.reference import SD15_UNET

    with torch.device("meta"):
        sd15 = UNet2DConditionModel(**SD15_UNET)
    paths = [p for found in matched_modules(sd15, DEFAULT_TARGET_MODULES).values() for p in found]
    assert len(paths) > 200 and all(EXPRESSIBLE.match(p) for p in paths)
    every_layer = [n for n, m in sd15.named_modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    assert all(EXPRESSIBLE.match(p) for p in every_layer)  # SD-1.5 has nothing kohya cannot name


def test_export_can_be_turned_off(small_config, tmp_path: Path) -> None:
    from training import train

    result = train(small_config(max_train_steps=1, export_kohya=False))
    assert result.kohya_path is None
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["lora.safetensors"]
    assert load_file(str(result.lora_path))
