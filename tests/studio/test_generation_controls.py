"""Cancel mid-run stores nothing and leaves the shared engine exact; the composed prompt is previewed
exactly as generation records it."""

from __future__ import annotations

import pytest
import typer

from studio.api import Studio
from studio.cli_base import studio_session
from studio.errors import GenerationCancelled
from studio.schemas import GenerateRequest, LoraChoice


def _req(studio: Studio, **kw: object) -> GenerateRequest:
    lora = studio.list_loras()[0]
    fields: dict[str, object] = dict(prompt="on a marble table", kit_id=lora.kit_id, seed=7, num_inference_steps=6,
                                     loras=(LoraChoice(lora_id=lora.id, weight=0.8),), batch_size=2)  # fmt: skip
    fields.update(kw)
    return GenerateRequest.of(**fields)


def test_cancel_mid_run_stores_nothing_and_the_next_run_is_exact(trained_studio: Studio) -> None:
    reference = trained_studio.generate(_req(trained_studio))
    rows, blobs = len(trained_studio.list_generations(limit=100)), sorted(trained_studio.blobs.iter_shas())
    seen: list[int] = []

    def stop_at_three(step: int, total: int) -> None:
        seen.append(step)
        if step == 3:
            raise GenerationCancelled("cancelled by the user")

    with pytest.raises(GenerationCancelled):
        trained_studio.generate(_req(trained_studio, seed=99), stop_at_three)
    assert seen == [1, 2, 3]  # stopped at once, not at the end
    assert len(trained_studio.list_generations(limit=100)) == rows  # no row
    assert sorted(trained_studio.blobs.iter_shas()) == blobs  # no file
    again = trained_studio.generate(_req(trained_studio))  # the engine (LoRA loaded, lock) is intact
    assert [i.pixel_sha256 for i in again.images] == [i.pixel_sha256 for i in reference.images]


def test_composed_prompt_preview_is_what_generation_records(trained_studio: Studio) -> None:
    req = _req(trained_studio, prompt="on a table, (glossy label:1.3)", negative_prompt="blurry")
    preview = trained_studio.compose_prompt(req)
    gen = trained_studio.generate(req)
    assert (preview.prompt, preview.negative_prompt) == (gen.prompt, gen.negative_prompt)
    assert preview.prompt.startswith("acm_bottle bottle, on a table")
    assert preview.prompt_chunks == 1 and preview.chunk_length == 75 and not preview.notes
    long = trained_studio.compose_prompt(_req(trained_studio, prompt=", ".join(["red bottle"] * 60)))
    assert long.prompt_tokens > 75 and long.prompt_chunks >= 2
    assert long.notes and "nothing is cut" in long.notes[0]


def test_ctrl_c_in_the_cli_exits_130_and_closes_the_studio(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(typer.Exit) as exit_info, studio_session():
        raise KeyboardInterrupt
    assert exit_info.value.exit_code == 130


def test_cli_prompt_and_read_png_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    import json
    from io import BytesIO

    from PIL import Image, PngImagePlugin
    from typer.testing import CliRunner

    from studio.cli import app
    from tests.fixtures import seed_data_dir

    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(seed_data_dir(tmp_path / "data", tiny_model_dir)))
    runner = CliRunner()
    shown = runner.invoke(app, ["prompt", "a (red:1.2) bottle", "--negative", "blur"])
    assert shown.exit_code == 0, shown.output
    assert "a (red:1.2) bottle" in shown.output and "chunk(s) of 75" in shown.output
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red bottle\nNegative prompt: blur\nSteps: 3, Sampler: Euler a, CFG scale: 5, "
                  "Seed: 77, Size: 64x64, Model hash: 0123456789, Denoising strength: 0.4")  # fmt: skip
    buf = BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "PNG", pnginfo=info)
    png = tmp_path / "a1111.png"
    png.write_bytes(buf.getvalue())
    read = runner.invoke(app, ["read-png", str(png), "--generate"])
    assert read.exit_code == 0, read.output
    request = json.loads(read.stdout[: read.stdout.rindex("}") + 1])
    assert request["prompt"] == "a red bottle" and request["seed"] == 77 and request["scheduler"] == "Euler a"
    assert "generation 1: 1 image(s), seed 77, 64x64" in read.stdout
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    refused = runner.invoke(app, ["read-png", str(bad)])
    assert refused.exit_code == 2 and "error" in refused.output


def test_lora_switch_a_b_a_gives_a_pixels_again(trained_studio: Studio) -> None:
    from studio.schemas import TrainRequest

    first = trained_studio.list_loras()[0]
    run = trained_studio.train_lora(TrainRequest.of(kit_id=first.kit_id, max_train_steps=4, seed=5, name="second"))
    assert run.lora is not None and run.lora.sha256 != first.sha256

    def with_lora(lora_id: int) -> list[str]:
        req = _req(trained_studio, loras=(LoraChoice(lora_id=lora_id, weight=1.0),))
        return [i.pixel_sha256 for i in trained_studio.generate(req).images]

    a, b, a_again = with_lora(first.id), with_lora(run.lora.id), with_lora(first.id)
    assert a != b and a_again == a  # switching adapters on the loaded pipeline, no reload, exact pixels


def test_rerender_in_a_fresh_process_gives_identical_pixels(trained_studio: Studio) -> None:
    import os
    import subprocess
    import sys

    gen = trained_studio.generate(_req(trained_studio))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BRAND_STUDIO_DATA_DIR": str(trained_studio.settings.data_dir)}
    done = subprocess.run([sys.executable, "-m", "studio.cli", "rerender", str(gen.id)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "identical pixels" in done.stdout
    again = trained_studio.list_generations(limit=1)[0]
    assert again.parent_id == gen.id and [i.pixel_sha256 for i in again.images] == [i.pixel_sha256 for i in gen.images]
