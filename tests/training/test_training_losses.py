"""Loss options: min-SNR weights, noise offset, masked loss (masks follow crops and flips)."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open

from training import train
from training.dataset import DatasetError, TrainingImages, find_examples
from training.losses import masked_mse, min_snr_weights


def hand_alphas_cumprod(t: int) -> float:
    """abar_t of the tiny model's scheduler (scaled_linear, 0.00085..0.012, 1000 steps), by hand."""
    start, end, n = math.sqrt(0.00085), math.sqrt(0.012), 1000
    product = 1.0
    for i in range(t + 1):
        product *= 1.0 - (start + i * (end - start) / (n - 1)) ** 2
    return product


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weights_match_a_hand_computation(tiny_model_dir: Path, prediction_type: str) -> None:
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_pretrained(tiny_model_dir, subfolder="scheduler")
    timesteps = [10, 500, 900]
    weights = min_snr_weights(scheduler.alphas_cumprod, torch.tensor(timesteps), 5.0, prediction_type)
    expected = []
    for t in timesteps:
        abar = hand_alphas_cumprod(t)
        snr = abar / (1 - abar)
        expected.append(min(snr, 5.0) / (snr + 1 if prediction_type == "v_prediction" else snr))
    assert weights.tolist() == pytest.approx(expected, rel=1e-5)
    if prediction_type == "epsilon":
        assert expected[0] < 0.1 and expected[2] == 1.0  # low t (high SNR) damped, high t untouched


def test_masked_loss_is_the_loss_of_the_masked_region() -> None:
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 4, 8, 8, generator=generator)
    target = torch.randn(2, 4, 8, 8, generator=generator)
    mask = torch.zeros(2, 1, 64, 64)  # pixel resolution: 8x the latents
    mask[:, :, :, :32] = 1.0  # the left half is the product

    left_only = ((prediction - target)[..., :4] ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(masked_mse(prediction, target, mask), left_only)
    changed = prediction.clone()
    changed[..., 4:] += 10.0  # anything outside the mask is ignored
    torch.testing.assert_close(masked_mse(changed, target, mask), left_only)
    plain = F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))
    torch.testing.assert_close(masked_mse(prediction, target, None), plain)

    soft = torch.ones(2, 1, 64, 64)
    soft[:, :, :, :32] = 0.5  # area-averaged weights: left half counts half
    squared = (prediction - target) ** 2
    manual = (0.5 * squared[..., :4].sum(dim=(1, 2, 3)) + squared[..., 4:].sum(dim=(1, 2, 3))) / (
        4 * 8 * (4 * 0.5 + 4 * 1.0)
    )
    torch.testing.assert_close(masked_mse(prediction, target, soft), manual)


def write_mask(path: Path, size: tuple[int, int], left_white: bool = True) -> None:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]) if left_white else (size[0] // 2, 0, size[0], size[1]))
    mask.save(path)


def test_masks_follow_the_crop_and_flip(tmp_path: Path) -> None:
    Image.new("RGB", (128, 64), (10, 20, 30)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a")
    write_mask(tmp_path / "a.mask.png", (128, 64))
    examples = find_examples(tmp_path)
    assert [e.image_path.name for e in examples] == ["a.png"]  # a mask is not a training image
    images = TrainingImages(examples, [(64, 64)], seed=0, random_flip=True, masked_loss=True)
    plain, mirrored = images.fixed_variants(0)
    # 128x64 centre-cropped to 64x64 keeps x 32..96 of the original: white up to x=64 -> left half
    assert images.mask(plain)[0, :, :30].min() == 1.0 and images.mask(plain)[0, :, 34:].max() == 0.0
    torch.testing.assert_close(images.mask(mirrored), images.mask(plain).flip(-1))
    assert TrainingImages(examples, [(64, 64)], seed=0).mask(plain) is None  # masked_loss off


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (Image.new("RGB", (32, 32), "white"), "greyscale (L mode)"),
        (Image.new("L", (16, 32), 255), "same size"),
        (Image.new("L", (32, 32), 0), "entirely black"),
    ],
)
def test_bad_masks_are_refused(small_config, tmp_path: Path, mask: Image.Image, message: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (32, 32), "red").save(data / "a.png")
    (data / "a.txt").write_text("a")
    mask.save(data / "a.mask.png")
    with pytest.raises(DatasetError, match=re.escape(message)) as info:
        train(small_config(data=data, masked_loss=True, max_train_steps=1))
    assert "a.mask.png" in info.value.problems["data_dir"]


def test_each_loss_option_changes_the_losses(small_config, product_dir: Path, tmp_path: Path) -> None:
    masked_data = tmp_path / "masked"
    shutil.copytree(product_dir, masked_data)
    for i in (0, 1):  # two of the four products get a mask, the others weigh 1 everywhere
        size = Image.open(masked_data / f"product_{i}.png").size
        write_mask(masked_data / f"product_{i}.mask.png", size)

    headers = {}

    def losses(name: str, **options: object) -> list[float]:
        result = train(small_config(name, max_train_steps=3, **options))
        with safe_open(str(result.lora_path), framework="pt") as f:
            headers[name] = f.metadata()
        return result.losses

    base = losses("base")
    assert losses("no-masks", masked_loss=True) == base  # no mask file: weight 1, the same loss
    variants = {
        "offset": losses("offset", noise_offset=0.1),
        "snr": losses("snr", min_snr_gamma=1.0),
        "masked": losses("masked", data=masked_data, masked_loss=True),
    }
    assert losses("masks-off", data=masked_data) == base  # masks are read only with masked_loss
    for name, values in variants.items():
        assert all(math.isfinite(v) for v in values), name
        assert values != pytest.approx(base, abs=1e-4), name
    keys = ("ss_noise_offset", "ss_min_snr_gamma", "ss_masked_loss")
    assert [headers["base"][k] for k in keys] == ["None", "None", "False"]
    assert [headers[n][k] for n, k in zip(variants, keys, strict=True)] == ["0.1", "1.0", "True"]
