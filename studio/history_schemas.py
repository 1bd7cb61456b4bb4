"""Request and result types of the generation history (``Studio.history``) and of reading a request
back from a PNG (``Studio.request_from_png``). Frozen, no torch, no DB."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import Field, ValidationInfo, field_validator

from studio.schemas import Frozen, GenerateRequest, GenerationView, Request

HISTORY_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{1,180}\.[0-9a-f]{16}")


class HistoryQuery(Request):
    """One page of the generation history, newest first: filters (None = any), page size, and where
    to start (``cursor``: the previous page's ``next_cursor``, used with the same filters)."""

    kit_id: int | None = Field(None, gt=0)
    model_ref: str | None = Field(None, min_length=1, max_length=500)
    mode: str | None = Field(None, pattern=r"^[a-z0-9_]{1,16}$")
    lora_id: int | None = Field(None, gt=0)
    text: str | None = Field(None, min_length=1, max_length=200, description="case-insensitive, in the prompt")
    since: datetime | None = Field(None, description="made at or after (timezone required)")
    until: datetime | None = Field(None, description="made before (timezone required)")
    cursor: str | None = None
    limit: int = Field(20, ge=1, le=100)

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.utcoffset() is None:
            raise ValueError("needs a timezone, e.g. 2026-11-01T00:00:00+00:00")
        return v

    @field_validator("until")
    @classmethod
    def _after_since(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if v is not None and since is not None and v <= since:
            raise ValueError("must be later than since")
        return v

    @field_validator("cursor")
    @classmethod
    def _cursor_shape(cls, v: str | None) -> str | None:
        if v is not None and not HISTORY_CURSOR_RE.fullmatch(v):
            raise ValueError("is not a history cursor; copy the whole next_cursor of the previous page")
        return v


class HistoryPage(Frozen):
    items: tuple[GenerationView, ...]
    #: pass as ``HistoryQuery.cursor`` (same filters) for the next page; None on the last page
    next_cursor: str | None
    limit: int


class PngReadResult(Frozen):
    """A generation request read back from a PNG, and what in the file could not be carried over."""

    request: GenerateRequest
    source: str  #: "brand_studio" (our JSON recipe) or "a1111" (the ``parameters`` text)
    unmapped: tuple[str, ...] = ()  #: fields of the file left out of the request
    notes: tuple[str, ...] = ()  #: why, and what differs from the original image
