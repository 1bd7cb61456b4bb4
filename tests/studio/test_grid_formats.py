"""Ad formats (exact pixel sizes) and X/Y grids of seed-locked variations."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from PIL import Image

from studio.api import Studio
from studio.errors import InvalidInput
from studio.formats import AD_FORMATS, LAST_CHECKED, fit_to_format, generation_size
from studio.generation.imagefile import read_png_metadata
from studio.generation.infotext import parse_parameters
from studio.grid_schemas import GridAxis
from studio.schemas import GenerateRequest


def _req(**kw: Any) -> GenerateRequest:
    fields: dict[str, Any] = dict(prompt="a red bottle", seed=42, num_inference_steps=2, width=64, height=64,
                                  scheduler="Euler")  # fmt: skip
    fields.update(kw)
    return GenerateRequest.of(**fields)


def _size(studio: Studio, sha: str) -> tuple[int, int]:
    with Image.open(BytesIO(studio.read_blob(sha))) as img:
        return img.size


# ----- the formats table -------------------------------------------------------------------------------
def test_table_has_the_reference_sizes() -> None:
    """The channel sizes of shared/reference/formats.md, exactly."""
    sizes = {(f.channel, f.width, f.height) for f in AD_FORMATS.values()}
    for size in [("Meta", 1080, 1080), ("Meta", 1080, 1350), ("Meta", 1080, 1920), ("Meta", 1200, 628),
                 ("Google", 1200, 628), ("Google", 1200, 1200), ("Google", 1200, 1500), ("LinkedIn", 1200, 628),
                 ("LinkedIn", 1200, 1200), ("LinkedIn", 720, 900), ("X", 1200, 1200), ("X", 1200, 628),
                 ("X", 800, 800), ("X", 800, 418)]:  # fmt: skip
        assert size in sizes
    banners = {(f.width, f.height) for f in AD_FORMATS.values() if f.key.startswith("google_banner_")}
    assert banners == {(300, 250), (336, 280), (728, 90), (300, 600), (160, 600), (970, 250), (970, 90),
                       (320, 50), (320, 100), (250, 250), (200, 200), (468, 60), (120, 600)}  # fmt: skip
    assert all(f.max_kb == 150 for f in AD_FORMATS.values() if f.key.startswith("google_banner_"))
    assert LAST_CHECKED


@pytest.mark.parametrize("key", sorted(AD_FORMATS))
def test_every_format_fits_to_its_exact_size_from_its_generation_size(key: str) -> None:
    fmt = AD_FORMATS[key]
    for native in (128, 512, 1024):
        w, h = generation_size(fmt, native)
        assert w % 64 == 0 and h % 64 == 0 and 64 <= min(w, h) and max(w, h) <= 2048
        out = fit_to_format(Image.new("RGB", (w, h), (200, 30, 30)), fmt)
        assert out.size == (fmt.width, fmt.height)


def test_sdxl_sizes_are_its_trained_buckets_and_sd15_stays_near_its_pixel_count() -> None:
    assert generation_size(AD_FORMATS["meta_feed_square"], 1024) == (1024, 1024)
    assert generation_size(AD_FORMATS["meta_feed_portrait"], 1024) == (896, 1152)
    assert generation_size(AD_FORMATS["meta_stories"], 1024) == (768, 1344)
    assert generation_size(AD_FORMATS["meta_feed_portrait"], 512) == (448, 576)
    w, h = generation_size(AD_FORMATS["meta_link"], 512)
    assert 0.8 < w * h / 512**2 < 1.25 and abs(w / h - 1200 / 628) < 0.1


def test_fit_is_a_centre_crop() -> None:
    img = Image.new("RGB", (128, 64), "blue")
    img.paste((255, 0, 0), (48, 0, 80, 64))  # a red band in the centre
    out = fit_to_format(img, AD_FORMATS["google_banner_250x250"])
    assert out.size == (250, 250) and out.getpixel((125, 125)) == (255, 0, 0)


def test_generate_in_a_format_records_both_sizes(studio: Studio) -> None:
    gen = studio.generate(_req(width=None, height=None, format="linkedin_vertical"))
    assert (gen.width, gen.height) == (720, 900)
    assert _size(studio, gen.images[0].blob_sha256) == (720, 900)
    meta = read_png_metadata(studio.read_blob(gen.images[0].blob_sha256))
    native = studio.model_info().default_size
    expected = list(generation_size(AD_FORMATS["linkedin_vertical"], native))
    fmt = meta["recipe"]["format"]
    assert (fmt["key"], fmt["generation_size"], fmt["final_size"]) == ("linkedin_vertical", expected, [720, 900])
    params = parse_parameters(meta["parameters"])
    assert params["Ad format"] == "linkedin_vertical" and params["Final size"] == "720x900"
    assert [params["Size-1"], params["Size-2"]] == [str(v) for v in expected]
    again = studio.rerender(gen.id)
    assert again.images[0].pixel_sha256 == gen.images[0].pixel_sha256


def test_format_with_explicit_generation_size_and_extreme_banner(studio: Studio) -> None:
    gen = studio.generate(_req(format="google_banner_728x90", width=512, height=64, batch_size=2))
    assert [_size(studio, i.blob_sha256) for i in gen.images] == [(728, 90), (728, 90)]
    assert read_png_metadata(studio.read_blob(gen.images[1].blob_sha256))["recipe"]["format"]["generation_size"] == [512, 64]
    square = studio.generate(_req(format="google_banner_728x90", width=64, height=64))
    assert any("crops" in w for w in square.warnings)  # 1:1 into 8:1 loses most of the image: said so


def test_format_is_refused_for_image_modes() -> None:
    with pytest.raises(InvalidInput) as info:
        GenerateRequest.of(prompt="x", mode="img2img", init_image="a" * 64, format="meta_feed_square")
    assert info.value.field == "format"


# ----- grids ------------------------------------------------------------------------------------------
def test_grid_cells_are_the_same_generations_run_alone(studio: Studio) -> None:
    base = _req()
    grid = studio.generate_grid(base, GridAxis.of(param="guidance_scale", values=(3, "9")),
                                GridAxis.of(param="seed", values=(1, 2)))  # fmt: skip
    assert (grid.columns, grid.rows, len(grid.cells)) == (2, 2, 4)
    for cell, (seed, cfg) in zip(grid.cells, [(1, 3.0), (1, 9.0), (2, 3.0), (2, 9.0)], strict=True):
        alone = studio.generate(_req(seed=seed, guidance_scale=cfg))
        assert (cell.seed, cell.guidance_scale) == (seed, cfg)
        assert cell.images[0].pixel_sha256 == alone.images[0].pixel_sha256
    sheet = grid.generation
    assert sheet.mode == "grid" and len(sheet.images) == 1
    width, height = _size(studio, sheet.images[0].blob_sha256)
    assert width > 2 * 64 and height > 2 * 64  # the cells plus label margins
    meta = read_png_metadata(studio.read_blob(sheet.images[0].blob_sha256))
    params = parse_parameters(meta["parameters"])
    assert (params["X Type"], params["X Values"], params["Y Type"], params["Y Values"]) == ("CFG Scale", "3, 9", "Seed", "1, 2")
    assert params["Seed"] == "1" and params["Prompt"] == "a red bottle"
    assert meta["recipe"]["grid"]["cells"] == [[c.id for c in grid.cells[:2]], [c.id for c in grid.cells[2:]]]
    with Image.open(BytesIO(studio.read_blob(sheet.images[0].blob_sha256))) as img:
        label_band = img.convert("L").crop((width - 128, 0, width, height - 128))
        assert label_band.getextrema()[0] < 128  # labels are drawn (dark text on white)
    again = studio.rerender(sheet.id)
    assert again.mode == "grid" and again.parent_id == sheet.id
    assert again.images[0].pixel_sha256 == sheet.images[0].pixel_sha256


def test_prompt_search_replace_and_variation_strength_axes(studio: Studio) -> None:
    grid = studio.generate_grid(_req(subseed=5), GridAxis.of(param="prompt_sr", values=("red", "blue")),
                                GridAxis.of(param="subseed_strength", values=(0.0, 1.0)))  # fmt: skip
    assert [c.prompt for c in grid.cells] == ["a red bottle", "a blue bottle"] * 2
    blue_alone = studio.generate(_req(prompt="a blue bottle"))
    seed_five = studio.generate(_req(seed=5))
    assert grid.cells[1].images[0].pixel_sha256 == blue_alone.images[0].pixel_sha256  # strength 0: the seed
    assert grid.cells[2].images[0].pixel_sha256 == seed_five.images[0].pixel_sha256  # strength 1: the subseed
    params = parse_parameters(grid.generation.images[0].parameters)
    assert (params["X Type"], params["X Values"], params["Y Type"]) == ("Prompt S/R", "red, blue", "Var. strength")


def test_lora_weight_axis(trained_studio: Studio) -> None:
    lora = trained_studio.list_loras()[0]
    grid = trained_studio.generate_grid(_req(), GridAxis.of(param="lora_weight", lora_id=lora.id, values=(0.0, 1.0)))
    base = trained_studio.generate(_req())
    assert grid.cells[0].images[0].pixel_sha256 == base.images[0].pixel_sha256  # weight 0 = no LoRA
    assert grid.cells[1].images[0].pixel_sha256 != base.images[0].pixel_sha256
    assert [c.loras[0].weight for c in grid.cells] == [0.0, 1.0]


def test_lora_weight_axis_changes_the_weight_in_place() -> None:
    from studio.grid import cell_requests
    from studio.schemas import LoraChoice

    req = _req(loras=(LoraChoice(lora_id=2, weight=0.5), LoraChoice(lora_id=5, weight=0.7)))
    rows = cell_requests(req, GridAxis.of(param="lora_weight", lora_id=2, values=(0, 1)),
                         GridAxis.of(param="lora_weight", lora_id=9, values=(0.3,)))  # fmt: skip
    assert [[(c.lora_id, c.weight) for c in r.loras] for r in rows[0]] == [
        [(2, 0.0), (5, 0.7), (9, 0.3)], [(2, 1.0), (5, 0.7), (9, 0.3)]
    ]  # fmt: skip
    assert rows[0][0].seed == req.seed


@pytest.mark.parametrize(
    ("x", "y", "field"),
    [(dict(param="guidance_scale", values=(7, "nan")), None, "x.guidance_scale"),
     (dict(param="num_inference_steps", values=(0,)), None, "x.num_inference_steps"),
     (dict(param="scheduler", values=("Euler", "__import__('os')")), None, "x.scheduler"),
     (dict(param="seed", values=(1, 2**64)), None, "x.seed"),
     (dict(param="subseed_strength", values=(0.5,)), dict(param="guidance_scale", values=(1e9,)), "y.guidance_scale"),
     (dict(param="prompt_sr", values=("green", "blue")), None, "x.values"),
     (dict(param="seed", values=(1,)), dict(param="seed", values=(2,)), "y.param"),
     (dict(param="seed", values=tuple(range(16))), dict(param="guidance_scale", values=tuple(range(5))), "y.values")],
)  # fmt: skip
def test_bad_grid_axes_are_refused_before_any_work(studio: Studio, x: dict[str, Any], y: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        studio.generate_grid(_req(), GridAxis.of(**x), GridAxis.of(**y) if y else None)
    assert info.value.field == field
    assert studio.list_generations() == []


@pytest.mark.parametrize(
    ("axis", "field"),
    [(dict(param="steps", values=(1,)), "param"), (dict(param="seed", values=()), "values"),
     (dict(param="seed", values=tuple(range(17))), "values"), (dict(param="lora_weight", values=(1,)), "lora_id"),
     (dict(param="seed", values=(1,), lora_id=3), "lora_id")],
)  # fmt: skip
def test_bad_axis_definitions(axis: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        GridAxis.of(**axis)
    assert info.value.field == field


# ----- CLI ------------------------------------------------------------------------------------------------
def test_cli_format_variation_batch_count_and_grid(tmp_path: Any, tiny_model_dir: Any, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from studio.cli import app
    from tests.fixtures import seed_data_dir

    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(seed_data_dir(tmp_path / "data", tiny_model_dir)))
    runner = CliRunner()
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 0 and "meta_stories" in result.output and "1080x1920" in result.output
    result = runner.invoke(app, ["generate", "a red bottle", "--steps", "2", "--seed", "3", "--batch-count", "2",
                                 "--subseed", "9", "--subseed-strength", "0.5", "--seed-resize-from", "64x64",
                                 "--format", "x_card_square", "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").glob("*.png"))
    assert [f.name.split("-")[-1] for f in files] == ["3.png", "4.png"]
    params = parse_parameters(read_png_metadata(files[1].read_bytes())["parameters"])
    assert (params["Variation seed"], params["Seed resize from"], params["Final size"]) == ("10", "64x64", "800x800")
    with Image.open(files[0]) as img:
        assert img.size == (800, 800)
    result = runner.invoke(app, ["generate", "x", "--seed-resize-from", "big", "--steps", "1"])
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.output
    result = runner.invoke(app, ["generate", "x", "--format", "nope", "--steps", "1"])
    assert result.exit_code == 2 and "unknown ad format" in result.output
    result = runner.invoke(app, ["grid", "a red bottle", "--steps", "1", "--seed", "1", "--x", "guidance_scale=3,9",
                                 "--y", "prompt_sr=red,blue", "--out", str(tmp_path / "grid.png")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2x2 cells" in result.output and (tmp_path / "grid.png").is_file()
