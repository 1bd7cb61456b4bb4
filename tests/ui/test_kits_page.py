"""The Brand kits page's sections through AppTest: captions, style guide (with PDF suggestions),
rights, versions, exports and archive import, on a real data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio.api import open_studio
from studio.schemas import KitCreateRequest
from studio.settings import Settings
from tests.fixtures import minimal_pdf, product_uploads, seed_data_dir

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


@pytest.fixture
def kit_dir(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = seed_data_dir(tmp_path / "data", tiny_model_dir)
    studio = open_studio(Settings(data_dir=data_dir))
    studio.create_kit(KitCreateRequest.of(name="Acme Bottle", trigger_token="acm_bottle", class_noun="bottle"),
                      product_uploads(2))  # fmt: skip
    studio.close()
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(data_dir))
    return data_dir


def _kits_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("studio/ui/pages/kits.py")
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def _studio(data_dir: Path):  # type: ignore[no-untyped-def]
    return open_studio(Settings(data_dir=data_dir))


def test_captions_are_saved_and_linted(kit_dir: Path) -> None:
    at = _kits_page()
    _ok(at)
    at.text_input(key="cap_1_1").set_value("a cheap bottle")
    _button(at, "Save captions").click().run()
    _ok(at)
    assert "Saved 1 captions." in at.success[0].value
    assert any("does not contain the trigger token" in c.value for c in at.caption)
    studio = _studio(kit_dir)
    assert [a.caption for a in studio.list_assets(1)] == ["a cheap bottle", "a photo of acm_bottle bottle"]
    studio.close()


def test_style_guide_saved_and_pdf_suggestions_shown(kit_dir: Path) -> None:
    at = _kits_page()
    areas = {a.label: a for a in at.text_area}
    areas["Palette (one per line: #RRGGBB name)"].set_value("#1F3A93 Acme navy")
    areas["Tone words"].set_value("clean\npremium")
    areas["Don'ts"].set_value("cluttered background")
    _button(at, "Save style guide").click().run()
    _ok(at)
    assert "Style guide saved." in [s.value for s in at.success]
    assert any("Style fragment: clean, premium" in t.value for t in at.text)
    at.file_uploader(key="guide_1").upload("guide.pdf", minimal_pdf(), "application/pdf").run()
    _button(at, "Read it").click().run()
    _ok(at)
    assert any("#F4C20D" in t.value and "Helvetica-Bold" in t.value for t in at.text)
    studio = _studio(kit_dir)
    guide = studio.get_style_guide(1)
    assert [c.hex for c in guide.palette] == ["#1F3A93"] and guide.donts == ("cluttered background",)
    studio.close()


def test_rights_versions_exports_and_import(kit_dir: Path) -> None:
    at = _kits_page()
    at.text_input(key="lic_1").set_value("CC-BY-4.0")
    at.checkbox(key="con_1").check()
    next(b for b in at.button if b.label == "Save").click().run()
    _ok(at)
    _button(at, "Freeze a version now").click().run()
    _ok(at)
    assert any("Version 1: 2 photos." in s.value for s in at.success)
    _button(at, "Prepare kit archive").click().run()
    _ok(at)
    assert any(b.label == "Download kit archive" for b in at.get("download_button"))
    studio = _studio(kit_dir)
    assert studio.list_assets(1)[0].licence == "CC-BY-4.0" and studio.list_assets(1)[0].consent
    archive = studio.export_kit_archive(1)
    studio.close()
    at.file_uploader(key="import_archive").upload("kit.zip", archive, "application/zip").run()
    _button(at, "Import kit").click().run()
    assert "already exists" in at.error[0].value  # same kit, same install: refused, nothing stored
