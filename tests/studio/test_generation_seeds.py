"""Seeds, variation seeds, seed resize and batches with AUTOMATIC1111's meaning (bad inputs C.24, 26, 27)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from studio.api import Studio
from studio.errors import InvalidInput
from studio.generation.imagefile import read_png_metadata
from studio.generation.infotext import parse_parameters
from studio.schemas import GenerateRequest

SHAPE = (4, 16, 16)


def _req(**kw: Any) -> GenerateRequest:
    fields: dict[str, Any] = dict(prompt="a bottle on a table", seed=42, num_inference_steps=2, width=64, height=64,
                                  scheduler="Euler")  # fmt: skip
    fields.update(kw)
    return GenerateRequest.of(**fields)


def _array(studio: Studio, sha: str) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(studio.read_blob(sha))) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


# ----- the noise itself ----------------------------------------------------------------------------------
def test_strength_zero_is_the_seeds_noise_and_one_is_the_variation_seeds_noise() -> None:
    import torch

    from studio.generation.noise import initial_noise, seed_noise

    plain, _ = initial_noise(SHAPE, [7])
    zero, _ = initial_noise(SHAPE, [7], subseeds=[99], subseed_strength=0.0)
    one, _ = initial_noise(SHAPE, [7], subseeds=[99], subseed_strength=1.0)
    mixed, _ = initial_noise(SHAPE, [7], subseeds=[99], subseed_strength=0.5)
    assert torch.equal(plain[0], seed_noise(7, SHAPE)) and torch.equal(zero, plain)
    assert torch.equal(one[0], seed_noise(99, SHAPE))
    assert not torch.equal(mixed, plain) and not torch.equal(mixed, one)
    assert 0.85 < float(mixed.std()) < 1.15  # slerp keeps unit variance (a plain average would be ~0.71)


def test_batch_images_get_consecutive_variation_seeds() -> None:
    import torch

    from studio.generation.noise import initial_noise, seed_noise

    noise, _ = initial_noise(SHAPE, [7, 8], subseeds=[99, 100], subseed_strength=1.0)
    assert torch.equal(noise[0], seed_noise(99, SHAPE)) and torch.equal(noise[1], seed_noise(100, SHAPE))


def test_generators_for_later_noise_are_the_same_with_or_without_a_variation() -> None:
    """Ancestral samplers keep drawing from the seed's generator, advanced as without a variation."""
    import torch

    from studio.generation.noise import initial_noise

    _, plain = initial_noise(SHAPE, [7])
    _, varied = initial_noise(SHAPE, [7], subseeds=[99], subseed_strength=0.4, resize_from=(96, 64))
    assert torch.equal(torch.randn(16, generator=plain[0]), torch.randn(16, generator=varied[0]))


def test_resize_seed_from_a_larger_size_keeps_the_centre_crop_of_its_noise() -> None:
    import torch

    from studio.generation.noise import initial_noise, seed_noise

    big = seed_noise(7, (4, 24, 20))  # "from" 160x192 px = 20x24 latents; the real size is 16x16
    noise, _ = initial_noise(SHAPE, [7], resize_from=(160, 192), factor=8)
    assert torch.equal(noise[0], big[:, 4:20, 2:18])
    same, _ = initial_noise(SHAPE, [7], resize_from=(128, 128), factor=8)  # from == real size: no change
    assert torch.equal(same[0], seed_noise(7, SHAPE))


def test_resize_seed_from_a_smaller_size_sits_centred_in_the_seeds_own_noise() -> None:
    import torch

    from studio.generation.noise import initial_noise, seed_noise

    small, own = seed_noise(7, (4, 8, 10)), seed_noise(7, SHAPE)
    noise, _ = initial_noise(SHAPE, [7], resize_from=(80, 64), factor=8)
    assert torch.equal(noise[0, :, 4:12, 3:13], small)
    border = torch.ones(SHAPE, dtype=torch.bool)
    border[:, 4:12, 3:13] = False
    assert torch.equal(noise[0][border], own[border])


def test_resize_with_variation_mixes_at_the_from_size_then_crops() -> None:
    import torch

    from studio.generation.noise import initial_noise, seed_noise, slerp

    mixed = slerp(0.3, seed_noise(7, (4, 20, 20)), seed_noise(99, (4, 20, 20)))
    noise, _ = initial_noise(SHAPE, [7], subseeds=[99], subseed_strength=0.3, resize_from=(160, 160))
    assert torch.equal(noise[0], mixed[:, 2:18, 2:18])


# ----- through the studio ---------------------------------------------------------------------------------
def test_variation_strength_zero_one_and_between(studio: Studio) -> None:
    base = studio.generate(_req())
    zero = studio.generate(_req(subseed=7, subseed_strength=0.0))
    some = studio.generate(_req(subseed=7, subseed_strength=0.3))
    full = studio.generate(_req(subseed=7, subseed_strength=1.0))
    seven = studio.generate(_req(seed=7))
    px = {name: g.images[0].pixel_sha256 for name, g in
          {"base": base, "zero": zero, "some": some, "full": full, "seven": seven}.items()}  # fmt: skip
    assert px["zero"] == px["base"]
    assert px["some"] not in (px["base"], px["seven"])
    assert px["full"] == px["seven"]  # Euler is not ancestral: same initial noise, same image
    assert "Variation seed" not in parse_parameters(zero.images[0].parameters)


def test_ancestral_sampler_at_strength_one_still_uses_the_seed_for_later_noise(studio: Studio) -> None:
    full = studio.generate(_req(subseed=7, subseed_strength=1.0, scheduler="Euler a"))
    seven = studio.generate(_req(seed=7, scheduler="Euler a"))
    assert full.images[0].pixel_sha256 != seven.images[0].pixel_sha256  # as A1111 (rng.py)


def test_batch_count_numbers_images_consecutively_and_equals_single_runs(studio: Studio) -> None:
    counted = studio.generate(_req(batch_count=3))
    singles = [studio.generate(_req(seed=42 + i)) for i in range(3)]
    assert [(i.index, i.seed) for i in counted.images] == [(0, 42), (1, 43), (2, 44)]
    assert [i.pixel_sha256 for i in counted.images] == [s.images[0].pixel_sha256 for s in singles]
    assert len(studio.list_generations()) == 4  # one row for the whole press


def test_batch_of_four_equals_four_single_runs_within_tolerance(studio: Studio) -> None:
    """diffusers' test_inference_batch_single_identical analogue. On CPU a batch is not bit-identical
    to single runs (batched matmuls round differently): at most 2/255 per channel, and rarely."""
    batch = studio.generate(_req(batch_size=4))
    singles = [studio.generate(_req(seed=42 + i)) for i in range(4)]
    assert [i.seed for i in batch.images] == [42, 43, 44, 45]
    for got, single in zip(batch.images, singles, strict=True):
        diff = np.abs(_array(studio, got.blob_sha256) - _array(studio, single.images[0].blob_sha256))
        assert diff.max() <= 2 and diff.mean() < 0.05


def test_variation_batches_rerender_exactly_and_round_trip_a1111(studio: Studio) -> None:
    gen = studio.generate(_req(batch_size=2, batch_count=2, subseed=-1, subseed_strength=0.25,
                               seed_resize_from_w=96, seed_resize_from_h=64))  # fmt: skip
    meta = read_png_metadata(studio.read_blob(gen.images[3].blob_sha256))
    recipe = meta["recipe"]
    first = recipe["subseed"]
    assert recipe["seeds"] == [42, 43, 44, 45] and recipe["subseeds"] == [first + i for i in range(4)]
    assert (recipe["batch_size"], recipe["batch_count"], recipe["seed_resize_from"]) == (2, 2, [96, 64])
    params = parse_parameters(meta["parameters"])
    assert params["Seed"] == "45" and params["Variation seed"] == str(first + 3)
    assert params["Variation seed strength"] == "0.25"
    assert (params["Seed resize from-1"], params["Seed resize from-2"]) == ("96", "64")
    again = studio.rerender(gen.id)
    assert [i.pixel_sha256 for i in again.images] == [i.pixel_sha256 for i in gen.images]


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_count", 0), ("batch_count", 17), ("batch_count", 1000), ("subseed", 2**64), ("subseed", -2),
     ("subseed", "abc"), ("subseed_strength", float("nan")), ("subseed_strength", float("inf")),
     ("subseed_strength", -0.1), ("subseed_strength", 1.5), ("seed_resize_from_w", 100),
     ("seed_resize_from_w", -8), ("seed_resize_from_w", 4096), ("format", "nope"), ("format", "../meta")],
)  # fmt: skip
def test_bad_seed_parameters_get_field_specific_errors(field: str, value: object) -> None:
    fields: dict[str, object] = {"prompt": "a bottle", field: value}
    if field == "seed_resize_from_w":
        fields["seed_resize_from_h"] = 64
    with pytest.raises(InvalidInput) as info:
        GenerateRequest.of(**fields)
    assert info.value.field == field


def test_half_a_seed_resize_or_a_variation_in_img2img_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        GenerateRequest.of(prompt="a bottle", seed_resize_from_w=512)
    assert info.value.field == "seed_resize_from_h"
    with pytest.raises(InvalidInput) as info:
        GenerateRequest.of(prompt="a bottle", mode="img2img", init_image="a" * 64, subseed_strength=0.5)
    assert info.value.field == "subseed_strength"
