"""Aspect-ratio buckets: grid, assignment, full-width crops, one-bucket batches, seeded resumable order."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors import safe_open

from training import TrainConfig, train
from training.buckets import BatchPlan, assign_bucket, make_buckets
from training.dataset import TrainingImages, find_examples, upright_size

GREEN, YELLOW = (0, 255, 0), (255, 255, 0)


def test_grid_has_about_resolution_squared_area() -> None:
    buckets = make_buckets(512, 256, 1024, 64)
    assert (512, 512) in buckets and (704, 320) in buckets and (320, 704) in buckets
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in buckets)
    assert all(256 <= min(w, h) and max(w, h) <= 1024 for w, h in buckets)
    assert all(0.75 * 512**2 <= w * h <= 512**2 for w, h in buckets)
    # a resolution off the grid still gets its exact square
    assert (200, 200) in make_buckets(200, 64, 400, 64)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 512), (704, 320)),
        ((512, 1024), (320, 704)),
        ((600, 600), (512, 512)),
        ((640, 480), (576, 448)),
    ],
)
def test_image_goes_to_the_bucket_of_nearest_aspect_ratio(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    buckets = make_buckets(512, 256, 1024, 64)
    assert assign_bucket(size, buckets) == expected
    best = min(abs(math.log(w / h) - math.log(size[0] / size[1])) for w, h in buckets)
    assert abs(math.log(expected[0] / expected[1]) - math.log(size[0] / size[1])) == best


def test_wide_image_keeps_its_full_width(tmp_path: Path) -> None:
    """A 2:1 photo with coloured edges: the bucket keeps both edges, a square crop loses them."""
    image = Image.new("RGB", (1024, 512), (255, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 63, 511], fill=GREEN)
    draw.rectangle([960, 0, 1023, 511], fill=YELLOW)
    image.save(tmp_path / "wide.png")
    (tmp_path / "wide.txt").write_text("wide")
    examples = find_examples(tmp_path)
    config = TrainConfig(pretrained_model="m", data_dir=str(tmp_path), output_dir="o", resolution=512)
    assert config.bucket_range() == (256, 1024)
    bucket = assign_bucket(upright_size(examples[0].image_path), make_buckets(512, 256, 1024, 64))
    assert bucket[0] > bucket[1]

    def edges(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        images = TrainingImages(examples, [size], seed=0)
        pixels = images.pixels(images.variant(0, 0))
        return pixels[:, :, :8].mean(dim=(1, 2)), pixels[:, :, -8:].mean(dim=(1, 2)), tuple(pixels.shape)

    left, right, shape = edges(bucket)
    assert shape == (3, bucket[1], bucket[0])
    torch.testing.assert_close(left, torch.tensor([-1.0, 1.0, -1.0]), atol=0.05, rtol=0)  # green edge kept
    torch.testing.assert_close(right, torch.tensor([1.0, 1.0, -1.0]), atol=0.05, rtol=0)  # yellow edge kept
    left, right, _ = edges((512, 512))  # the old square centre crop
    torch.testing.assert_close(left, torch.tensor([1.0, -1.0, -1.0]), atol=0.05, rtol=0)  # red: edge lost
    torch.testing.assert_close(right, torch.tensor([1.0, -1.0, -1.0]), atol=0.05, rtol=0)


SIZES = ((64, 64),) * 5 + ((80, 48),) * 3 + ((48, 80),) * 1


def test_batches_never_mix_buckets_and_cover_every_image_once_per_epoch() -> None:
    plan = BatchPlan(SIZES, batch_size=2, seed=0)
    orders = []
    for epoch in range(4):
        batches = plan.epoch_batches(epoch)
        assert all(len({SIZES[i] for i in batch}) == 1 for batch in batches)
        assert all(1 <= len(batch) <= 2 for batch in batches)
        assert sorted(i for batch in batches for i in batch) == list(range(len(SIZES)))
        assert len(batches) == 3 + 2 + 1  # ceil(5/2) + ceil(3/2) + 1
        orders.append(batches)
    assert orders[0] == BatchPlan(SIZES, batch_size=2, seed=0).epoch_batches(0)  # deterministic
    assert orders[0] != orders[1]  # reshuffled every epoch
    assert BatchPlan(SIZES, batch_size=2, seed=1).epoch_batches(0) != orders[0]  # by the seed


def test_processes_share_an_epoch_evenly() -> None:
    shares = [
        BatchPlan(SIZES, 2, 0, num_processes=4, process_index=rank).local_batches(0) for rank in range(4)
    ]
    assert {len(share) for share in shares} == {2}  # 6 batches wrapped to 8
    everything = BatchPlan(SIZES, 2, 0).epoch_batches(0)
    seen = Counter(tuple(b) for share in shares for b in share)
    assert set(seen) == {tuple(b) for b in everything}


def test_training_with_mixed_aspect_ratios(
    small_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.training.conftest import draw_product
    from training.caching import TrainInputs

    data = tmp_path / "mixed"
    data.mkdir()
    for i, size in enumerate([(128, 64), (128, 64), (64, 128), (96, 96)]):
        draw_product((200, 30, 30), (30, 30, 200), size).save(data / f"p{i}.png")
        (data / f"p{i}.txt").write_text(f"photo of brandx bottle {i}")
    seen: list[tuple[int, ...]] = []
    config = small_config(data=data, bucket_reso_steps=16, max_train_steps=4)

    original = TrainInputs.batch

    def spy(self, indices, epoch):  # type: ignore[no-untyped-def]
        batch = original(self, indices, epoch)
        seen.append(tuple(batch.latents.shape))
        return batch

    monkeypatch.setattr(TrainInputs, "batch", spy)
    result = train(config)
    assert result.steps == 4 and all(math.isfinite(x) for x in result.losses)
    assert {shape[2:] for shape in seen} == {(6, 10), (10, 6), (8, 8)}  # 80x48, 48x80, 64x64 pixels
    with safe_open(str(result.lora_path), framework="pt") as f:
        meta = f.metadata()
    info = json.loads(meta["ss_bucket_info"])
    assert sorted((tuple(b["resolution"]), b["count"]) for b in info["buckets"].values()) == [
        ((48, 80), 1), ((64, 64), 1), ((80, 48), 2),
    ]  # fmt: skip
    assert (meta["ss_enable_bucket"], meta["ss_min_bucket_reso"], meta["ss_max_bucket_reso"]) == (
        "True",
        "32",
        "128",
    )
