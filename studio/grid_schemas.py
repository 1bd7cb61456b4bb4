"""Request and view types of X/Y grids (``Studio.generate_grid``). Frozen, no torch, no DB.

An axis is a parameter from an allow-list and the values it takes, as in AUTOMATIC1111's X/Y/Z plot:
``GridAxis.of(param="guidance_scale", values=(4, 7, 10))``. Values are checked as the generation
request's own field when the grid builds its cells (before any work).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from studio.errors import InvalidInput
from studio.schemas import Frozen, GenerationView, Request

GridParam = Literal[
    "seed", "guidance_scale", "num_inference_steps", "scheduler", "lora_weight", "prompt_sr", "subseed_strength"
]
MAX_AXIS_VALUES = 16
MAX_GRID_CELLS = 64


class GridAxis(Request):
    """One grid axis. ``lora_weight`` needs ``lora_id`` (the LoRA whose weight varies; added to the
    request if absent). ``prompt_sr`` is A1111's Prompt S/R: the first value is searched for in the
    prompt and negative prompt and each value replaces it (so the first column is the prompt as is)."""

    param: GridParam
    values: tuple[int | float | str, ...] = Field(min_length=1, max_length=MAX_AXIS_VALUES)
    lora_id: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _lora_id_only_for_lora_weight(self) -> Self:
        if self.param == "lora_weight" and self.lora_id is None:
            raise InvalidInput("a lora_weight axis needs lora_id: the LoRA whose weight varies", field="lora_id")
        if self.param != "lora_weight" and self.lora_id is not None:
            raise InvalidInput(f"lora_id is only for a lora_weight axis, not {self.param}", field="lora_id")
        if self.param == "prompt_sr" and not all(isinstance(v, str) and v for v in self.values):
            raise InvalidInput("Prompt S/R values are non-empty texts", field="values")
        return self


class GridView(Frozen):
    """A finished grid: its own generation row (one image: the labelled sheet, with a recipe naming
    the axes and cells) and every cell, a normal generation, row by row (y outer, x inner)."""

    generation: GenerationView
    x: GridAxis
    y: GridAxis | None
    cells: tuple[GenerationView, ...]
    columns: int
    rows: int
