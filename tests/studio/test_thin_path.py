"""The walking skeleton end to end on the built-in model: kit -> LoRA -> image -> same pixels again."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from studio.api import Studio
from studio.errors import InvalidInput, NotFound
from studio.generation.imagefile import read_png_metadata
from studio.generation.infotext import parse_parameters
from studio.schemas import GenerateRequest, KitCreateRequest, LoraChoice, TrainRequest, UploadedFile
from tests.fixtures import product_uploads


def _request(lora_id: int | None, weight: float = 1.0, **kw: object) -> GenerateRequest:
    loras = (LoraChoice(lora_id=lora_id, weight=weight),) if lora_id else ()
    fields: dict[str, object] = dict(prompt="on a marble table", kit_id=1, loras=loras, seed=42,
                                     num_inference_steps=8, scheduler="Euler")  # fmt: skip
    fields.update(kw)
    return GenerateRequest.of(**fields)


def test_kit_train_generate_rerender(studio: Studio) -> None:
    kit = studio.create_kit(
        KitCreateRequest.of(name="Acme Bottle", trigger_token="acm_bottle", class_noun="bottle"), product_uploads(4)
    )
    assert kit.photo_count == 4
    steps_seen: list[int] = []
    run = studio.train_lora(TrainRequest.of(kit_id=kit.id, max_train_steps=12), lambda p: steps_seen.append(p.step))
    assert run.status == "succeeded" and run.lora is not None
    assert steps_seen[-1] == 12
    lora_path = studio.blobs.path_for(run.lora.sha256)
    with safe_open(str(lora_path), "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert keys and all(k.startswith("unet.") for k in keys)
    assert meta["modelspec.trigger_phrase"] == "acm_bottle bottle"

    gen = studio.generate(_request(run.lora.id))
    again = studio.rerender(gen.id)
    assert again.parent_id == gen.id
    assert [i.pixel_sha256 for i in again.images] == [i.pixel_sha256 for i in gen.images]


def test_lora_changes_pixels_and_weight_zero_restores_base(trained_studio: Studio) -> None:
    lora = trained_studio.list_loras()[0]
    base = trained_studio.generate(_request(None))
    with_lora = trained_studio.generate(_request(lora.id))
    zero = trained_studio.generate(_request(lora.id, weight=0.0))
    base_after = trained_studio.generate(_request(None))
    assert with_lora.images[0].pixel_sha256 != base.images[0].pixel_sha256
    assert zero.images[0].pixel_sha256 == base.images[0].pixel_sha256
    assert base_after.images[0].pixel_sha256 == base.images[0].pixel_sha256  # disabling restores the base


def test_png_carries_a1111_parameters_and_recipe(trained_studio: Studio) -> None:
    lora = trained_studio.list_loras()[0]
    gen = trained_studio.generate(_request(lora.id, weight=0.8, batch_size=2, guidance_scale=6.5))
    assert [i.seed for i in gen.images] == [42, 43]
    png = trained_studio.read_blob(gen.images[1].blob_sha256)
    meta = read_png_metadata(png)
    params = parse_parameters(meta["parameters"])
    model = trained_studio.model_info()
    assert params["Prompt"] == "acm_bottle bottle, on a marble table <lora:acme-bottle-v1:0.8>"
    assert params["Seed"] == "43" and params["Steps"] == "8" and params["CFG scale"] == "6.5"
    assert params["Size-1"] == str(model.default_size) and params["Sampler"] == "Euler"
    assert params["Model hash"] == model.short_hash
    assert params["Lora hashes"] == f"acme-bottle-v1: {lora.short_hash}"
    assert meta["recipe"]["seeds"] == [42, 43] and meta["recipe"]["loras"][0]["weight"] == 0.8
    assert "trainedAlgorithmicMedia" in meta["xmp"]
    row = trained_studio.get_generation(gen.id)
    assert row.images[1].parameters == meta["parameters"]


def test_random_seed_is_recorded_and_reproducible(trained_studio: Studio) -> None:
    gen = trained_studio.generate(_request(None, seed=-1))
    assert 0 <= gen.seed < 2**32
    again = trained_studio.rerender(gen.id)
    assert again.seed == gen.seed and again.images[0].pixel_sha256 == gen.images[0].pixel_sha256


def test_bad_upload_refuses_the_batch_and_stores_nothing(trained_studio: Studio) -> None:
    kit = trained_studio.list_kits()[0]
    blobs_before = sorted(trained_studio.blobs.iter_shas())
    files = [*product_uploads(2), UploadedFile(name="../../evil.png", data=b"not an image at all")]
    with pytest.raises(InvalidInput, match="evil.png"):
        trained_studio.add_photos(kit.id, files)
    assert trained_studio.get_kit(kit.id).photo_count == 4
    assert sorted(trained_studio.blobs.iter_shas()) == blobs_before


def test_duplicate_kit_and_missing_things_are_clear_errors(trained_studio: Studio) -> None:
    from studio.errors import Conflict

    with pytest.raises(Conflict):
        trained_studio.create_kit(KitCreateRequest.of(name="acme bottle", trigger_token="acm_two", class_noun="bottle"))
    with pytest.raises(NotFound):
        trained_studio.generate(_request(999))
    with pytest.raises(NotFound):
        trained_studio.rerender(12345)
    with pytest.raises(InvalidInput) as info:
        trained_studio.create_kit(KitCreateRequest.of(name="Empty", trigger_token="bottle", class_noun="bottle"))
    assert info.value.field == "trigger_token"


def test_training_an_empty_kit_is_refused(studio: Studio) -> None:
    kit = studio.create_kit(KitCreateRequest.of(name="Empty kit", trigger_token="emp_kit", class_noun="bottle"))
    with pytest.raises(InvalidInput, match="no photos"):
        studio.train_lora(TrainRequest.of(kit_id=kit.id))
    assert studio.list_loras() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_inference_steps", 0), ("num_inference_steps", 10_000), ("guidance_scale", float("nan")),
     ("width", 100), ("height", 0), ("batch_size", 1000), ("seed", 2**64), ("seed", "abc"),
     ("scheduler", "__import__('os')"), ("prompt", "   ")],
)  # fmt: skip
def test_bad_parameters_get_field_specific_errors(field: str, value: object) -> None:
    fields: dict[str, object] = {"prompt": "a bottle", field: value}
    with pytest.raises(InvalidInput) as info:
        GenerateRequest.of(**fields)
    assert info.value.field == field
