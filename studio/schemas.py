"""Frozen request/result/view types crossing the API. No ORM object ever leaves the facade.

Requests validate on construction; use ``XxxRequest.of(...)`` to get :class:`InvalidInput` with a
field-specific message instead of pydantic's ``ValidationError``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from studio.errors import InvalidInput
from studio.generation.schedulers import SCHEDULERS
from studio.mode_fields import GenerationModeFields, check_mode_fields
from studio.seed_fields import GenerationSeedFields, check_seed_fields

MAX_SEED = 2**32 - 1
SCHEDULER_NAMES = tuple(SCHEDULERS)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Request(Frozen):
    @classmethod
    def of(cls, **data: Any) -> Self:
        """Build the request, turning validation errors into one field-specific InvalidInput."""
        try:
            return cls(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            messages = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInput(messages, field=None if field is None else field) from None


class UploadedFile(Frozen):
    """A file as the browser or CLI handed it over. ``name`` is only a label."""

    name: str
    data: bytes


class KitCreateRequest(Request):
    name: str
    trigger_token: str
    class_noun: str
    description: str = ""
    background_color: str = Field("#FFFFFF", pattern=r"^#[0-9A-Fa-f]{6}$",
                                  description="transparent upload areas are filled with this colour")  # fmt: skip


class PaletteEntry(Frozen):
    hex: str
    name: str = ""


class StyleGuideRequest(Request):
    """The structured style guide; brand_kits validates and normalises every field."""

    palette: tuple[PaletteEntry, ...] = ()
    fonts: tuple[str, ...] = ()
    tone_words: tuple[str, ...] = ()
    dos: tuple[str, ...] = ()
    donts: tuple[str, ...] = ()
    required_terms: tuple[str, ...] = ()
    banned_terms: tuple[str, ...] = ()


class StyleGuideView(StyleGuideRequest):
    style_fragment: str = ""
    negative_prompt: str = ""


class SwatchView(Frozen):
    hex: str
    name: str
    share: float


class ExtractedStyleView(Frozen):
    """What was found in an uploaded style guide: for the marketer to confirm, never saved as is."""

    text_excerpt: str
    colors: tuple[PaletteEntry, ...]
    fonts: tuple[str, ...]
    pages: int
    warnings: tuple[str, ...]


class CaptionBulkEdit(Request):
    prefix: str = ""
    suffix: str = ""
    find: str = ""
    replace: str = ""


class RightsRequest(Request):
    source: str = Field("", max_length=500)
    licence: str = Field("", max_length=100)
    consent: bool = False


class KitVersionView(Frozen):
    id: int
    kit_id: int
    number: int
    manifest_sha256: str
    photo_count: int
    created_at: datetime


class TrainRequest(Request):
    """One-click training: every setting left as None comes from the preset for the base model."""

    kit_id: int = Field(gt=0)
    max_train_steps: int | None = Field(None, ge=1, le=100_000)
    rank: int | None = Field(None, ge=1, le=256)
    learning_rate: float | None = Field(None, gt=0, le=1.0)
    train_batch_size: int | None = Field(None, ge=1, le=64)
    resolution: int | None = Field(None, ge=64, le=2048)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    optimizer: str = Field("adamw8bit", pattern="^(adamw8bit|adamw)$")
    name: str | None = Field(None, min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    #: mirror photos at random (doubles the views); ignored for kits with logos: it would mirror them
    flip: bool = False
    #: also train a LoRA on the text encoder(s) (stronger trigger word; text embeddings are not cached)
    train_text_encoder: bool = False
    #: prior preservation: also learn from generic photos of the class noun, generated once by the base
    #: model, so "a bottle" without the trigger keeps looking like any bottle
    prior_preservation: bool = False

    @field_validator("learning_rate")
    @classmethod
    def _finite_lr(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError("must be a multiple of 8")
        return v


class LoraChoice(Frozen):
    lora_id: int = Field(gt=0)
    weight: float = Field(1.0, ge=-4.0, le=4.0)


class GenerateRequest(Request, GenerationModeFields, GenerationSeedFields):
    """One press of Generate; the mode fields (img2img, inpaint, outpaint, ControlNet) come from
    :class:`studio.mode_fields.GenerationModeFields`, the variation seed, batch count and ad format
    from :class:`studio.seed_fields.GenerationSeedFields`."""

    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    kit_id: int | None = Field(None, gt=0)
    loras: tuple[LoraChoice, ...] = ()
    scheduler: str = "Euler"
    num_inference_steps: int = Field(20, ge=1, le=150)
    guidance_scale: float = Field(7.0, ge=0.0, le=30.0)
    width: int | None = Field(None, ge=64, le=2048)
    height: int | None = Field(None, ge=64, le=2048)
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 picks a random seed (recorded)")
    batch_size: int = Field(1, ge=1, le=8)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; describe the image you want")
        return v

    @field_validator("guidance_scale")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError(f"must be a multiple of 8 (try {max(64, v - v % 8)})")
        return v

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULER_NAMES:
            raise ValueError(f"unknown scheduler; choose one of {', '.join(SCHEDULER_NAMES)}")
        return v

    @model_validator(mode="after")
    def _mode_fields(self) -> Self:
        check_mode_fields(self)  # raises a field-specific InvalidInput
        check_seed_fields(self)
        return self


class KitView(Frozen):
    id: int
    slug: str
    name: str
    trigger_token: str
    class_noun: str
    description: str
    photo_count: int
    created_at: datetime
    background_color: str = "#FFFFFF"
    logo_count: int = 0


class AssetView(Frozen):
    id: int
    kit_id: int
    kind: str
    label: str
    width: int
    height: int
    caption: str
    blob_sha256: str
    warnings: tuple[str, ...] = ()
    caption_warnings: tuple[str, ...] = ()
    mask_sha256: str | None = None
    source: str = ""
    licence: str = ""
    consent: bool = False


class LoraView(Frozen):
    id: int
    name: str
    kit_id: int | None
    training_run_id: int | None
    sha256: str
    short_hash: str
    rank: int
    alpha: float
    base_model_ref: str
    trigger_phrase: str
    created_at: datetime
    kohya_sha256: str | None = None
    step: int | None = None  #: the checkpoint step it came from (None: the run's final weights)


class TrainingRunView(Frozen):
    id: int
    kit_id: int
    kit_version: int | None = None
    job_id: int | None
    status: str
    steps: int
    final_loss: float | None
    first_loss: float | None
    elapsed_s: float | None
    error: str | None
    lora: LoraView | None
    resumed_from_step: int = 0
    tensor_sha256: str | None = None


class JobView(Frozen):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    error: str | None
    attempts: int
    result: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TrainPresetView(Frozen):
    """The settings one click uses: a row of the preset table for the base model family and the device
    memory tier, scaled to the kit size, then fitted to the memory budget by the preflight."""

    name: str
    max_train_steps: int
    rank: int
    learning_rate: float
    train_batch_size: int
    resolution: int
    family: str = "sd1"
    tier: str = "cpu"  #: cpu, 6gb, 8gb, 12gb or 24gb
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"
    optimizer: str = "adamw8bit"
    gradient_accumulation_steps: int = 1


class TrainPlanView(Frozen):
    """What the preflight decided for a run on this machine's device."""

    preset: TrainPresetView
    device: str
    budget_mb: int
    estimate_mb: float
    estimate_summary: str
    changes: tuple[str, ...] = ()


class TrainingSampleView(Frozen):
    """One validation image of a training checkpoint."""

    id: int
    training_run_id: int
    step: int
    prompt: str
    seed: int
    image_sha256: str
    lora_sha256: str


class TrainProgressView(Frozen):
    step: int
    total_steps: int
    loss: float
    steps_per_s: float = 0.0
    eta_s: float | None = None


class GeneratedImageView(Frozen):
    generation_id: int
    index: int
    seed: int
    blob_sha256: str
    pixel_sha256: str
    parameters: str


class AppliedLoraView(Frozen):
    lora_id: int
    name: str
    weight: float


class GenerationView(Frozen):
    id: int
    created_at: datetime
    parent_id: int | None
    kit_id: int | None
    prompt: str
    negative_prompt: str
    model_ref: str
    model_hash: str
    scheduler: str
    num_inference_steps: int
    guidance_scale: float
    width: int
    height: int
    seed: int
    loras: tuple[AppliedLoraView, ...]
    images: tuple[GeneratedImageView, ...]
    warnings: tuple[str, ...] = ()
    mode: str = "txt2img"  #: txt2img, img2img, inpaint, outpaint or controlnet


class ComposedPromptView(Frozen):
    """The prompts the model will read (kit trigger, class noun, style fragment, don'ts added) and how
    the tokenizer lays them out: over one chunk, A1111's long-prompt method encodes every chunk."""

    prompt: str
    negative_prompt: str
    prompt_tokens: int  #: content tokens (no start/end markers)
    negative_tokens: int
    chunk_length: int  #: tokens per chunk (75 for CLIP)
    prompt_chunks: int
    negative_chunks: int
    notes: tuple[str, ...] = ()


class ModelInfoView(Frozen):
    ref: str
    name: str
    kind: str
    family: str
    short_hash: str
    is_placeholder: bool
    default_size: int
    is_demo: bool = False
    default_guidance: float = 7.0


class DoctorCheck(Frozen):
    name: str
    ok: bool
    detail: str


class DoctorReport(Frozen):
    checks: tuple[DoctorCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

