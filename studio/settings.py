"""Settings: the only reader of the environment (prefix ``BRAND_STUDIO_``) and of an optional ``.env``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "float16", "bfloat16"]


class Settings(BaseSettings):
    """Everything an operator can configure. Lower layers receive plain values, never this object."""

    model_config = SettingsConfigDict(env_prefix="BRAND_STUDIO_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where uploads, the DB, LoRAs and images live.")
    database_url: str | None = Field(
        None, description="Any SQLAlchemy URL (PostgreSQL too). Default: SQLite file in the data dir."
    )
    base_model: str = Field(
        "builtin:demo",
        description="builtin:demo (the built-in demo model), builtin:tiny (random placeholder), a local "
        "diffusers folder, a single-file .safetensors checkpoint, or a hub id.",
    )
    single_file_config: Path | None = Field(
        None,
        description="Local diffusers folder whose configs describe a single-file checkpoint (offline use).",
    )
    device: Device = "auto"
    dtype: DType = "auto"
    models_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Extra folders searched for model names, e.g. an AUTOMATIC1111 install's models/.",
    )
    offline: bool | None = Field(
        None, description="Never contact the hub. Default: follow HF_HUB_OFFLINE (set by tests)."
    )
    max_upload_mb: int = Field(50, ge=1, le=2048)
    max_prompt_chars: int = Field(4000, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    job_lease_s: float = Field(60.0, gt=0, description="A worker silent this long loses its job to another.")
    train_memory_budget_mb: int | None = Field(
        None, ge=256, description="Device memory training may use (MB). Default: detected (GPU total, else free RAM)."
    )
    validation_images: int = Field(
        2, ge=0, le=8, description="Validation prompts rendered from each training checkpoint (0 = none)."
    )

    @field_validator("models_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'studio.sqlite3').resolve()}"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    def hub_offline(self) -> bool:
        """Whether hub downloads are off: explicit setting, else the standard HF_HUB_OFFLINE variable."""
        if self.offline is not None:
            return self.offline
        return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
