"""Standalone LoRA trainer for Stable Diffusion 1.x and SDXL UNets (diffusers + peft + accelerate).

``python -m training --config run.json`` (or ``accelerate launch -m training --config run.json``)
trains without the rest of Brand Studio. Importing this package is light: torch and the model
libraries load only when ``train``, ``save_lora`` or another name from ``training.loop`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from training.config import TrainConfig, TrainConfigError

if TYPE_CHECKING:
    from training.loop import TrainingDivergedError, TrainProgress, TrainResult, train
    from training.lora import save_lora

__all__ = [
    "TrainConfig",
    "TrainConfigError",
    "TrainProgress",
    "TrainResult",
    "TrainingDivergedError",
    "save_lora",
    "train",
]

_LAZY = {
    "TrainProgress": "training.loop",
    "TrainResult": "training.loop",
    "train": "training.loop",
    "TrainingDivergedError": "training.loop",
    "save_lora": "training.lora",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
