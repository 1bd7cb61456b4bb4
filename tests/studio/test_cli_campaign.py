"""`brand-studio campaign ...` and `brand-studio export` through typer's runner on a real data dir."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.api import open_studio
from studio.cli import app
from studio.schemas import GenerateRequest
from studio.settings import Settings

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, trained_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "data"
    shutil.copytree(trained_template, target)
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(target))
    studio = open_studio(Settings(data_dir=target))
    try:
        kit = studio.list_kits()[0]
        studio.generate(GenerateRequest.of(prompt="on a table", kit_id=kit.id, seed=2, width=128, height=128,
                                           num_inference_steps=2))  # fmt: skip
    finally:
        studio.close()
    return target


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_campaign_commands_from_master_to_export_and_winner(data_dir: Path, tmp_path: Path) -> None:
    assert "palette: pass 90, warn 95" in _ok(["campaign", "thresholds", "1", "--palette", "90,95"])
    assert "campaign 1: Launch" in _ok(["campaign", "create", "1", "Launch"])
    assert "control cell added" in _ok(["campaign", "creative", "1", "1", "--headline", "Fresh"])
    made = _ok(["campaign", "variants", "1", "--factor", "copy", "--value", "Shop now", "--value", "Learn more",
                "--hypothesis", "urgency"])  # fmt: skip
    assert "C1-2" in made and "C1-3" in made
    assert "C1-1: in_review" in _ok(["campaign", "review", "1", "in_review", "--reviewer", "ana"])
    assert "approved" in _ok(["campaign", "review", "1", "approved", "--reviewer", "ben"])
    shown = _ok(["campaign", "show", "1"])
    assert "C1-1" in shown and "approved" in shown
    out = _ok(["export", "1", "--channel", "x_square", "--out", str(tmp_path / "packs")])
    pack = next((tmp_path / "packs").glob("*.zip"))
    assert "1 files from 1 cells" in out
    with zipfile.ZipFile(pack) as archive:
        assert {"manifest.csv", "manifest.json"} <= set(archive.namelist())
    results = tmp_path / "results.csv"
    results.write_text("cell_id,impressions,clicks,conversions\nC1-1,1000,10,1\nC1-2,1000,40,2\nC1-3,1000,12,1\n")
    assert "winner: C1-2" in _ok(["campaign", "results", "1", str(results)])
    bad = tmp_path / "bad.csv"
    bad.write_text("cell_id,impressions,clicks,conversions\nC1-9,10,1,0\n")
    refused = runner.invoke(app, ["campaign", "results", "1", str(bad)])
    assert refused.exit_code == 2 and "C1-9" in refused.output
    assert "winner: C1-2" in _ok(["campaign", "winner", "1"])
