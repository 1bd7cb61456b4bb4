"""SDXL in the trainer: detection, the pipeline's text and size conditioning, falling loss, exact
resume, SGM-named kohya files that diffusers loads to the PEFT file's pixels, and SDXL metadata."""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tests.fixtures import render_np as render
from tests.training.conftest import MAIN_RUN, TrainedRun, one_torch_thread
from training import TrainConfig, TrainConfigError, train
from training.caching import TrainInputs
from training.config import DEFAULT_TARGET_MODULES
from training.dataset import TrainingImages, find_examples
from training.family import model_family
from training.kohya import kohya_from_file
from training.lora import matched_modules
from training.models import freeze, load_parts, vae_dtype
from training.reference import SDXL_UNET
from training.sgm import LAYOUT_KEY, block_names, sgm_path, unet_layout

SGM_URL = "https://github.com/Stability-AI/generative-models"


@pytest.fixture(scope="session")
def sdxl_trained(
    sdxl_model_dir: Path, product_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainedRun:
    """One 40-step SDXL run with the SD-1.x main run's settings (rank 4, alpha 2)."""
    config = TrainConfig(
        pretrained_model=str(sdxl_model_dir),
        data_dir=str(product_dir),
        output_dir=str(tmp_path_factory.mktemp("sdxl-out")),
        output_name="brandx_xl",
        **MAIN_RUN,
    )
    updates: list = []
    with one_torch_thread():
        result = train(config, progress=updates.append)
    return TrainedRun(config=config, result=result, progress=updates)


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


# -- detection and loading -----------------------------------------------------------------------


def test_sdxl_folder_is_detected_and_loaded(sdxl_model_dir: Path, tiny_model_dir: Path) -> None:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    assert (model_family(sdxl_model_dir), model_family(tiny_model_dir)) == ("sdxl", "sd1")
    parts = load_parts(sdxl_model_dir)
    assert parts.family == "sdxl" and parts.tokenizer_2 is not None
    assert type(parts.text_encoder) is CLIPTextModel
    assert type(parts.text_encoder_2) is CLIPTextModelWithProjection
    sd1 = load_parts(tiny_model_dir)
    assert (sd1.family, sd1.tokenizer_2, sd1.text_encoder_2) == ("sd1", None, None)


def test_sdxl_folder_without_its_second_text_encoder_is_refused(
    sdxl_model_dir: Path, product_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-sdxl"
    shutil.copytree(sdxl_model_dir, broken)
    shutil.rmtree(broken / "text_encoder_2")
    config = TrainConfig(
        pretrained_model=str(broken), data_dir=str(product_dir), output_dir=str(tmp_path / "out")
    )
    with pytest.raises(TrainConfigError) as info:
        train(config)
    message = info.value.problems["pretrained_model"]
    assert "SDXL" in message and "lacks sub-folder(s) text_encoder_2" in message
    assert not (tmp_path / "out").exists()  # refused before anything was loaded or written

    shutil.rmtree(broken / "tokenizer_2")
    with pytest.raises(TrainConfigError, match="text_encoder_2, tokenizer_2"):
        config.validate()


# -- conditioning --------------------------------------------------------------------------------


def test_text_conditioning_is_the_pipelines_and_both_encoders_are_released(
    sdxl_model_dir: Path, product_dir: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_model_dir, local_files_only=True)
    caption = find_examples(product_dir)[2].caption
    embeds, _, pooled, _ = pipe.encode_prompt(caption, device="cpu", do_classifier_free_guidance=False)

    parts = load_parts(sdxl_model_dir)
    examples = find_examples(product_dir)
    images = TrainingImages(examples, [(64, 64)] * len(examples), seed=0)
    inputs = TrainInputs(images, parts, torch.device("cpu"), torch.float32)
    encoders = weakref.ref(parts.text_encoder), weakref.ref(parts.text_encoder_2)
    inputs.build_caches(latents=True, text=True)
    assert (parts.vae, parts.text_encoder, parts.text_encoder_2) == (None, None, None)
    assert encoders[0]() is None and encoders[1]() is None

    batch = inputs.batch([2, 0], epoch=0)
    assert batch.encoder_hidden_states.shape == (2, 77, 32 + 48)  # both encoders' widths, concatenated
    torch.testing.assert_close(batch.encoder_hidden_states[0], embeds[0], rtol=0, atol=0)
    torch.testing.assert_close(batch.pooled_embeds[0], pooled[0], rtol=0, atol=0)
    assert batch.time_ids is not None and batch.time_ids.dtype == torch.float32


def test_size_conditioning_follows_the_crop_and_flip(product_dir: Path) -> None:
    """product_0 is 96x80: covering 64x64 resizes it to 77x64, the centre crop starts at x = 6."""
    examples = find_examples(product_dir)
    images = TrainingImages(examples, [(64, 64)] * len(examples), seed=0, random_flip=True)
    plain, mirrored = images.fixed_variants(0)
    assert (plain.left, plain.top) == (6, 0)
    assert images.add_time_ids(plain) == (80, 96, 0, 6, 64, 64)
    assert images.add_time_ids(mirrored) == (80, 96, 0, 77 - 64 - 6, 64, 64)  # offset in the mirror image

    # product_3 (128x96) in a 128x64 bucket: it covers it at 128x96, the centre crop starts at y = 16.
    wide = TrainingImages(examples, [(128, 64)] * len(examples), seed=0)
    assert wide.add_time_ids(wide.variant(3, 0)) == (96, 128, 16, 0, 64, 128)


def test_vae_stays_float32_under_fp16_when_it_asks_to(
    sdxl_model_dir: Path, tiny_model_dir: Path, product_dir: Path
) -> None:
    frozen = load_parts(sdxl_model_dir)
    freeze(frozen, torch.device("cpu"), torch.float16)
    assert (frozen.vae.dtype, frozen.unet.dtype) == (torch.float32, torch.float16)
    assert frozen.text_encoder.dtype == frozen.text_encoder_2.dtype == torch.float16
    sd1 = load_parts(tiny_model_dir)
    freeze(sd1, torch.device("cpu"), torch.float16)
    assert (
        sd1.vae.config.force_upcast and sd1.vae.dtype == torch.float16
    )  # diffusers' default; SD-1.x ignores it

    parts = load_parts(sdxl_model_dir)
    assert parts.vae.config.force_upcast
    assert vae_dtype(torch.float16, parts.vae.config, "sdxl") == torch.float32
    assert vae_dtype(torch.bfloat16, parts.vae.config, "sdxl") == torch.bfloat16  # bf16 has float32's range
    assert vae_dtype(torch.float16, parts.vae.config, "sd1") == torch.float16  # as diffusers' SD-1.x pipeline
    no_upcast = dataclasses.make_dataclass("VaeConfig", [("force_upcast", bool)])(False)
    assert vae_dtype(torch.float16, no_upcast, "sdxl") == torch.float16

    examples = find_examples(product_dir)
    images = TrainingImages(examples, [(64, 64)] * len(examples), seed=0)
    variants = [images.fixed_variants(1)[0]]
    in_float32 = TrainInputs(images, parts, torch.device("cpu"), torch.float32)._encode(variants)
    half_run = TrainInputs(images, parts, torch.device("cpu"), torch.float16)._encode(variants)
    assert half_run.dtype == torch.float16  # encoded in float32, handed to the UNet in the run's dtype
    torch.testing.assert_close(half_run, in_float32.half(), rtol=0, atol=0)


# -- training ------------------------------------------------------------------------------------


def test_loss_falls(sdxl_trained: TrainedRun) -> None:
    losses = sdxl_trained.result.losses
    assert len(losses) == 40 and all(np.isfinite(losses))
    first, last = statistics.mean(losses[:5]), statistics.mean(losses[-5:])
    assert last < 0.9 * first, (first, last)


def sdxl_config(model: Path, data: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict = {
        "resolution": 64,
        "train_batch_size": 3,  # 4 images: a partial batch, epochs end mid-window
        "max_train_steps": 6,
        "learning_rate": 1e-3,
        "checkpointing_steps": 2,
        "center_crop": False,  # random crops and flips: size conditioning changes every epoch
        "random_flip": True,
    }
    settings.update(overrides)
    return TrainConfig(pretrained_model=str(model), data_dir=str(data), output_dir=str(out), **settings)


def test_interrupted_run_resumes_to_the_same_lora(
    sdxl_model_dir: Path, product_dir: Path, tmp_path: Path
) -> None:
    uninterrupted = train(sdxl_config(sdxl_model_dir, product_dir, tmp_path / "a"))

    updates: list = []
    stopped = train(
        sdxl_config(sdxl_model_dir, product_dir, tmp_path / "b"),
        progress=updates.append,
        should_stop=lambda: len(updates) >= 3,
    )
    assert stopped.steps == 3 and stopped.losses == uninterrupted.losses[:3]
    resumed = train(sdxl_config(sdxl_model_dir, product_dir, tmp_path / "b", resume_from="latest"))
    assert resumed.losses == uninterrupted.losses
    assert resumed.tensor_sha256 == uninterrupted.tensor_sha256

    # Text embeddings and latents encoded every step give the same training as cached ones.
    uncached = train(
        sdxl_config(
            sdxl_model_dir, product_dir, tmp_path / "c", cache_text_embeddings=False, checkpointing_steps=0
        )
    )
    assert uncached.losses == pytest.approx(uninterrupted.losses, abs=1e-5, rel=0)


# -- output files --------------------------------------------------------------------------------


def test_kohya_file_gives_the_pixels_of_the_peft_file(sdxl_trained: TrainedRun, sdxl_model_dir: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_model_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    pipe.load_lora_weights(str(sdxl_trained.result.lora_path), adapter_name="peft")
    with_peft = render(pipe)
    pipe.unload_lora_weights()
    np.testing.assert_array_equal(render(pipe), base)
    pipe.load_lora_weights(str(sdxl_trained.result.kohya_path), adapter_name="kohya")
    config = pipe.unet.peft_config["kohya"]
    assert (config.r, config.lora_alpha) == (4, 2.0)
    peft, _ = read(sdxl_trained.result.lora_path)
    loaded = {n: m for n, m in pipe.unet.named_modules() if "kohya" in getattr(m, "lora_A", {})}
    assert {f"unet.{n}.lora_A.weight" for n in loaded} == {k for k in peft if ".lora_A." in k}
    for path, module in loaded.items():  # every tensor landed on the module it was trained on
        assert torch.equal(module.lora_A["kohya"].weight, peft[f"unet.{path}.lora_A.weight"])
        assert torch.equal(module.lora_B["kohya"].weight, peft[f"unet.{path}.lora_B.weight"])
    with_kohya = render(pipe)
    assert np.abs(with_peft - base).max() > 0.01
    np.testing.assert_array_equal(with_kohya, with_peft)


def test_sdxl_metadata_and_sgm_key_names(sdxl_trained: TrainedRun) -> None:
    peft, peft_meta = read(sdxl_trained.result.lora_path)
    kohya, meta = read(sdxl_trained.result.kohya_path)
    for header in (peft_meta, meta):
        assert header["ss_base_model_version"] == "sdxl_base_v1-0"
        assert header["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
        assert (header["modelspec.resolution"], header["ss_resolution"]) == ("64x64", "(64, 64)")
        assert header["ss_v2"] == "False" and header["modelspec.prediction_type"] == "epsilon"
        assert json.loads(header[LAYOUT_KEY]) == {
            "layers_per_block": [2, 2], "down_attentions": [False, True], "up_attentions": [True, False],
            "mid_attention": True,
        }  # fmt: skip
    assert peft_meta["modelspec.implementation"] == "diffusers"  # diffusers/PEFT key names
    assert meta["modelspec.implementation"] == SGM_URL  # SGM key names
    assert (meta["ss_network_module"], meta["ss_network_dim"], meta["ss_network_alpha"]) == (
        "networks.lora", "4", "2.0",
    )  # fmt: skip

    assert len(kohya) == len(peft) // 2 * 3
    assert not [k for k in kohya if any(d in k for d in ("down_blocks", "mid_block", "up_blocks"))]
    pairs = {
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": "input_blocks_4_1_transformer_blocks_0_attn1_to_q",
        "down_blocks.1.resnets.0.conv1": "input_blocks_4_0_in_layers_2",
        "down_blocks.0.resnets.1.conv2": "input_blocks_2_0_out_layers_3",
        "mid_block.attentions.0.proj_in": "middle_block_1_proj_in",
        "mid_block.resnets.1.conv1": "middle_block_2_in_layers_2",
        "up_blocks.0.attentions.2.transformer_blocks.0.ff.net.2": "output_blocks_2_1_transformer_blocks_0_ff_net_2",
        "up_blocks.1.resnets.2.conv2": "output_blocks_5_0_out_layers_3",
    }
    for path, name in pairs.items():
        torch.testing.assert_close(
            kohya[f"lora_unet_{name}.lora_down.weight"], peft[f"unet.{path}.lora_A.weight"]
        )
        torch.testing.assert_close(
            kohya[f"lora_unet_{name}.lora_up.weight"], peft[f"unet.{path}.lora_B.weight"]
        )
        assert kohya[f"lora_unet_{name}.alpha"].item() == 2.0


def test_kohya_from_file_gives_the_runs_kohya_file(
    trained: TrainedRun, sdxl_trained: TrainedRun, tmp_path: Path
) -> None:
    for name, run in (("sd1", trained), ("sdxl", sdxl_trained)):
        converted = tmp_path / f"{name}.kohya.safetensors"
        tensor_hash = kohya_from_file(run.result.lora_path, converted)
        tensors, header = read(converted)
        expected, expected_header = read(run.result.kohya_path)
        assert tensors.keys() == expected.keys()
        assert all(torch.equal(tensors[k], expected[k]) for k in tensors), name
        assert header == expected_header and tensor_hash == header["sshs_model_hash"]

    with pytest.raises(ValueError, match="not a UNet LoRA in diffusers/PEFT format"):
        kohya_from_file(sdxl_trained.result.kohya_path, tmp_path / "again.safetensors")
    with pytest.raises(ValueError, match="written by the export itself"):
        kohya_from_file(sdxl_trained.result.lora_path, tmp_path / "again.safetensors", {"format": "pt"})
    assert not (tmp_path / "again.safetensors").exists()


def test_kohya_from_file_writes_nothing_when_no_module_has_a_kohya_name(tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel

    from studio.builtin_model import UNET_CONFIG  # test-only: the tiny SD-1.x UNet's architecture
    from training.lora import attach_lora, save_lora

    unet = UNet2DConditionModel(**UNET_CONFIG, class_embed_type="timestep")
    attach_lora(unet, rank=2, alpha=1.0, target_modules=["class_embedding.linear_1"])
    save_lora(unet, tmp_path / "class_only.safetensors", {"ss_output_name": "class_only"})
    assert kohya_from_file(tmp_path / "class_only.safetensors", tmp_path / "k.safetensors") is None
    assert not (tmp_path / "k.safetensors").exists()


def test_kohya_from_a_checkpoint_file(sdxl_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    """A checkpoint's lora.safetensors carries the family and UNet layout the SGM names need."""
    result = train(sdxl_config(sdxl_model_dir, product_dir, tmp_path / "run", max_train_steps=2))
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000002" / "lora.safetensors"
    assert read(checkpoint)[1]["ss_base_model_version"] == "sdxl_base_v1-0"
    kohya_from_file(checkpoint, tmp_path / "step2.kohya.safetensors", {"modelspec.title": "step 2"})
    tensors, header = read(tmp_path / "step2.kohya.safetensors")
    final, _ = read(result.kohya_path)  # the run ended at the checkpoint's step: same weights
    assert tensors.keys() == final.keys() and all(torch.equal(tensors[k], final[k]) for k in tensors)
    assert (header["modelspec.title"], header["ss_steps"], header["ss_network_module"]) == (
        "step 2", "2", "networks.lora",
    )  # fmt: skip


# -- naming rules against diffusers' kohya loader ------------------------------------------------


def diffusers_paths_of(kohya_names: list[str], unet_config: object) -> list[str]:
    """Module paths diffusers' SDXL kohya loader assigns to ``lora_unet_<name>`` keys."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils.state_dict_utils import convert_unet_state_dict_to_peft

    state: dict[str, torch.Tensor] = {}
    for name in kohya_names:
        key = "lora_unet_" + name.replace(".", "_")
        state.update({f"{key}.lora_down.weight": torch.zeros(1), f"{key}.lora_up.weight": torch.zeros(1)})
        state[f"{key}.alpha"] = torch.tensor(1.0)
    converted, _ = StableDiffusionXLPipeline.lora_state_dict(state, unet_config=unet_config)
    peft = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in converted.items()})
    return sorted({k.rsplit(".lora_", 1)[0].replace(".processor", "") for k in peft})


@pytest.mark.parametrize("config_name", ["sdxl_base", "tiny_sdxl"])
def test_every_layer_has_an_sgm_name_that_diffusers_maps_back(config_name: str) -> None:
    from diffusers import UNet2DConditionModel

    from tests.sdxl_model import UNET_CONFIG

    with torch.device("meta"):
        unet = UNet2DConditionModel(**(SDXL_UNET if config_name == "sdxl_base" else UNET_CONFIG))
    blocks = block_names(unet_layout(unet.config))
    layers = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    names = {path: sgm_path(path, blocks) for path in layers}
    assert all(names.values()), [p for p, n in names.items() if n is None]
    assert len(set(names.values())) == len(layers)
    assert diffusers_paths_of(list(names.values()), unet.config) == sorted(layers)
    defaults = {p for found in matched_modules(unet, DEFAULT_TARGET_MODULES).values() for p in found}
    assert defaults <= set(layers)
    if config_name == "sdxl_base":  # names as they appear in SDXL's original (SGM) checkpoint
        assert names["down_blocks.0.downsamplers.0.conv"] == "input_blocks.3.0.op"
        assert names["up_blocks.0.upsamplers.0.conv"] == "output_blocks.2.2.conv"
        assert names["up_blocks.1.upsamplers.0.conv"] == "output_blocks.5.2.conv"
        assert names["up_blocks.1.resnets.0.conv_shortcut"] == "output_blocks.3.0.skip_connection"
        assert names["up_blocks.1.resnets.0.time_emb_proj"] == "output_blocks.3.0.emb_layers.1"
        assert names["down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k"] == (
            "input_blocks.8.1.transformer_blocks.9.attn2.to_k"
        )
        assert names["add_embedding.linear_2"] == "label_emb.0.2" and names["conv_out"] == "out.2"
