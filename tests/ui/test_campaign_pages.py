"""The A/B, Review and Export pages through AppTest on the real app and a real data dir."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from studio.api import open_studio
from studio.campaign_schemas import CheckThresholds
from studio.schemas import GenerateRequest, StyleGuideRequest
from studio.settings import Settings

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
TIMEOUT = 240


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(f"studio/ui/pages/{name}.py")
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _master(data_dir: Path) -> int:
    studio = open_studio(Settings(data_dir=data_dir))
    try:
        kit = studio.list_kits()[0]
        studio.set_style_guide(kit.id, StyleGuideRequest.of(banned_terms=("cheap",)))
        studio.set_check_thresholds(kit.id, CheckThresholds(palette_pass=90, palette_warn=95))  # noise vs no palette
        return studio.generate(GenerateRequest.of(prompt="on a table", kit_id=kit.id, seed=4, width=128, height=128,
                                                  num_inference_steps=3)).id  # fmt: skip
    finally:
        studio.close()


def _mask() -> bytes:
    mask = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(mask).rectangle((40, 40, 87, 87), fill=255)
    buf = BytesIO()
    mask.save(buf, "PNG")
    return buf.getvalue()


def test_ab_review_export_journey(trained: Path) -> None:
    gen_id = _master(trained)
    at = _page("ab")
    _ok(at)
    at.text_input(key="ab_name").input("Spring <b>launch</b>")
    _click(at, "Create campaign")
    _ok(at)
    assert at.selectbox(key="ab_gen").value.id == gen_id
    at.file_uploader(key="ab_mask").upload("mask.png", _mask(), "image/png")
    at.text_input(key="ab_headline").input("Fresh")
    _click(at, "Add master")
    _ok(at)
    at.selectbox(key="ab_factor").select("copy").run()
    at.text_area(key="ab_values").input("Shop now\nCheap deal")
    at.text_input(key="ab_hypothesis").input("urgency sells")
    _click(at, "Make cells")
    _ok(at)
    assert "Made 2 cell(s)" in at.success[0].value
    cards = [m.value for m in at.markdown if "copy =" in m.value or "control =" in m.value]
    assert len(cards) == 3  # the control and two copy cells, side by side
    assert any("banned" in m.value and "cheap" in m.value.lower() for m in at.markdown)

    at = _page("review")
    at.text_input(key="rv_reviewer").input("ana").run()
    send = [b for b in at.button if b.label == "Send to review"]
    assert len(send) == 3
    send[0].click().run()
    _ok(at)
    next(b for b in at.button if b.label == "Approve").click().run()
    _ok(at)
    assert any("ana: in_review -> approved" in c.value for c in at.caption)

    at = _page("export")
    _click(at, "Build export pack")
    _ok(at)
    assert at.success[0].value.startswith("Export 1: 1 files from 1 cells")
    assert at.get("download_button")
    results = b"cell_id,impressions,clicks,conversions\nC1-1,1000,10,1\nC1-2,1000,40,2\nC1-3,1000,11,1\n"
    at.file_uploader(key="ex_results").upload("results.csv", results, "text/csv").run()
    _click(at, "Import results")
    _ok(at)
    assert any(s.value.replace("\\", "").startswith("winner: C1-2") for s in at.success)
    _click(at, "Make 4 more like the winner")
    _ok(at)
    assert any("New draft cells: C1-4, C1-5, C1-6, C1-7" in s.value for s in at.success)


def test_review_refuses_approval_without_reviewer_and_ab_refuses_bad_values(trained: Path) -> None:
    _master(trained)
    at = _page("ab")
    at.text_input(key="ab_name").input("Test")
    _click(at, "Create campaign")
    _click(at, "Add master")
    at.selectbox(key="ab_factor").select("format").run()
    at.text_area(key="ab_values").input("billboard")
    _click(at, "Make cells")
    assert any("unknown ad format" in e.value for e in at.error)
    at = _page("review")
    next(b for b in at.button if b.label == "Send to review").click().run()
    assert any("reviewer" in e.value for e in at.error)  # who reviews is recorded, so it is required
