"""Fixtures for the trainer tests: a procedurally drawn product data set and one shared trained LoRA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

#: Two-colour "bottles" (body, label) on a light backdrop; sizes differ so resizing and cropping run.
PRODUCTS = [
    ((200, 30, 30), (30, 30, 200), (96, 80)),
    ((30, 160, 60), (240, 220, 40), (80, 96)),
    ((120, 40, 160), (250, 140, 20), (72, 72)),
    ((20, 20, 20), (230, 230, 230), (128, 96)),
]
#: Settings where the loss falls clearly on the tiny model (see test_loss_falls).
MAIN_RUN = {
    "resolution": 64,
    "train_batch_size": 4,
    "max_train_steps": 40,
    "learning_rate": 3e-3,
    "rank": 4,
    "alpha": 2.0,  # != rank on purpose: the loader must read alpha from the file, not assume rank
    "seed": 0,
}


def draw_product(
    body: tuple[int, int, int], label: tuple[int, int, int], size: tuple[int, int]
) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, (235, 235, 225))
    draw = ImageDraw.Draw(image)
    left, right = int(width * 0.35), int(width * 0.65)
    draw.rectangle([left, int(height * 0.15), right, int(height * 0.9)], fill=body)
    draw.rectangle([left, int(height * 0.45), right, int(height * 0.65)], fill=label)
    draw.rectangle([left + 4, int(height * 0.05), right - 4, int(height * 0.15)], fill=(90, 90, 90))
    return image


def write_product_set(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (body, label, size) in enumerate(PRODUCTS):
        draw_product(body, label, size).save(folder / f"product_{i}.png")
        (folder / f"product_{i}.txt").write_text(f"photo of brandx bottle, variant {i}\n")
    return folder


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run on one intra-op thread, restoring the setting afterwards.

    The tiny model gains nothing from a second thread, and on a shared 2-core runner OpenMP threads
    spinning against other processes made single steps take seconds instead of ~0.1 s.
    (Bit-for-bit determinism on CPU also presumes a fixed thread count.)
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def product_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_product_set(tmp_path_factory.mktemp("products"))


@pytest.fixture(scope="session")
def sdxl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SDXL pipeline (tests/sdxl_model.py) as a diffusers folder."""
    from tests.sdxl_model import write_tiny_sdxl

    return write_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@dataclass
class TrainedRun:
    config: object  # training.TrainConfig
    result: object  # training.TrainResult
    progress: list  # list[training.TrainProgress]


@pytest.fixture(scope="session")
def trained(tiny_model_dir: Path, product_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One real 40-step AdamW8bit run, shared by the tests that inspect its LoRA."""
    from training import TrainConfig, train

    config = TrainConfig(
        pretrained_model=str(tiny_model_dir),
        data_dir=str(product_dir),
        output_dir=str(tmp_path_factory.mktemp("lora-out")),
        output_name="brandx_v1",
        metadata={"modelspec.trigger_phrase": "brandx bottle", "modelspec.title": "BrandX bottle v1"},
        **MAIN_RUN,
    )
    updates: list = []
    with one_torch_thread():
        result = train(config, progress=updates.append)
    return TrainedRun(config=config, result=result, progress=updates)


@pytest.fixture
def small_config(tiny_model_dir: Path, product_dir: Path, tmp_path: Path):
    """Factory of short CPU runs: ``small_config(out="out", data=None, **overrides) -> TrainConfig``."""
    from training import TrainConfig

    def make(out: str = "out", data: Path | None = None, **overrides: object) -> TrainConfig:
        settings: dict = {
            "resolution": 64,
            "train_batch_size": 2,
            "max_train_steps": 4,
            "learning_rate": 1e-3,
        }
        settings.update(overrides)
        return TrainConfig(
            pretrained_model=str(tiny_model_dir),
            data_dir=str(data or product_dir),
            output_dir=str(tmp_path / out),
            **settings,
        )

    return make
