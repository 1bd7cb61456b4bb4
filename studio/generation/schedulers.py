"""The scheduler allow-list: names users know from AUTOMATIC1111, mapped to diffusers classes.

A data table, not an if-chain. User strings are only ever looked up in this table; nothing does
``getattr`` on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SchedulerSpec:
    name: str
    class_name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    a1111_sampler: str = ""
    a1111_schedule: str = "Automatic"


SCHEDULERS: dict[str, SchedulerSpec] = {
    spec.name: spec
    for spec in (
        SchedulerSpec("Euler", "EulerDiscreteScheduler", {}, "Euler"),
        SchedulerSpec("Euler a", "EulerAncestralDiscreteScheduler", {}, "Euler a"),
        SchedulerSpec("DPM++ 2M", "DPMSolverMultistepScheduler", {}, "DPM++ 2M"),
        SchedulerSpec(
            "DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "DPM++ 2M", "Karras"
        ),
        SchedulerSpec("DDIM", "DDIMScheduler", {}, "DDIM"),
        SchedulerSpec("UniPC", "UniPCMultistepScheduler", {}, "UniPC"),
        SchedulerSpec("PNDM", "PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    )
}
DEFAULT_SCHEDULER = "Euler"


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def make_scheduler(name: str, base_config: dict[str, Any]) -> Any:
    """A fresh scheduler for one request (so concurrent requests never share scheduler state)."""
    import diffusers

    spec = SCHEDULERS[name]
    classes = {
        "EulerDiscreteScheduler": diffusers.EulerDiscreteScheduler,
        "EulerAncestralDiscreteScheduler": diffusers.EulerAncestralDiscreteScheduler,
        "DPMSolverMultistepScheduler": diffusers.DPMSolverMultistepScheduler,
        "DDIMScheduler": diffusers.DDIMScheduler,
        "UniPCMultistepScheduler": diffusers.UniPCMultistepScheduler,
        "PNDMScheduler": diffusers.PNDMScheduler,
    }
    return classes[spec.class_name].from_config(base_config, **spec.overrides)
