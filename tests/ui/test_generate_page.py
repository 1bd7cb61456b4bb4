"""The Generate page through AppTest on the real app: modes, format picker, seed controls, grid, read-back."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from streamlit.testing.v1 import AppTest

from studio.api import open_studio
from studio.settings import Settings

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
TIMEOUT = 180


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("studio/ui/pages/generate.py")
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _small(at: AppTest, prompt: str = "a red bottle", seed: int = 5) -> None:
    at.text_area(key="g_prompt").input(prompt)
    at.number_input(key="g_seed").set_value(seed)
    at.number_input(key="g_steps").set_value(4)
    at.number_input(key="g_width").set_value(64)
    at.number_input(key="g_height").set_value(64)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(data)).convert("RGB"))


def test_kit_and_lora_show_the_composed_prompt_and_rerender_identically(trained: Path) -> None:
    at = _page()
    _ok(at)
    at.selectbox(key="g_kit").select_index(1).run()
    at.multiselect(key="g_loras").select(at.multiselect(key="g_loras").options[0]).run()
    _small(at, "on a table", seed=11)
    at.run()
    _ok(at)
    composed = [c.value for c in at.code]
    assert composed[0].startswith("acm_bottle bottle, on a table"), composed  # the kit's trigger and class noun lead
    _click(at, "Generate")
    _ok(at)
    assert any(t.value.startswith("Final prompt: acm_bottle bottle, on a table") for t in at.text)
    params = [c.value for c in at.code if "Seed: 11" in c.value]
    assert params and "<lora:acme-bottle-v1:1>" in params[0]
    _click(at, "Re-render this recipe")
    _ok(at)
    assert "identical pixels" in at.success[0].value


def test_use_as_input_then_inpaint_with_an_uploaded_mask_keeps_outside_pixels(fresh: Path) -> None:
    at = _page()
    _small(at)
    _click(at, "Generate")
    _ok(at)
    at.selectbox(key=next(s.key for s in at.selectbox if s.key and s.key.startswith("g_send_mode_"))).select("inpaint")
    _click(at, "Use as input")
    _ok(at)
    assert at.radio(key="g_mode").value == "inpaint"
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # repaint the left half
    buf = BytesIO()
    mask.save(buf, "PNG")
    at.file_uploader(key="g_mask_upload").upload("mask.png", buf.getvalue(), "image/png").run()
    _ok(at)
    _click(at, "Generate")
    _ok(at)
    studio = open_studio(Settings(data_dir=fresh))
    try:
        first, edited = studio.list_generations(limit=2)[::-1]
        assert edited.mode == "inpaint" and edited.parent_id == first.id
        before = _png(studio.read_blob(first.images[0].blob_sha256))
        after = _png(studio.read_blob(edited.images[0].blob_sha256))
    finally:
        studio.close()
    assert np.array_equal(before[:, 32:], after[:, 32:])  # outside the mask: byte-identical
    assert not np.array_equal(before[:, :32], after[:, :32])  # inside: repainted


def test_format_picker_vary_and_variation_strength(fresh: Path) -> None:
    at = _page()
    _small(at)
    at.selectbox(key="g_format").select("google_banner_320x50").run()
    _ok(at)
    assert at.number_input(key="g_width").disabled
    _click(at, "Generate")
    _ok(at)
    caption = next(c.value for c in at.caption if "seed 5" in c.value)
    assert "320x50" in caption
    at.selectbox(key="g_format").select("").run()
    at.number_input(key="g_width").set_value(64)
    at.number_input(key="g_height").set_value(64)
    _click(at, "Generate")
    _click(at, "Vary")
    _ok(at)
    assert at.slider(key="g_subseed_strength").value == 0.25 and at.number_input(key="g_batch").value == 4
    assert at.number_input(key="g_seed").value == 5
    _click(at, "Generate")
    _ok(at)
    studio = open_studio(Settings(data_dir=fresh))
    try:
        varied, plain_gen = studio.list_generations(limit=3)[:2]
        assert len(varied.images) == 4 and varied.images[0].seed == 5
        assert varied.images[0].pixel_sha256 != plain_gen.images[0].pixel_sha256  # strength 0.25 differs
    finally:
        studio.close()


def test_xy_grid_and_field_specific_errors_before_any_work(fresh: Path) -> None:
    at = _page()
    _small(at)
    at.radio(key="g_mode").set_value("img2img").run()
    _click(at, "Generate")
    assert any("init_image" in e.value.replace("\\", "") for e in at.error)  # img2img without an input: named, nothing run
    at.radio(key="g_mode").set_value("txt2img").run()
    at.number_input(key="g_steps").set_value(2)
    at.text_input(key="g_grid_xv").input("3, 9")
    _click(at, "Make grid")
    _ok(at)
    assert any(s.value.startswith("X/Y grid") for s in at.subheader)
    studio = open_studio(Settings(data_dir=fresh))
    try:
        gens = studio.list_generations(limit=10)
        assert [g.mode for g in gens].count("grid") == 1 and len(gens) == 3  # the sheet and two cells
        assert sorted(g.guidance_scale for g in gens if g.mode == "txt2img") == [3.0, 9.0]
    finally:
        studio.close()


def test_settings_read_back_from_an_a1111_png_fill_the_form(fresh: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse at dusk\nNegative prompt: fog\n"
                  "Steps: 7, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 4.5, Seed: 1234, Size: 64x64, "
                  "Model hash: abcdef1234, Hires upscale: 2")  # fmt: skip
    buf = BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "PNG", pnginfo=info)
    at = _page()
    at.file_uploader(key="g_png_upload").upload("a1111.png", buf.getvalue(), "image/png").run()
    _click(at, "Fill the form from this PNG")
    _ok(at)
    assert at.text_area(key="g_prompt").value == "a lighthouse at dusk"
    assert at.text_input(key="g_negative").value == "fog"
    assert at.number_input(key="g_steps").value == 7 and at.number_input(key="g_seed").value == 1234
    assert at.selectbox(key="g_sampler").value == "DPM++ 2M Karras" and at.number_input(key="g_cfg").value == 4.5
    assert any("Hires upscale" in i.value for i in at.info)  # what could not be carried over is said
