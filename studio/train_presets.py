"""One-click training settings: a preset per base-model family and device-memory tier, scaled to the
kit, then fitted to this machine's memory by the trainer's preflight (``training.preflight``).

The table is data. Rows follow common community practice for LoRA on SD 1.x / SDXL (kohya_ss and the
diffusers examples): about 100 optimizer-steps' worth of image views per photo, rank 16-32, learning
rate 1e-4 with 8-bit AdamW; lower tiers trade speed for memory with gradient checkpointing, half
precision and smaller micro-batches (the preflight re-checks every row against the real estimate and
downgrades further if a kit's settings still would not fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio import errors
from studio.schemas import TrainPlanView, TrainPresetView

if TYPE_CHECKING:
    from studio.api import Studio

TIERS = ("cpu", "6gb", "8gb", "12gb", "24gb")
_TIER_FLOOR_MB = {"6gb": 5_500, "8gb": 7_500, "12gb": 11_000, "24gb": 22_000}


@dataclass(frozen=True)
class _Row:
    resolution: int
    batch: int
    rank: int
    lr: float
    checkpointing: bool
    half: bool
    steps_per_photo: int = 100
    min_steps: int = 300
    max_steps: int = 2000


#: (family, tier) -> settings. SD 2.x uses the SD 1.x rows at 768 px where memory allows.
TABLE: dict[tuple[str, str], _Row] = {
    ("sd1", "cpu"): _Row(512, 1, 8, 1e-4, True, False, steps_per_photo=25, min_steps=100, max_steps=400),
    ("sd1", "6gb"): _Row(512, 1, 16, 1e-4, True, True),
    ("sd1", "8gb"): _Row(512, 2, 16, 1e-4, True, True),
    ("sd1", "12gb"): _Row(512, 4, 32, 1e-4, False, True),
    ("sd1", "24gb"): _Row(512, 8, 32, 1e-4, False, True),
    ("sd2", "cpu"): _Row(512, 1, 8, 1e-4, True, False, steps_per_photo=25, min_steps=100, max_steps=400),
    ("sd2", "6gb"): _Row(512, 1, 16, 1e-4, True, True),
    ("sd2", "8gb"): _Row(768, 1, 16, 1e-4, True, True),
    ("sd2", "12gb"): _Row(768, 2, 32, 1e-4, True, True),
    ("sd2", "24gb"): _Row(768, 4, 32, 1e-4, False, True),
    ("sdxl", "cpu"): _Row(768, 1, 8, 1e-4, True, False, steps_per_photo=25, min_steps=100, max_steps=300),
    ("sdxl", "6gb"): _Row(768, 1, 8, 1e-4, True, True),
    ("sdxl", "8gb"): _Row(1024, 1, 16, 1e-4, True, True),
    ("sdxl", "12gb"): _Row(1024, 1, 32, 1e-4, True, True),
    ("sdxl", "24gb"): _Row(1024, 2, 32, 1e-4, True, True),
}
#: The built-in placeholder model: tuned so it measurably learns in well under a minute on a CPU.
PLACEHOLDER = TrainPresetView(name="CPU smoke (built-in model)", max_train_steps=40, rank=8, learning_rate=3e-3,
                              train_batch_size=4, resolution=64, family="sd1", tier="cpu")  # fmt: skip
#: The built-in demo model (64 px, 4 M-parameter UNet): a LoRA that visibly moves it in about a minute on a CPU.
DEMO = TrainPresetView(name="CPU quick (built-in demo model)", max_train_steps=300, rank=8, learning_rate=1e-3,
                       train_batch_size=4, resolution=64, family="sd1", tier="cpu")  # fmt: skip


def tier_for(kind: str, total_mb: int) -> str:
    """The preset tier of a device: its total memory rounded down to 6 / 8 / 12 / 24 GB, or "cpu"."""
    if kind != "cuda":
        return "cpu"
    tier = "cpu"
    for name, floor in _TIER_FLOOR_MB.items():
        if total_mb >= floor:
            tier = name
    return tier


def preset(
    family: str, tier: str, photos: int, *, bf16: bool = False, placeholder: bool = False
) -> TrainPresetView:
    """The table row for ``family`` / ``tier``, its steps scaled to ``photos``."""
    if placeholder:
        return PLACEHOLDER
    row = TABLE.get((family, tier))
    if row is None:
        raise errors.InvalidInput(f"no training preset for {family.upper()} base models", field="base_model")
    steps = round(photos * row.steps_per_photo / row.batch)
    steps = max(row.min_steps, min(row.max_steps, steps))
    precision = ("bf16" if bf16 else "fp16") if row.half else "no"
    label = "CPU" if tier == "cpu" else f"{tier[:-2]} GB GPU"
    return TrainPresetView(
        name=f"{family.upper()} on a {label}", max_train_steps=steps, rank=row.rank, learning_rate=row.lr,
        train_batch_size=row.batch, resolution=row.resolution, family=family, tier=tier,
        gradient_checkpointing=row.checkpointing, mixed_precision=precision,
    )  # fmt: skip


def device_budget(studio: Studio) -> Any:
    """This process's training device (``training.preflight.DeviceMemory``), budget overridden by the
    ``train_memory_budget_mb`` setting."""
    import dataclasses

    from training.preflight import detect_device

    device = detect_device()
    override = studio.settings.train_memory_budget_mb
    if override is not None:
        device = dataclasses.replace(device, budget_mb=override)
    return device


def preset_for(studio: Studio, photos: int = 1, device: Any = None) -> TrainPresetView:
    """The one-click preset for the current base model, this device and a kit of ``photos`` photos."""
    model = studio.resolve()
    if model.is_placeholder:
        return PLACEHOLDER
    if model.is_demo:
        return DEMO
    device = device or device_budget(studio)
    return preset(model.family, tier_for(device.kind, device.total_mb), photos, bf16=device.supports_bf16)


def plan_view(preset_view: TrainPresetView, plan: Any) -> TrainPlanView:
    """The preflight's outcome as a view: the preset updated with every change the preflight made."""
    config = plan.config
    fitted = preset_view.model_copy(update={
        "resolution": config.resolution, "train_batch_size": config.train_batch_size,
        "gradient_checkpointing": config.gradient_checkpointing, "mixed_precision": config.mixed_precision,
        "optimizer": config.optimizer, "gradient_accumulation_steps": config.gradient_accumulation_steps,
    })  # fmt: skip
    return TrainPlanView(
        preset=fitted, device=plan.device.name, budget_mb=plan.device.budget_mb,
        estimate_mb=plan.estimate.peak_mb, estimate_summary=plan.estimate.summary(), changes=tuple(plan.changes),
    )  # fmt: skip


def steps_label(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
