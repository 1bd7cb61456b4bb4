"""The generation history for the facade: a validated query -> one keyset page of views, opaque cursors.

A cursor names the last row of a page (its ``created_at`` and ``id``) and the filters it was made
for, as URL-safe base64 JSON plus a checksum: ``<payload>.<16 hex>``. Decoding refuses a cursor whose
checksum does not match (edited, truncated or damaged) or that was made for other filters (the next
page of one list is meaningless in another). The checksum uses a fixed key, so it detects changes but
is no secret: a cursor only says where a page starts, and grants nothing the filters do not show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import storage
from studio import errors
from studio.history_schemas import HistoryPage, HistoryQuery
from studio.views import generation_view

if TYPE_CHECKING:
    from studio.api import Studio

CURSOR_VERSION = 1
_CHECK_KEY = b"brand-studio history cursor v1"
_RESTART = "; start again from the first page"


def filters_of(query: HistoryQuery) -> storage.GenerationFilters:
    """The storage filters of a query; times in UTC."""
    since = query.since.astimezone(UTC) if query.since is not None else None
    until = query.until.astimezone(UTC) if query.until is not None else None
    return storage.GenerationFilters(kit_id=query.kit_id, model_ref=query.model_ref, mode=query.mode, since=since,
                                     until=until, lora_id=query.lora_id, text=query.text)  # fmt: skip


def history_page(studio: Studio, query: HistoryQuery) -> HistoryPage:
    """One page, newest first, with the cursor of the next (one read transaction, no N+1)."""
    filters = filters_of(query)
    cursor = decode_cursor(query.cursor, filters) if query.cursor is not None else None
    with studio.db.session(write=False) as s:
        rows, after = storage.GenerationRepo(s).page(filters, cursor, query.limit)
        items = tuple(generation_view(g) for g in rows)
    next_cursor = encode_cursor(after, filters) if after is not None else None
    return HistoryPage(items=items, next_cursor=next_cursor, limit=query.limit)


def history_count(studio: Studio, query: HistoryQuery) -> int:
    """How many generations the query's filters match (its cursor and limit are ignored)."""
    with studio.db.session(write=False) as s:
        return storage.GenerationRepo(s).count(filters_of(query))


def encode_cursor(cursor: storage.PageCursor, filters: storage.GenerationFilters) -> str:
    payload = {"v": CURSOR_VERSION, "t": _utc_text(cursor.created_at), "i": cursor.id, "f": _fingerprint(filters)}
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{body}.{_checksum(body)}"


def decode_cursor(text: str, filters: storage.GenerationFilters) -> storage.PageCursor:
    """The position ``text`` names; raises InvalidInput (field ``cursor``) if it was changed or belongs
    to other filters."""
    body, _, check = text.partition(".")
    if not hmac.compare_digest(check.encode(), _checksum(body).encode()):
        raise errors.InvalidInput("the cursor was changed or is damaged" + _RESTART, field="cursor")
    payload = _payload(body)
    if payload["f"] != _fingerprint(filters):
        raise errors.InvalidInput("the cursor belongs to a list with other filters" + _RESTART, field="cursor")
    return storage.PageCursor(created_at=datetime.fromisoformat(payload["t"]), id=payload["i"])


def _payload(body: str) -> dict[str, Any]:
    """The cursor's JSON (its checksum already matched, so only a cursor from another version fails)."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        valid = (
            isinstance(payload, dict) and payload.get("v") == CURSOR_VERSION and isinstance(payload.get("i"), int)
            and isinstance(payload.get("f"), str) and datetime.fromisoformat(payload["t"]).tzinfo is not None
        )  # fmt: skip
    except (ValueError, TypeError, KeyError, binascii.Error):
        valid = False
    if not valid:
        raise errors.InvalidInput("the cursor was made by another version of Brand Studio" + _RESTART, field="cursor")
    return payload  # type: ignore[no-any-return]


def _checksum(body: str) -> str:
    return hmac.new(_CHECK_KEY, body.encode(), hashlib.sha256).hexdigest()[:16]


def _fingerprint(filters: storage.GenerationFilters) -> str:
    values = [filters.kit_id, filters.model_ref, filters.mode, _utc_text(filters.since), _utc_text(filters.until),
              filters.lora_id, filters.text]  # fmt: skip
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:12]


def _utc_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")
