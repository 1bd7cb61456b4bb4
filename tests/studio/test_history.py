"""Studio.history: filtered pages newest first, opaque cursors that refuse tampering, validation, the CLI."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.api import Studio
from studio.cli import app
from studio.errors import InvalidInput
from studio.history import _checksum
from studio.history_schemas import HistoryQuery
from studio.schemas import GenerateRequest, KitCreateRequest

runner = CliRunner()


@pytest.fixture
def filled(studio: Studio) -> tuple[Studio, list[int], int]:
    """Five real generations (2 steps each), the 2nd and 4th with a kit; returns their ids oldest first."""
    kit = studio.create_kit(KitCreateRequest.of(name="Acme", trigger_token="acm_x", class_noun="bottle"))
    ids = []
    for i in range(5):
        req = GenerateRequest.of(prompt=f"bottle {i} 100%", seed=i, num_inference_steps=2, width=64, height=64,
                                 kit_id=kit.id if i in (1, 3) else None)  # fmt: skip
        ids.append(studio.generate(req).id)
    return studio, ids, kit.id


def _all_pages(studio: Studio, **filters: object) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = studio.history(HistoryQuery.of(**filters, cursor=cursor))
        pages.append([g.id for g in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_filters_and_counts(filled: tuple[Studio, list[int], int]) -> None:
    studio, ids, kit_id = filled
    assert _all_pages(studio, limit=2) == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert _all_pages(studio, limit=5) == [ids[::-1]]  # exactly one full page: no empty extra page
    assert _all_pages(studio, limit=1, kit_id=kit_id) == [[ids[3]], [ids[1]]]
    first = studio.history(HistoryQuery.of(limit=2, kit_id=kit_id)).items[0]
    assert first.prompt.startswith("acm_x bottle, bottle 3") and len(first.images) == 1  # full views
    assert _all_pages(studio, text="BOTTLE 2 100%") == [[ids[2]]]
    assert _all_pages(studio, model_ref="builtin:tiny", mode="txt2img", limit=3) == [ids[:1:-1], ids[1::-1]]
    assert _all_pages(studio, mode="img2img") == [[]]
    now = datetime.now(UTC)
    assert _all_pages(studio, since=now - timedelta(hours=1), until=now + timedelta(hours=1)) == [ids[::-1]]
    assert _all_pages(studio, until=now - timedelta(hours=1)) == [[]]
    assert studio.count_history(HistoryQuery.of(kit_id=kit_id, cursor=None)) == 2
    assert studio.count_history(HistoryQuery.of(text="100%")) == 5
    assert studio.count_history(HistoryQuery.of(text="nothing like it")) == 0


def test_cursor_tampering_and_misuse_are_refused(filled: tuple[Studio, list[int], int]) -> None:
    studio, ids, kit_id = filled
    cursor = studio.history(HistoryQuery.of(limit=2)).next_cursor
    assert cursor is not None
    body, check = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert set(payload) == {"v", "t", "i", "f"} and payload["i"] == ids[3]

    def refused(query: HistoryQuery, message: str) -> None:
        with pytest.raises(InvalidInput, match=message) as caught:
            studio.history(query)
        assert caught.value.field == "cursor"

    forged = dict(payload, i=ids[0])  # jump elsewhere: the checksum no longer matches
    forged_body = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).rstrip(b"=").decode()
    refused(HistoryQuery.of(limit=2, cursor=f"{forged_body}.{check}"), "changed or is damaged")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    refused(HistoryQuery.of(limit=2, cursor=f"{flipped}.{check}"), "changed or is damaged")
    refused(HistoryQuery.of(limit=2, cursor=f"{body}.{'0' * 16}"), "changed or is damaged")
    refused(HistoryQuery.of(limit=2, kit_id=kit_id, cursor=cursor), "other filters")  # another list's cursor
    old = base64.urlsafe_b64encode(json.dumps(dict(payload, v=0)).encode()).rstrip(b"=").decode()
    refused(HistoryQuery.of(limit=2, cursor=f"{old}.{_checksum(old)}"), "another version")
    # A different page size is fine: the cursor is a position, not a page number.
    assert [g.id for g in studio.history(HistoryQuery.of(limit=3, cursor=cursor)).items] == ids[2::-1]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cursor": "abc"}, "cursor", "not a history cursor"),
        ({"cursor": "a" * 500 + ".0123456789abcdef"}, "cursor", "not a history cursor"),
        ({"cursor": "<script>.0123456789abcdef"}, "cursor", "not a history cursor"),
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 101}, "limit", "less than or equal to 100"),
        ({"kit_id": 0}, "kit_id", "greater than 0"),
        ({"mode": "TXT2IMG; drop"}, "mode", "pattern"),
        ({"text": ""}, "text", "at least 1"),
        ({"text": "x" * 201}, "text", "at most 200"),
        ({"since": datetime(2026, 11, 1)}, "since", "needs a timezone"),
        ({"since": datetime(2026, 11, 2, tzinfo=UTC), "until": datetime(2026, 11, 1, tzinfo=UTC)}, "until", "later than since"),
    ],
)
def test_query_validation_is_field_specific(fields: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        HistoryQuery.of(**fields)
    assert caught.value.field == field


def test_history_cli_pages_with_filters(filled: tuple[Studio, list[int], int], monkeypatch: pytest.MonkeyPatch) -> None:
    studio, ids, kit_id = filled
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(studio.settings.data_dir))
    result = runner.invoke(app, ["history", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "2 shown, 5 match" in result.output
    cursor = re.search(r"next page: --cursor (\S+)", result.output)
    assert cursor is not None
    result = runner.invoke(app, ["history", "--limit", "2", "--cursor", cursor.group(1)])
    assert result.exit_code == 0 and "2 shown, 5 match" in result.output, result.output
    assert re.search(rf"^│ {ids[2]} ", result.output, re.M) and re.search(rf"^│ {ids[1]} ", result.output, re.M)
    today = datetime.now(UTC).date().isoformat()
    result = runner.invoke(app, ["history", "--kit", str(kit_id), "--mode", "txt2img", "--model", "builtin:tiny",
                                 "--since", today, "--until", today, "--search", "bottle"])  # fmt: skip
    assert result.exit_code == 0 and "2 shown, 2 match" in result.output and "next page" not in result.output
    result = runner.invoke(app, ["history", "--until", "2000-01-01"])
    assert result.exit_code == 0 and "0 shown, 0 match" in result.output
    result = runner.invoke(app, ["history", "--kit", str(kit_id), "--cursor", cursor.group(1)])
    assert result.exit_code == 2 and "other filters" in result.output
    result = runner.invoke(app, ["history", "--since", "last tuesday"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_history_on_an_empty_studio(studio: Studio, tmp_path: Path) -> None:
    page = studio.history(HistoryQuery.of())
    assert page.items == () and page.next_cursor is None and page.limit == 20
    assert studio.count_history(HistoryQuery.of()) == 0
