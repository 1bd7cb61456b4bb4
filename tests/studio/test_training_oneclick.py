"""One click on a real (tiny) model: presets by kit and device tier, preflight before loading, validation
samples per checkpoint through the studio's engine, the checkpoint picker, kohya downloads."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from studio import errors
from studio.api import Studio
from studio.schemas import GenerateRequest, KitCreateRequest, LoraChoice, TrainRequest
from studio.train_presets import TABLE, TIERS, preset, tier_for
from tests.fixtures import product_uploads


def test_tiers_follow_device_memory() -> None:
    assert tier_for("cpu", 64_000) == "cpu"
    assert [tier_for("cuda", mb) for mb in (4_000, 6_144, 8_192, 12_288, 16_384, 24_576, 81_920)] == [
        "cpu", "6gb", "8gb", "12gb", "12gb", "24gb", "24gb",
    ]  # fmt: skip


def test_every_family_has_every_tier_and_steps_scale_with_the_kit() -> None:
    assert {(f, t) for f in ("sd1", "sd2", "sdxl") for t in TIERS} <= TABLE.keys()
    few, many, huge = (preset("sd1", "8gb", n) for n in (3, 20, 500))
    assert few.max_train_steps == 300  # the floor: a tiny kit still gets enough steps
    assert many.max_train_steps == 1000  # 20 photos x 100 views / batch 2
    assert huge.max_train_steps == 2000  # the ceiling
    assert preset("sdxl", "24gb", 10, bf16=True).mixed_precision == "bf16"
    assert (
        preset("sdxl", "8gb", 10).mixed_precision == "fp16"
        and preset("sdxl", "8gb", 10).gradient_checkpointing
    )
    assert preset("sd1", "cpu", 10).mixed_precision == "no"


def _kit(studio: Studio, photos: int = 4) -> int:
    kit = studio.create_kit(KitCreateRequest.of(name="Acme", trigger_token="acm_bottle", class_noun="bottle"),
                            product_uploads(photos))  # fmt: skip
    return kit.id


def test_plan_for_the_builtin_model_fits_this_machine(studio: Studio) -> None:
    plan = studio.training_plan(TrainRequest.of(kit_id=_kit(studio)))
    assert plan.preset.name.startswith("CPU smoke") and plan.changes == ()
    assert 0 < plan.estimate_mb < plan.budget_mb and "GB peak" in plan.estimate_summary


def test_a_budget_too_small_refuses_before_training_and_stores_nothing(
    make_studio: Callable[..., Studio],
) -> None:
    studio = make_studio(train_memory_budget_mb=256)
    kit_id = _kit(studio)
    with pytest.raises(errors.TrainingError, match="would not fit.*0.2 GB usable"):
        studio.training_plan(TrainRequest.of(kit_id=kit_id))
    with pytest.raises(errors.TrainingError, match="not started: .*needs"):
        studio.train_lora(TrainRequest.of(kit_id=kit_id, max_train_steps=4))
    assert studio.list_loras() == []
    (run,) = studio.list_training_runs(kit_id)
    assert run.status == "failed" and "preflight" in (run.error or "")


def test_progress_reports_rate_and_eta_and_the_job_message_says_so(
    make_studio: Callable[..., Studio],
) -> None:
    studio = make_studio(validation_images=0)
    seen = []
    run = studio.train_lora(TrainRequest.of(kit_id=_kit(studio), max_train_steps=6), seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5, 6]
    assert all(p.steps_per_s > 0 for p in seen[1:]) and seen[-1].eta_s == 0
    assert run.status == "succeeded" and studio.list_training_samples(run.id) == []
    job = studio.get_job(run.job_id or 0)
    assert "it/s" in (job.message or "") and "ETA" in (job.message or "")


def test_each_checkpoint_is_sampled_with_fixed_prompts_and_seeds(trained_studio: Studio) -> None:
    kit = trained_studio.list_kits()[0]
    (run,) = trained_studio.list_training_runs(kit.id)
    samples = trained_studio.list_training_samples(run.id)
    steps = sorted({s.step for s in samples})
    assert steps == [7, 14, 21, 28]  # a checkpoint every quarter of the 30 steps
    for step in steps:
        at = [s for s in samples if s.step == step]
        assert [s.seed for s in at] == [0, 1]
        assert all(s.prompt.startswith("acm_bottle bottle, ") for s in at)
        assert len({s.lora_sha256 for s in at}) == 1
    pixels = {s.step: np.asarray(Image.open(io.BytesIO(trained_studio.read_blob(s.image_sha256))))
              for s in samples if s.seed == 0}  # fmt: skip
    assert not np.array_equal(pixels[7], pixels[28])  # the weights moved between checkpoints
    png = Image.open(io.BytesIO(trained_studio.read_blob(samples[0].image_sha256)))
    assert "Seed: 0" in png.text["parameters"] and "<lora:" in png.text["parameters"]
    assert json.loads(png.text["brand_studio"])["loras"][0]["sha256"] == samples[0].lora_sha256


def test_picked_checkpoint_renders_exactly_its_samples_and_has_a_kohya_copy(trained_studio: Studio) -> None:
    kit = trained_studio.list_kits()[0]
    (run,) = trained_studio.list_training_runs(kit.id)
    sample = next(s for s in trained_studio.list_training_samples(run.id) if s.step == 14 and s.seed == 1)
    lora = trained_studio.pick_checkpoint(run.id, 14)
    assert lora.step == 14 and lora.sha256 == sample.lora_sha256 and lora.name.endswith("-step14")
    assert trained_studio.pick_checkpoint(run.id, 14).id == lora.id  # picking twice registers once
    assert lora.kohya_sha256 is not None
    # the same recipe through Generate gives the sample's pixels: samples use the studio's own engine
    png = Image.open(io.BytesIO(trained_studio.read_blob(sample.image_sha256)))
    recipe = json.loads(png.text["brand_studio"])
    gen = trained_studio.generate(GenerateRequest.of(
        prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"], seed=1, width=recipe["width"],
        height=recipe["height"], num_inference_steps=recipe["num_inference_steps"],
        guidance_scale=recipe["guidance_scale"], scheduler=recipe["scheduler"],
        loras=(LoraChoice(lora_id=lora.id, weight=1.0),),
    ))  # fmt: skip
    assert gen.images[0].pixel_sha256 == _pixel_sha(trained_studio, sample.image_sha256)
    name, data = trained_studio.lora_export(lora.id, "kohya")
    assert name == f"{lora.name}.kohya.safetensors"
    path = trained_studio.settings.work_dir / name
    path.write_bytes(data)
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        assert f.metadata()["ss_network_module"] == "networks.lora"
    assert keys and all(k.startswith("lora_unet_") for k in keys)


def test_picking_a_step_that_was_not_sampled_is_refused(trained_studio: Studio) -> None:
    kit = trained_studio.list_kits()[0]
    (run,) = trained_studio.list_training_runs(kit.id)
    with pytest.raises(
        errors.InvalidInput, match=r"no checkpoint at step 5; sampled steps: \[7, 14, 21, 28\]"
    ):
        trained_studio.pick_checkpoint(run.id, 5)
    with pytest.raises(errors.NotFound):
        trained_studio.list_training_samples(999)
    assert len(trained_studio.list_loras()) == 1


def test_final_lora_downloads_in_both_formats(trained_studio: Studio) -> None:
    (lora,) = trained_studio.list_loras()
    assert lora.kohya_sha256 is not None and lora.step is None
    name, data = trained_studio.lora_export(lora.id)
    assert name == f"{lora.name}.safetensors" and data == trained_studio.read_blob(lora.sha256)
    with pytest.raises(errors.InvalidInput):
        trained_studio.lora_export(lora.id, "ckpt")


def _pixel_sha(studio: Studio, blob: str) -> str:
    from studio.generation.engine import pixel_sha256

    return pixel_sha256(Image.open(io.BytesIO(studio.read_blob(blob))).convert("RGB"))


def test_an_sdxl_base_model_trains_samples_and_generates(tmp_path: Path, make_studio: Callable[..., Studio]) -> None:
    from tests.sdxl_model import write_tiny_sdxl

    studio = make_studio(base_model=str(write_tiny_sdxl(tmp_path / "tiny-sdxl")), validation_images=1)
    kit_id = _kit(studio, photos=2)
    req = TrainRequest.of(kit_id=kit_id, max_train_steps=4, resolution=64, train_batch_size=2)
    plan = studio.training_plan(req)
    assert (plan.preset.family, plan.preset.tier, plan.preset.resolution) == ("sdxl", "cpu", 64)
    run = studio.train_lora(req)
    assert run.status == "succeeded" and run.lora is not None and run.lora.kohya_sha256 is not None
    assert sorted({s.step for s in studio.list_training_samples(run.id)}) == [1, 2, 3, 4]
    _, kohya = studio.lora_export(run.lora.id, "kohya")
    path = tmp_path / "sdxl.kohya.safetensors"
    path.write_bytes(kohya)
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"
        assert any(k.startswith("lora_unet_input_blocks_") for k in f.keys())
    base = GenerateRequest.of(prompt="on a table", kit_id=kit_id, width=64, height=64, num_inference_steps=4, seed=3)
    plain = studio.generate(base).images[0].pixel_sha256
    styled = studio.generate(base.model_copy(update={"loras": (LoraChoice(lora_id=run.lora.id, weight=1.0),)}))
    assert styled.images[0].pixel_sha256 != plain


def test_flip_is_honoured_only_for_kits_without_logos(tmp_path: Path, make_studio: Callable[..., Studio]) -> None:
    from studio.schemas import UploadedFile

    studio = make_studio(validation_images=0)
    plain_kit = _kit(studio, photos=2)
    logo_kit = studio.create_kit(KitCreateRequest.of(name="Logo", trigger_token="lgo_cup", class_noun="cup"),
                                 product_uploads(2)).id  # fmt: skip
    studio.add_logos(logo_kit, [UploadedFile(name="logo.png", data=product_uploads(1)[0].data)])
    flips = {}
    for kit_id in (plain_kit, logo_kit):
        run = studio.train_lora(TrainRequest.of(kit_id=kit_id, max_train_steps=2, flip=True))
        assert run.lora is not None
        path = tmp_path / f"{kit_id}.safetensors"
        path.write_bytes(studio.lora_export(run.lora.id)[1])
        with safe_open(str(path), "pt") as f:
            flips[kit_id] = f.metadata()["ss_flip_aug"]
    assert flips == {plain_kit: "True", logo_kit: "False"}


def test_text_encoder_lora_and_prior_preservation_from_the_studio(make_studio: Callable[..., Studio]) -> None:
    studio = make_studio(validation_images=0)
    kit_id = _kit(studio, photos=2)
    req = TrainRequest.of(kit_id=kit_id, max_train_steps=2, train_text_encoder=True, prior_preservation=True)
    run = studio.train_lora(req)
    assert run.lora is not None
    class_dir = next((studio.settings.data_dir / "class_images").iterdir())
    assert class_dir.name.endswith("-bottle") and len(list(class_dir.glob("*.png"))) == 4
    assert {p.read_text().strip() for p in class_dir.glob("*.txt")} == {"a photo of a bottle"}
    path = studio.settings.work_dir / "te.safetensors"
    path.write_bytes(studio.lora_export(run.lora.id)[1])
    with safe_open(str(path), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert meta["ss_network_train_unet_only"] == "False" and meta["ss_num_reg_images"] == "4"
    assert any(k.startswith("text_encoder.") for k in keys)
    # a second run reuses the class images made by the first
    before = {p.name: p.stat().st_mtime_ns for p in class_dir.iterdir()}
    studio.train_lora(req.model_copy(update={"seed": 1}))
    assert {p.name: p.stat().st_mtime_ns for p in class_dir.iterdir()} == before
