"""Shared fixtures: offline, CPU, tiny REAL diffusers components built from config."""

from __future__ import annotations

import os

# Must be set before huggingface_hub is imported anywhere: a hub id otherwise retries for minutes.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Unit tests run on the fast random placeholder; the demo model's own tests name builtin:demo.
os.environ.setdefault("BRAND_STUDIO_BASE_MODEL", "builtin:tiny")

import shutil  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from studio.api import Studio, open_studio  # noqa: E402
from studio.settings import Settings  # noqa: E402
from tests.fixtures import product_uploads, seed_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in tiny SD-1.x pipeline as an ordinary diffusers folder of safetensors."""
    from studio.builtin_model import materialize_builtin

    return materialize_builtin(tmp_path_factory.mktemp("models"))


@pytest.fixture
def make_studio(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Callable[..., Studio]]:
    opened: list[Studio] = []

    def factory(name: str = "data", **overrides: object) -> Studio:
        data_dir = seed_data_dir(tmp_path / name, tiny_model_dir)
        studio = open_studio(Settings(data_dir=data_dir, **overrides))
        opened.append(studio)
        return studio

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def studio(make_studio: Callable[..., Studio]) -> Studio:
    return make_studio()


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A data dir holding one kit (4 photos) and one LoRA trained on it, made once per test session."""
    from studio.schemas import KitCreateRequest, TrainRequest

    data_dir = seed_data_dir(tmp_path_factory.mktemp("trained") / "data", tiny_model_dir)
    studio = open_studio(Settings(data_dir=data_dir))
    try:
        kit = studio.create_kit(
            KitCreateRequest.of(name="Acme Bottle", trigger_token="acm_bottle", class_noun="bottle"),
            product_uploads(4),
        )
        studio.train_lora(TrainRequest.of(kit_id=kit.id, max_train_steps=30, seed=0))
    finally:
        studio.close()
    return data_dir


@pytest.fixture
def trained_studio(tmp_path: Path, trained_template: Path) -> Iterator[Studio]:
    """A private copy of the trained template, so each test may write freely."""
    data_dir = tmp_path / "data"
    shutil.copytree(trained_template, data_dir)
    studio = open_studio(Settings(data_dir=data_dir))
    yield studio
    studio.close()
