"""Data dirs for the AppTest pages: BRAND_STUDIO_DATA_DIR points the real app at them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures import seed_data_dir


@pytest.fixture
def fresh(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty studio on the built-in model."""
    data_dir = seed_data_dir(tmp_path / "data", tiny_model_dir)
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture
def trained(tmp_path: Path, trained_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the session's kit + trained LoRA."""
    data_dir = tmp_path / "data"
    shutil.copytree(trained_template, data_dir)
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(data_dir))
    return data_dir
