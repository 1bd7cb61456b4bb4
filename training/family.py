"""Which model family a diffusers folder or UNet config belongs to: SD-1.x/2.x or SDXL.

Light (no torch): ``TrainConfig.validate`` uses it to check a folder has the sub-folders its family
needs. SDXL: the pipeline class is ``StableDiffusionXL*`` (``model_index.json``) or the UNet takes
"text_time" added conditioning (pooled text + size ids; ``unet/config.json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

#: The model families the trainer knows: SD-1.x/2.x (one CLIP text encoder) and SDXL (two, plus
#: pooled-text and size conditioning).
ModelFamily = Literal["sd1", "sdxl"]


def unet_family(unet_config: Mapping[str, Any]) -> ModelFamily:
    """``"sdxl"`` for a UNet conditioned on pooled text and sizes (``addition_embed_type`` "text_time")."""
    return "sdxl" if unet_config.get("addition_embed_type") == "text_time" else "sd1"


def model_family(folder: Path) -> ModelFamily:
    """The family of a diffusers folder, from ``model_index.json`` and ``unet/config.json``.

    Missing or unreadable files count as SD-1.x (the folder check or the loader reports them).
    """
    index = _read_json(Path(folder) / "model_index.json")
    unet = _read_json(Path(folder) / "unet" / "config.json")
    if str(index.get("_class_name", "")).startswith("StableDiffusionXL") or unet_family(unet) == "sdxl":
        return "sdxl"
    return "sd1"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
