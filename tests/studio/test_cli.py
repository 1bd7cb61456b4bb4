"""The CLI through typer's runner, on a real data dir: same facade, exit 2 on user errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app
from studio.generation.imagefile import read_png_metadata
from tests.fixtures import product_photo, seed_data_dir

runner = CliRunner()


@pytest.fixture
def data_env(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = seed_data_dir(tmp_path / "data", tiny_model_dir)
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(data_dir))
    return data_dir


def test_doctor_reports_a_working_install(data_env: Path) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for name in ("torch", "bitsandbytes", "builtin:tiny", "revision", "GiB free"):
        assert name in result.output


def test_doctor_fails_on_a_broken_model(data_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAND_STUDIO_BASE_MODEL", str(data_env / "missing-model"))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "not found" in result.output


def test_kit_train_generate_rerender_via_cli(data_env: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"p{i}.png").write_bytes(product_photo(i))
    result = runner.invoke(app, ["kit", "create", "Acme Bottle", "--trigger", "acm_bottle", "--class-noun", "bottle",
                                 "--from-folder", str(photos)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "with 3 photos" in result.output
    result = runner.invoke(app, ["plan", "1"])
    assert result.exit_code == 0, result.output
    assert "preset: CPU smoke (built-in model) (tier cpu)" in result.output and "GB peak" in result.output
    result = runner.invoke(app, ["train", "1", "--steps", "6"])
    assert result.exit_code == 0, result.output
    assert "LoRA 1 'acme-bottle-v1'" in result.output
    # checkpoints every max(1, 6 // 4) = 1 step, each sampled; pick step 3, export both formats
    result = runner.invoke(app, ["samples", "1", "--out", str(tmp_path / "samples")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "samples").glob("run1-step*-seed*.png"))) == 12
    result = runner.invoke(app, ["pick", "1", "3"])
    assert result.exit_code == 0 and "LoRA 2 'acme-bottle-v1-step3' from step 3" in result.output, result.output
    result = runner.invoke(app, ["export-lora", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "acme-bottle-v1-step3.kohya.safetensors").is_file()
    result = runner.invoke(app, ["pick", "1", "99"])
    assert result.exit_code == 2 and "no checkpoint at step 99" in result.output
    out_dir = tmp_path / "out"
    result = runner.invoke(app, ["generate", "on a table", "--kit", "1", "--lora", "1:0.7", "--steps", "6",
                                 "--seed", "7", "--out", str(out_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "placeholder" in result.output
    pngs = sorted(out_dir.glob("*.png"))
    assert [p.name for p in pngs] == ["gen1-0-7.png"]
    params = read_png_metadata(pngs[0].read_bytes())["parameters"]
    assert "Seed: 7" in params and "<lora:acme-bottle-v1:0.7>" in params
    result = runner.invoke(app, ["rerender", "1"])
    assert result.exit_code == 0, result.output
    assert "identical pixels" in result.output
    result = runner.invoke(app, ["history"])
    assert result.exit_code == 0 and re.search(r"\b2\b", result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "x", "--steps", "0"], "num_inference_steps"),
        (["generate", "x", "--width", "100"], "multiple of 8"),
        (["generate", "x", "--scheduler", "nope"], "unknown scheduler"),
        (["train", "99"], "brand kit 99 does not exist"),
        (["kit", "create", "A", "--trigger", "the", "--class-noun", "bottle"], "trigger_token"),
        (["rerender", "5"], "generation 5 does not exist"),
    ],
)
def test_user_errors_exit_2_with_a_message(data_env: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_kit_commands_edit_export_and_import(data_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        (photos / f"p{i}.png").write_bytes(product_photo(i))
    assert runner.invoke(app, ["kit", "create", "Acme", "--trigger", "acm_kit", "--class-noun", "bottle",
                               "--from-folder", str(photos)]).exit_code == 0  # fmt: skip
    result = runner.invoke(app, ["kit", "caption", "1", "--suffix", "studio light"])
    assert result.exit_code == 0 and "a photo of acm_kit bottle studio light" in result.output
    result = runner.invoke(app, ["kit", "rights", "1", "1", "--licence", "owned", "--consent"])
    assert result.exit_code == 0 and "licence 'owned', consent True" in result.output
    style = tmp_path / "style.json"
    style.write_text('{"tone_words": ["clean"], "banned_terms": ["cheap"]}')
    result = runner.invoke(app, ["kit", "style", "1", "--from-json", str(style)])
    assert result.exit_code == 0 and '"negative_prompt": "cheap"' in result.output
    result = runner.invoke(app, ["kit", "show", "1"])
    assert result.exit_code == 0 and "style fragment: clean" in result.output
    assert runner.invoke(app, ["kit", "export", "1", "--format", "kohya", "--out", str(tmp_path / "k")]).exit_code == 0
    assert (tmp_path / "k" / "img" / "10_acm_kit bottle").is_dir()
    archive = tmp_path / "kit.zip"
    assert runner.invoke(app, ["kit", "export", "1", "--format", "archive", "--out", str(archive)]).exit_code == 0
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(seed_data_dir(tmp_path / "other", data_env / "models" / "builtin-tiny-v1")))
    result = runner.invoke(app, ["kit", "import", str(archive)])
    assert result.exit_code == 0 and "imported kit 1 'Acme' with 2 photos" in result.output
    result = runner.invoke(app, ["kit", "import", str(archive)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_train_without_waiting_queues_a_job(data_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "p.png").write_bytes(product_photo(0))
    runner.invoke(app, ["kit", "create", "Acme", "--trigger", "acm_kit", "--class-noun", "bottle",
                        "--from-folder", str(photos)])  # fmt: skip
    (data_env / "workers").mkdir()
    (data_env / "workers" / "someone.json").write_text("{}")  # a live worker: none is started
    result = runner.invoke(app, ["train", "1", "--steps", "2", "--no-wait"])
    assert result.exit_code == 0 and "queued job 1 (queued); a worker is running" in result.output
    assert runner.invoke(app, ["worker", "--once"]).exit_code == 0
    result = runner.invoke(app, ["loras"])
    assert "acme-v1" in result.output
