"""The request fields of the seed controls, batch count and ad formats, and their checks.

:class:`GenerationSeedFields` is mixed into ``GenerateRequest``. Names follow AUTOMATIC1111's
(``subseed`` = Variation seed, ``subseed_strength`` = Variation strength, ``seed_resize_from_w/h`` =
"Resize seed from width/height", ``batch_count``), so its users recognise them. Every check raises a
field-specific error before any work. No torch, no DB: the schemas import this module.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from studio.errors import InvalidInput
from studio.formats import FORMAT_KEYS

if TYPE_CHECKING:
    from studio.schemas import GenerateRequest

MAX_SEED = 2**32 - 1  #: as studio.schemas.MAX_SEED (which imports this module)
MAX_BATCH_COUNT = 16
#: The modes whose initial noise comes from the engine's seeded latents (variations apply).
VARIATION_MODES = ("txt2img", "controlnet")


class GenerationSeedFields(BaseModel):
    """Variation seed, seed resize, batch count and ad format (defaults: none of them)."""

    batch_count: int = Field(1, ge=1, le=MAX_BATCH_COUNT, description="batches run one after another")
    subseed: int = Field(-1, ge=-1, le=MAX_SEED, description="variation seed; -1 picks one at random")
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0, description="0 = the seed alone, 1 = the variation seed")
    seed_resize_from_w: int = Field(0, ge=0, le=2048, description="make the seed's noise at this width")
    seed_resize_from_h: int = Field(0, ge=0, le=2048, description="... and this height (0, 0 = off)")
    format: str | None = Field(None, description="ad format key (studio.formats); sets the final pixel size")

    @field_validator("subseed_strength")
    @classmethod
    def _finite_strength(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number between 0 and 1")
        return v

    @field_validator("seed_resize_from_w", "seed_resize_from_h")
    @classmethod
    def _resize_side(cls, v: int) -> int:
        if v and (v < 64 or v % 8):
            raise ValueError("must be 0 (off) or a multiple of 8 from 64 to 2048")
        return v

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        if v is not None and v not in FORMAT_KEYS:
            raise ValueError(f"unknown ad format; choose one of {', '.join(FORMAT_KEYS)}")
        return v


def check_seed_fields(req: GenerateRequest) -> None:
    """Checks across fields: both resize sides; a variation or an ad format only where the mode
    can honour it."""
    if bool(req.seed_resize_from_w) != bool(req.seed_resize_from_h):
        missing = "seed_resize_from_h" if req.seed_resize_from_w else "seed_resize_from_w"
        raise InvalidInput("set both seed_resize_from_w and seed_resize_from_h, or neither", field=missing)
    if req.subseed_strength and req.mode not in VARIATION_MODES:
        raise InvalidInput(
            f"a variation seed needs the engine's seeded noise, which {req.mode} does not use; "
            "set subseed_strength to 0", field="subseed_strength",
        )  # fmt: skip
    if req.format is not None and req.mode != "txt2img":
        raise InvalidInput(
            f"ad formats are made by text-to-image; {req.mode} keeps its input's size. Generate in the "
            "format first, then edit", field="format",
        )  # fmt: skip
