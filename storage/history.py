"""The generation history: filtered, newest first, keyset (cursor) pagination that stays fast at 100k+ rows.

Order is ``(created_at DESC, id DESC)``: ``id`` breaks ties between rows with the same timestamp, so
the order is total and a page boundary never skips or repeats a row. The page after a cursor
``(created_at, id)`` is ``WHERE (created_at, id) < (:t, :id) ORDER BY created_at DESC, id DESC LIMIT n``:
a row-value comparison that SQLite (>= 3.15) and PostgreSQL answer with a range scan of an index
ending in ``(created_at, id)`` (migration 0004 adds one per filter), so page 4000 costs what page 1
costs. ``OFFSET`` would read and throw away every row before the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select, tuple_
from sqlalchemy.orm import selectinload

from storage.models import Generation, GenerationLora

__all__ = ["GenerationFilters", "PageCursor", "count_query", "cursor_of", "filter_clauses", "page_query"]

#: ``LIKE`` wildcards and the escape character, escaped so free text matches literally.
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class GenerationFilters:
    """What a history page shows; ``None`` means "any". ``since`` is inclusive, ``until`` exclusive;
    ``text`` is a case-insensitive substring of the final prompt (wildcards match literally)."""

    kit_id: int | None = None
    model_ref: str | None = None
    mode: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    lora_id: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class PageCursor:
    """The last row of a page: the next page starts strictly after it in history order."""

    created_at: datetime
    id: int


def _like_pattern(text: str) -> str:
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", _LIKE_ESCAPE + "%")
    return "%" + escaped.replace("_", _LIKE_ESCAPE + "_").lower() + "%"


def filter_clauses(filters: GenerationFilters) -> list[ColumnElement[bool]]:
    """The WHERE terms of ``filters`` (all must hold)."""
    g = Generation
    equal: list[tuple[Any, Any]] = [(g.kit_id, filters.kit_id), (g.model_ref, filters.model_ref), (g.mode, filters.mode)]
    clauses: list[ColumnElement[bool]] = [column == value for column, value in equal if value is not None]
    if filters.since is not None:
        clauses.append(g.created_at >= filters.since)
    if filters.until is not None:
        clauses.append(g.created_at < filters.until)
    if filters.lora_id is not None:
        used = select(GenerationLora.generation_id).where(
            GenerationLora.generation_id == g.id, GenerationLora.lora_id == filters.lora_id
        )
        clauses.append(exists(used))
    if filters.text:
        clauses.append(func.lower(g.prompt).like(_like_pattern(filters.text), escape=_LIKE_ESCAPE))
    return clauses


def page_query(filters: GenerationFilters, cursor: PageCursor | None, limit: int) -> Select[Generation]:
    """Up to ``limit`` rows after ``cursor`` (from the newest without one), images and LoRAs loaded
    with one extra query each (no N+1)."""
    clauses = filter_clauses(filters)
    if cursor is not None:
        clauses.append(tuple_(Generation.created_at, Generation.id) < (cursor.created_at, cursor.id))
    query = select(Generation).options(selectinload(Generation.images), selectinload(Generation.loras))
    if clauses:
        query = query.where(and_(*clauses))
    return query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit)


def count_query(filters: GenerationFilters) -> Select[int]:
    """How many rows ``filters`` match (the same WHERE terms as the pages)."""
    query = select(func.count()).select_from(Generation)
    clauses = filter_clauses(filters)
    return query.where(and_(*clauses)) if clauses else query


def cursor_of(row: Generation) -> PageCursor:
    return PageCursor(created_at=row.created_at, id=row.id)
