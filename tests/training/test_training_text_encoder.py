"""The text-encoder LoRA (``train_text_encoder``): it changes the text encoder, diffusers loads the PEFT
and kohya files to the same pixels, resume is exact, it has its own learning rate, and SDXL trains both
encoders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.fixtures import render_np as render
from tests.training.conftest import TrainedRun, one_torch_thread
from training import TrainConfig, TrainConfigError, train
from training.kohya import kohya_from_file

PROMPT = "photo of brandx bottle"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@pytest.fixture(scope="module")
def te_trained(
    tiny_model_dir: Path, product_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainedRun:
    """12 steps of UNet + text-encoder LoRA; the encoder's rank, alpha and LR differ from the UNet's."""
    config = TrainConfig(
        pretrained_model=str(tiny_model_dir),
        data_dir=str(product_dir),
        output_dir=str(tmp_path_factory.mktemp("te-out")),
        output_name="brandx_te",
        resolution=64,
        train_batch_size=4,
        max_train_steps=12,
        learning_rate=3e-3,
        rank=4,
        alpha=2.0,
        train_text_encoder=True,
        text_encoder_lr=1e-3,
        text_encoder_rank=2,
        text_encoder_alpha=3.0,  # != rank: loaders must take alpha from the files
    )
    with one_torch_thread():
        result = train(config)
    return TrainedRun(config=config, result=result, progress=[])


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def pipeline(model: Path):  # -> StableDiffusionPipeline
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def encode(pipe, prompt: str = PROMPT) -> torch.Tensor:
    ids = pipe.tokenizer(
        [prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]


def test_files_hold_both_loras_under_diffusers_and_kohya_names(te_trained: TrainedRun) -> None:
    peft, meta = read(te_trained.result.lora_path)
    encoder_keys = [k for k in peft if k.startswith("text_encoder.")]
    assert encoder_keys and all(
        k.startswith("text_encoder.text_model.encoder.layers.")
        and k.endswith((".lora_A.weight", ".lora_B.weight"))
        for k in encoder_keys
    )
    assert {k.split(".")[-3] for k in encoder_keys} == set(PROJECTIONS)
    assert len(encoder_keys) == 5 * 4 * 2  # 5 layers x 4 projections x (A, B)
    assert peft["text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"].shape == (2, 32)
    adapter = json.loads(meta["lora_adapter_metadata"])
    assert (adapter["unet.r"], adapter["unet.lora_alpha"]) == (4, 2.0)
    assert (adapter["text_encoder.r"], adapter["text_encoder.lora_alpha"]) == (2, 3.0)
    assert sorted(adapter["text_encoder.target_modules"]) == sorted(PROJECTIONS)
    assert (meta["ss_network_train_unet_only"], meta["ss_text_encoder_lr"], meta["ss_unet_lr"]) == (
        "False", "0.001", "0.003",
    )  # fmt: skip

    kohya, kohya_meta = read(te_trained.result.kohya_path)
    name, path = (
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
    )
    assert torch.equal(kohya[f"{name}.lora_down.weight"], peft[f"{path}.lora_A.weight"])
    assert torch.equal(kohya[f"{name}.lora_up.weight"], peft[f"{path}.lora_B.weight"])
    assert kohya[f"{name}.alpha"].item() == 3.0  # the encoder's alpha; the UNet's modules keep 2.0
    assert kohya["lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.alpha"].item() == 2.0
    assert len([k for k in kohya if k.startswith("lora_te_")]) == 5 * 4 * 3
    assert len(kohya) == len(peft) // 2 * 3
    assert kohya_meta["ss_network_train_unet_only"] == "False"

    # The file alone converts to the same kohya file (checkpoints and the studio use this).
    converted = Path(te_trained.config.output_dir) / "again.kohya.safetensors"
    kohya_from_file(te_trained.result.lora_path, converted)
    again, again_meta = read(converted)
    assert again.keys() == kohya.keys() and all(torch.equal(again[k], kohya[k]) for k in kohya)
    assert again_meta == kohya_meta


def test_diffusers_loads_both_files_to_the_same_pixels_and_text_encoder(
    te_trained: TrainedRun, trained: TrainedRun, tiny_model_dir: Path, tmp_path: Path
) -> None:
    pipe = pipeline(tiny_model_dir)
    base_image, base_text = render(pipe), encode(pipe)

    pipe.load_lora_weights(str(te_trained.result.lora_path), adapter_name="peft")
    config = pipe.text_encoder.peft_config["peft"]
    assert (config.r, config.lora_alpha) == (2, 3.0)
    peft_image, peft_text = render(pipe), encode(pipe)
    assert (peft_text - base_text).abs().max() > 1e-3  # the text encoder learned something
    pipe.unload_lora_weights()
    torch.testing.assert_close(encode(pipe), base_text, rtol=0, atol=0)

    pipe.load_lora_weights(str(te_trained.result.kohya_path), adapter_name="kohya")
    config = pipe.text_encoder.peft_config["kohya"]
    assert (config.r, config.lora_alpha) == (2, 3.0)
    kohya_image, kohya_text = render(pipe), encode(pipe)
    torch.testing.assert_close(kohya_text, peft_text, rtol=0, atol=0)
    np.testing.assert_array_equal(kohya_image, peft_image)
    assert np.abs(peft_image - base_image).max() > 0.01
    pipe.unload_lora_weights()

    # The text-encoder part shows in the pixels: the same file without it renders otherwise.
    tensors, meta = read(te_trained.result.lora_path)
    unet_only = tmp_path / "unet_only.safetensors"
    save_file({k: v for k, v in tensors.items() if k.startswith("unet.")}, str(unet_only), metadata=meta)
    pipe.load_lora_weights(str(unet_only), adapter_name="unet_only")
    torch.testing.assert_close(encode(pipe), base_text, rtol=0, atol=0)
    assert np.abs(render(pipe) - peft_image).max() > 1e-3
    pipe.unload_lora_weights()

    # Without the feature the text encoder is untouched (and the header says so).
    pipe.load_lora_weights(str(trained.result.lora_path), adapter_name="off")
    torch.testing.assert_close(encode(pipe), base_text, rtol=0, atol=0)
    _, off_meta = read(trained.result.lora_path)
    assert (off_meta["ss_network_train_unet_only"], off_meta["ss_text_encoder_lr"]) == ("True", "None")


#: Random crops and flips, a partial batch (4 images in batches of 3), accumulation over 2 micro-batches.
RESUME_RUN = {
    "max_train_steps": 4,
    "checkpointing_steps": 2,
    "train_batch_size": 3,
    "gradient_accumulation_steps": 2,
    "center_crop": False,
    "random_flip": True,
    "train_text_encoder": True,
}


def test_resume_with_the_text_encoder_is_exact(small_config, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="training"):
        uninterrupted = train(small_config("a", **RESUME_RUN))
    assert caplog.text.count("cache_text_embeddings is off for this run: train_text_encoder is on") == 1

    updates: list = []
    stopped = train(
        small_config("b", **RESUME_RUN), progress=updates.append, should_stop=lambda: len(updates) >= 3
    )
    assert stopped.steps == 3 and stopped.losses == uninterrupted.losses[:3]
    checkpoint = Path(stopped.lora_path).parent / "checkpoints" / "step-000003"
    tensors, _ = read(checkpoint / "lora.safetensors")
    assert any(k.startswith("text_encoder.") for k in tensors)
    kohya_from_file(checkpoint / "lora.safetensors", checkpoint.parent / "step3.kohya.safetensors")
    assert any(k.startswith("lora_te_") for k in read(checkpoint.parent / "step3.kohya.safetensors")[0])

    resumed = train(small_config("b", resume_from="latest", **RESUME_RUN))
    assert resumed.losses == uninterrupted.losses
    assert resumed.tensor_sha256 == uninterrupted.tensor_sha256  # UNet and text-encoder LoRA alike


def test_the_text_encoder_has_its_own_learning_rate(small_config) -> None:
    result = train(small_config(max_train_steps=2, train_text_encoder=True, text_encoder_lr=1e-9))
    tensors, _ = read(result.lora_path)
    encoder_b = max(
        v.abs().max().item() for k, v in tensors.items() if k.startswith("text_encoder.") and ".lora_B." in k
    )
    unet_b = max(
        v.abs().max().item() for k, v in tensors.items() if k.startswith("unet.") and ".lora_B." in k
    )
    assert 0 < encoder_b < 1e-7 and unet_b > 1e-4  # lora_B starts at 0; Adam moves it by about lr a step


def test_text_encoder_settings_are_validated(small_config) -> None:
    with pytest.raises(TrainConfigError) as info:
        small_config(text_encoder_lr=1e-4, text_encoder_rank=8).validate()
    assert info.value.problems["text_encoder_lr"] == (
        "is only used with train_text_encoder true; set train_text_encoder or remove it"
    )
    assert "text_encoder_rank" in info.value.problems
    with pytest.raises(TrainConfigError) as info:
        small_config(
            train_text_encoder="yes",
            text_encoder_lr=float("nan"),
            text_encoder_rank=0,
            text_encoder_alpha=-1.0,
        ).validate()
    assert set(info.value.problems) == {
        "train_text_encoder", "text_encoder_lr", "text_encoder_rank", "text_encoder_alpha",
    }  # fmt: skip
    assert "must be >= 1" in info.value.problems["text_encoder_rank"]
    small_config(train_text_encoder=True, text_encoder_rank=8).validate()


def test_sdxl_trains_both_text_encoders(sdxl_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    config = TrainConfig(
        pretrained_model=str(sdxl_model_dir), data_dir=str(product_dir), output_dir=str(tmp_path / "out"),
        resolution=64, train_batch_size=4, max_train_steps=3, learning_rate=3e-3, rank=4, alpha=2.0,
        train_text_encoder=True,
    )  # fmt: skip
    result = train(config)
    peft, meta = read(result.lora_path)
    first = {k for k in peft if k.startswith("text_encoder.")}
    second = {k for k in peft if k.startswith("text_encoder_2.")}
    # SDXL conditions on the first encoder's penultimate layer: its last layer (2 of 0..2) gets no LoRA.
    assert {k.split(".")[4] for k in first} == {"0", "1"} and {k.split(".")[4] for k in second} == {
        "0",
        "1",
        "2",
    }
    kohya, _ = read(result.kohya_path)
    assert "lora_te1_text_model_encoder_layers_1_self_attn_out_proj.lora_up.weight" in kohya
    assert "lora_te2_text_model_encoder_layers_2_self_attn_v_proj.alpha" in kohya
    assert not [k for k in kohya if k.startswith("lora_te_")]

    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_model_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def encoded() -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
        return embeds, pooled

    base_embeds, base_pooled = encoded()
    pipe.load_lora_weights(str(result.lora_path), adapter_name="peft")
    assert {"peft"} <= set(pipe.text_encoder.peft_config) and {"peft"} <= set(pipe.text_encoder_2.peft_config)
    peft_embeds, peft_pooled = encoded()
    with_peft = render(pipe)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(result.kohya_path), adapter_name="kohya")
    kohya_embeds, kohya_pooled = encoded()
    np.testing.assert_array_equal(render(pipe), with_peft)
    torch.testing.assert_close(kohya_embeds, peft_embeds, rtol=0, atol=0)
    torch.testing.assert_close(kohya_pooled, peft_pooled, rtol=0, atol=0)
    width = 32  # the first encoder's share of the concatenated hidden states
    assert (peft_embeds[..., :width] - base_embeds[..., :width]).abs().max() > 1e-4  # first encoder
    assert (peft_embeds[..., width:] - base_embeds[..., width:]).abs().max() > 1e-4  # second encoder
    assert (peft_pooled - base_pooled).abs().max() > 1e-4
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"


def test_gradient_checkpointing_trains_the_text_encoder_alike(small_config) -> None:
    from safetensors.torch import load_file

    plain = train(small_config("plain", max_train_steps=2, train_text_encoder=True))
    checkpointed = train(
        small_config("ckpt", max_train_steps=2, train_text_encoder=True, gradient_checkpointing=True)
    )
    assert checkpointed.losses == pytest.approx(plain.losses, abs=1e-6, rel=0)
    a, b = load_file(str(plain.lora_path)), load_file(str(checkpointed.lora_path))
    assert a.keys() == b.keys() and any(k.startswith("text_encoder.") for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
