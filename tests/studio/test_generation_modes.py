"""Generation modes on the tiny real models: img2img, inpaint, outpaint, ControlNet (canny).

Every mode: the same recipe gives identical pixels twice and through rerender (inputs re-read by
hash). Behaviour is asserted on pixels: strength matters, pixels outside a mask are byte-identical,
outpainting keeps the original region and grows the canvas, ControlNet at scale 0 equals plain
txt2img bit for bit (its residuals are multiplied by 0 and added to the UNet's activations, and
``x + 0.0 == x`` exactly), at scale 1 it does not. Bad inputs are refused before any work: the engine
is never even created.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import storage
from studio.api import Studio
from studio.errors import InvalidInput, ModelError, NotFound
from studio.generation.canny import canny_edges
from studio.generation.imagefile import COMPOSITE_WITH_TRAINED, read_png_metadata
from studio.generation.infotext import parse_parameters
from studio.schemas import GenerateRequest, GenerationView, LoraChoice, UploadedFile
from tests.controlnet_model import write_tiny_controlnet
from tests.fixtures import png_bytes, product_photo
from tests.sdxl_model import write_tiny_sdxl

SIZE = 64


@pytest.fixture(scope="module")
def controlnet_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return write_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "tiny-canny", tiny_model_dir)


def _request(**fields: object) -> GenerateRequest:
    base: dict[str, object] = dict(prompt="a bottle on a table", seed=7, num_inference_steps=4, width=SIZE,
                                   height=SIZE, scheduler="Euler")  # fmt: skip
    base.update(fields)
    return GenerateRequest.of(**base)



def _mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return png_bytes(mask)


def _square(size: int = SIZE) -> Image.Image:
    image = Image.new("RGB", (size, size), (0, 0, 0))
    image.paste((255, 255, 255), (16, 16, 48, 48))
    return image


def _pixels(studio: Studio, gen: GenerationView, index: int = 0) -> np.ndarray:
    with Image.open(BytesIO(studio.read_blob(gen.images[index].blob_sha256))) as image:
        return np.asarray(image.convert("RGB"))


def _params(studio: Studio, gen: GenerationView) -> dict[str, str]:
    return parse_parameters(read_png_metadata(studio.read_blob(gen.images[0].blob_sha256))["parameters"])


def _same(a: GenerationView, b: GenerationView) -> bool:
    return [i.pixel_sha256 for i in a.images] == [i.pixel_sha256 for i in b.images]


def test_img2img_is_reproducible_and_strength_matters(studio: Studio) -> None:
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=product_photo(0, 96)))
    first = studio.generate(_request(mode="img2img", init_image=photo, strength=0.5))
    again = studio.generate(_request(mode="img2img", init_image=photo, strength=0.5))
    rerendered = studio.rerender(first.id)
    stronger = studio.generate(_request(mode="img2img", init_image=photo, strength=1.0))
    plain = studio.generate(_request())
    assert _same(first, again) and _same(first, rerendered)
    assert not _same(first, stronger) and not _same(first, plain)
    assert first.mode == rerendered.mode == "img2img" and (first.width, first.height) == (SIZE, SIZE)
    assert rerendered.parent_id == first.id and first.parent_id is None  # an upload has no parent
    params = _params(studio, first)
    assert params["Denoising strength"] == "0.5" and params["Init image hash"] == photo[:10]
    recipe = read_png_metadata(studio.read_blob(first.images[0].blob_sha256))["recipe"]
    assert recipe["mode"] == "img2img" and recipe["init_image_sha256"] == photo and recipe["strength"] == 0.5


def test_inpaint_keeps_pixels_outside_the_mask_byte_identical(studio: Studio) -> None:
    source = Image.open(BytesIO(product_photo(1, SIZE))).convert("RGB")
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=png_bytes(source)))
    mask = studio.upload_mask(UploadedFile(name="mask.png", data=_mask(source.size, (16, 16, 48, 48))))
    gen = studio.generate(_request(mode="inpaint", init_image=photo, mask=mask, strength=1.0))
    out, original = _pixels(studio, gen), np.asarray(source)
    inside = np.zeros(original.shape[:2], dtype=bool)
    inside[16:48, 16:48] = True
    assert np.array_equal(out[~inside], original[~inside])
    assert (out[inside] != original[inside]).any(axis=-1).mean() > 0.5
    assert _same(gen, studio.rerender(gen.id))
    meta = read_png_metadata(studio.read_blob(gen.images[0].blob_sha256))
    assert COMPOSITE_WITH_TRAINED in meta["xmp"]  # an edited photo, not a wholly generated image
    params = parse_parameters(meta["parameters"])
    assert params["Mask blur"] == "0" and params["Mask hash"] == mask[:10] and params["Denoising strength"] == "1"
    # the feather the user asked for changes pixels near the mask only
    feathered = _pixels(studio, studio.generate(_request(mode="inpaint", init_image=photo, mask=mask, mask_blur=2)))
    far = np.ones(original.shape[:2], dtype=bool)
    far[8:56, 8:56] = False
    assert np.array_equal(feathered[far], original[far])
    assert not np.array_equal(feathered[~inside], original[~inside])


def test_a_batch_equals_single_runs_and_keeps_the_mask(studio: Studio) -> None:
    """Each image of a batch uses only its own seed's generator (the input is given once per image): a
    batch equals single runs within CPU batching tolerance (see test_generation_seeds), and pixels
    outside the mask are exact in every image."""
    source = Image.open(BytesIO(product_photo(1, SIZE))).convert("RGB")
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=png_bytes(source)))
    mask = studio.upload_mask(UploadedFile(name="mask.png", data=_mask(source.size, (0, 24, 64, 40))))
    fields = dict(mode="inpaint", init_image=photo, mask=mask)
    batch = studio.generate(_request(**fields, batch_size=2))
    for index, seed in enumerate((7, 8)):
        single = _pixels(studio, studio.generate(_request(**fields, seed=seed)))
        pixels = _pixels(studio, batch, index)
        assert np.abs(pixels.astype(int) - single.astype(int)).max() <= 2
        assert np.array_equal(pixels[:24], np.asarray(source)[:24]) and np.array_equal(pixels[40:], np.asarray(source)[40:])
    assert not np.array_equal(_pixels(studio, batch, 0), _pixels(studio, batch, 1))


def test_a_batch_of_four_rerenders_every_image_exactly(studio: Studio) -> None:
    """Re-render replays the recorded batches, so each image of a batch of 4 comes back bit for bit.

    Four single runs are within 2/255, not identical: on CPU, oneDNN convolutions, GroupNorm's thread
    split and the small-M GEMMs of the time embedding round differently for a batch of 8 rows (4
    images x CFG) than for 2, and the VAE for 4 rows than for 1; on a GPU cuDNN/cuBLAS do the same
    (measured on an H200, SD-1.5-sized UNet, fp16: 1/255 on ~4% of values). Only running the images
    one by one matches, which took 3.2x the time of the batch there (fp16; 1.3x in fp32)."""
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=product_photo(0, SIZE)))
    batch = studio.generate(_request(mode="img2img", init_image=photo, strength=0.75, batch_size=4))
    assert [i.seed for i in batch.images] == [7, 8, 9, 10]
    again = studio.rerender(batch.id)
    assert _same(batch, again) and len({i.pixel_sha256 for i in again.images}) == 4
    recipe = read_png_metadata(studio.read_blob(batch.images[2].blob_sha256))["recipe"]
    assert (recipe["batch_size"], recipe["seeds"]) == (4, [7, 8, 9, 10])
    single = _pixels(studio, studio.generate(_request(mode="img2img", init_image=photo, strength=0.75, seed=9)))
    assert np.abs(single.astype(int) - _pixels(studio, batch, 2).astype(int)).max() <= 2


def test_outpaint_grows_the_canvas_and_keeps_the_original(studio: Studio) -> None:
    source = Image.open(BytesIO(product_photo(2, SIZE))).convert("RGB")
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=png_bytes(source)))
    fields = dict(mode="outpaint", init_image=photo, outpaint_left=16, outpaint_top=8, outpaint_fill="color",
                  outpaint_color="#102030")  # fmt: skip
    gen = studio.generate(_request(**fields))
    out = _pixels(studio, gen)
    assert out.shape == (SIZE + 8, SIZE + 16, 3) and (gen.width, gen.height) == (SIZE + 16, SIZE + 8)
    assert np.array_equal(out[8:, 16:], np.asarray(source))
    assert (out[:8] != np.array([0x10, 0x20, 0x30])).any()  # the new strip was painted, not left as fill
    assert _same(gen, studio.rerender(gen.id)) and _same(gen, studio.generate(_request(**fields)))
    params = _params(studio, gen)
    assert params["Size"] == f"{SIZE + 16}x{SIZE + 8}" and params["Outpaint"].startswith("left 16 right 0 top 8")
    # edge stretch with an overlap repaints a band of the original too, and keeps the rest
    overlap = _pixels(studio, studio.generate(_request(**{**fields, "outpaint_fill": "edge", "outpaint_overlap": 8})))
    assert np.array_equal(overlap[16:, 32:], np.asarray(source)[8:, 16:])


def test_canny_finds_the_border_of_a_white_square_only() -> None:
    image = np.zeros((64, 64), dtype=np.uint8)
    image[16:48, 20:44] = 255
    edges = canny_edges(image) > 0
    ys, xs = np.nonzero(edges)
    # distance of every edge pixel to the square's outline (rows 16/47, columns 20/43)
    inside_y = (ys >= 16) & (ys <= 47)
    inside_x = (xs >= 20) & (xs <= 43)
    to_vertical = np.minimum(abs(xs - 20), abs(xs - 43))
    to_horizontal = np.minimum(abs(ys - 16), abs(ys - 47))
    distance = np.where(inside_y & inside_x, np.minimum(to_vertical, to_horizontal),
                        np.maximum(np.where(inside_x, 0, to_vertical), np.where(inside_y, 0, to_horizontal)))  # fmt: skip
    assert distance.max() <= 1
    for side in (edges[14:18, 24:40], edges[46:50, 24:40]):  # top and bottom: every column crossed once
        assert side.any(axis=0).all() and side.sum() == 16
    for side in (edges[20:44, 18:22], edges[20:44, 42:46]):  # left and right: every row once
        assert side.any(axis=1).all() and side.sum() == 24
    assert not canny_edges(np.full((32, 32), 128, dtype=np.uint8)).any()  # a flat image has no edges
    assert np.array_equal(canny_edges(image), canny_edges(image))


def test_controlnet_conditioning_changes_pixels_and_scale_zero_is_txt2img(
    studio: Studio, controlnet_dir: Path, tmp_path: Path
) -> None:
    control = studio.upload_input_image(UploadedFile(name="square.png", data=png_bytes(_square())))
    # a weighted prompt goes through the same A1111-style encoding in both paths
    fields = dict(mode="controlnet", control_image=control, controlnet=str(controlnet_dir),
                  prompt="a (bottle:1.3) on a table")  # fmt: skip
    plain = studio.generate(_request(prompt=fields["prompt"]))
    zero = studio.generate(_request(**fields, controlnet_conditioning_scale=0.0))
    full = studio.generate(_request(**fields))
    assert _same(zero, plain) and not _same(full, plain)
    assert _same(full, studio.rerender(full.id))
    unit = _params(studio, full)["ControlNet 0"]
    recipe = read_png_metadata(studio.read_blob(full.images[0].blob_sha256))["recipe"]
    assert unit.startswith(f"Module: canny, Model: tiny-canny [{recipe['controlnet']['short_hash']}], Weight: 1,")
    assert "Threshold A: 100, Threshold B: 200" in unit and full.mode == "controlnet"
    assert recipe["controlnet"]["sha256"] == recipe["controlnet"]["sha256"].lower() and recipe["control_image_sha256"] == control
    # the same weights as a single .safetensors file (no config next to it) give the same pixels
    single = tmp_path / "tiny_canny.safetensors"
    shutil.copyfile(controlnet_dir / "diffusion_pytorch_model.safetensors", single)
    studio.engine().unload()  # the ControlNet is cached by content hash: make the engine load the file
    assert _same(full, studio.generate(_request(**{**fields, "controlnet": str(single)})))
    # other edges, other pixels
    other = studio.upload_input_image(UploadedFile(name="photo.png", data=product_photo(3, SIZE)))
    assert not _same(full, studio.generate(_request(**{**fields, "control_image": other})))


def _collect_garbage(studio: Studio) -> None:
    """Blob GC as documented in storage: unreferenced rows past the grace period, then files without a row."""
    with studio.db.session() as s:
        storage.BlobRepo(s).delete_unreferenced(datetime.now(UTC) + timedelta(days=1))
        keep = storage.BlobRepo(s).recorded_shas()
    studio.blobs.delete_unreferenced(keep, min_age_s=0)


def test_blob_gc_keeps_the_inputs_generations_read_and_rerender_stays_exact(
    studio: Studio, controlnet_dir: Path
) -> None:
    source = Image.open(BytesIO(product_photo(1, SIZE))).convert("RGB")
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=png_bytes(source)))
    mask = studio.upload_mask(UploadedFile(name="mask.png", data=_mask(source.size, (16, 16, 48, 48))))
    control = studio.upload_input_image(UploadedFile(name="square.png", data=png_bytes(_square())))
    unused = studio.upload_input_image(UploadedFile(name="other.png", data=product_photo(4, SIZE)))
    inpaint = studio.generate(_request(mode="inpaint", init_image=photo, mask=mask))
    edges = studio.generate(_request(mode="controlnet", control_image=control, controlnet=str(controlnet_dir)))
    with studio.db.session(write=False) as s:
        rows = [storage.GenerationRepo(s).get(g.id) for g in (inpaint, edges)]
        assert [[(i.role, i.blob_sha256) for i in r.inputs] for r in rows if r is not None] == [
            [("init_image", photo), ("mask", mask)], [("control_image", control)],
        ]  # fmt: skip
    _collect_garbage(studio)
    assert all(studio.blobs.exists(sha) for sha in (photo, mask, control))
    assert not studio.blobs.exists(unused)  # an upload no generation read is collected: GC did run
    assert _same(inpaint, studio.rerender(inpaint.id)) and _same(edges, studio.rerender(edges.id))


def test_lora_still_applies_in_img2img(trained_studio: Studio) -> None:
    lora = trained_studio.list_loras()[0]
    photo = trained_studio.upload_input_image(UploadedFile(name="photo.png", data=product_photo(0, SIZE)))
    fields = dict(mode="img2img", init_image=photo, strength=0.75, kit_id=1)
    base = trained_studio.generate(_request(**fields))
    with_lora = trained_studio.generate(_request(**fields, loras=(LoraChoice(lora_id=lora.id, weight=1.0),)))
    off = trained_studio.generate(_request(**fields, loras=(LoraChoice(lora_id=lora.id, weight=0.0),)))
    assert not _same(with_lora, base) and _same(off, base)
    assert _same(with_lora, trained_studio.rerender(with_lora.id))


def test_sdxl_img2img(make_studio: Callable[..., Studio], tmp_path: Path) -> None:
    studio = make_studio(base_model=str(write_tiny_sdxl(tmp_path / "tiny-sdxl")))
    assert studio.model_info().family == "sdxl"
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=product_photo(0, SIZE)))
    first = studio.generate(_request(mode="img2img", init_image=photo, strength=0.5, num_inference_steps=2))
    assert _same(first, studio.rerender(first.id)) and first.mode == "img2img"
    assert _pixels(studio, first).shape == (SIZE, SIZE, 3)
    assert not _same(first, studio.generate(_request(mode="img2img", init_image=photo, strength=1.0,
                                                      num_inference_steps=2)))  # fmt: skip


def test_use_as_input_keeps_the_lineage(studio: Studio) -> None:
    parent = studio.generate(_request())
    req = studio.send_to(parent.id, 0, "img2img")
    assert req.mode == "img2img" and req.seed == parent.seed and req.prompt == "a bottle on a table"
    child = studio.generate(req.model_copy(update={"strength": 0.5}))
    assert child.parent_id == parent.id and child.mode == "img2img"
    # the PNG downloaded and uploaded back is recognised too (same pixels)
    again = studio.upload_input_image(UploadedFile(name="x.png", data=studio.read_blob(parent.images[0].blob_sha256)))
    assert again == req.init_image
    with pytest.raises(InvalidInput) as info:
        studio.generate(studio.send_to(parent.id, 0, "inpaint"))
    assert info.value.field == "mask"
    with pytest.raises(NotFound) as missing:
        studio.send_to(parent.id, 5, "img2img")
    assert missing.value.field == "image_index"


def test_bad_inputs_are_refused_before_any_work(studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = studio.upload_input_image(UploadedFile(name="photo.png", data=product_photo(0, SIZE)))
    wrong_mask = studio.upload_mask(UploadedFile(name="mask.png", data=_mask((80, 80), (0, 0, 40, 40))))
    control = studio.upload_input_image(UploadedFile(name="square.png", data=png_bytes(_square())))
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(_Marker()))
    renamed = tmp_path / "evil.safetensors"
    renamed.write_bytes(evil.read_bytes())
    cases: list[tuple[type[Exception], str, Callable[[], object]]] = [
        (InvalidInput, "mask", lambda: studio.generate(_request(mode="inpaint", init_image=photo, mask=wrong_mask))),
        (InvalidInput, "strength", lambda: _request(mode="img2img", init_image=photo, strength=0)),
        (InvalidInput, "strength", lambda: _request(mode="img2img", init_image=photo, strength=1.5)),
        (InvalidInput, "strength", lambda: studio.generate(_request(mode="img2img", init_image=photo).model_copy(update={"strength": 1.5}))),
        (InvalidInput, "strength", lambda: _request(mode="img2img", init_image=photo, strength=0.1, num_inference_steps=4)),
        (NotFound, "init_image", lambda: studio.generate(_request(mode="img2img", init_image="0" * 64))),
        (InvalidInput, "init_image", lambda: _request(mode="img2img", init_image="../../etc/passwd")),
        (InvalidInput, "mask", lambda: _request(mode="img2img", init_image=photo, mask=wrong_mask)),
        (InvalidInput, "control_image", lambda: studio.generate(_request(mode="controlnet", controlnet="x/y"))),
        (ModelError, "controlnet", lambda: studio.generate(_request(mode="controlnet", control_image=control, controlnet=str(evil)))),
        (ModelError, "controlnet", lambda: studio.generate(_request(mode="controlnet", control_image=control, controlnet=str(renamed)))),
        (ModelError, "controlnet", lambda: studio.generate(_request(mode="controlnet", control_image=control, controlnet="lllyasviel/sd-controlnet-canny"))),
        (InvalidInput, "outpaint_left", lambda: _request(mode="outpaint", init_image=photo, outpaint_left=12)),
        (InvalidInput, "outpaint_right", lambda: _request(mode="outpaint", init_image=photo, width=2048, outpaint_right=8)),
        (InvalidInput, "outpaint_left", lambda: studio.generate(_request(mode="outpaint", init_image=photo))),
        (InvalidInput, "init_image", lambda: studio.upload_input_image(UploadedFile(name="x.png", data=b"not an image"))),
    ]  # fmt: skip
    for error, field, call in cases:
        with pytest.raises(error) as info:
            call()
        assert info.value.field == field, (field, info.value)  # type: ignore[attr-defined]
    assert not (tmp_path / "pwned_marker").exists()  # the pickle was never loaded
    assert studio._engine is None  # no pipeline was ever loaded
    assert studio.list_generations() == []


class _Marker:
    """Unpickling this would create ``pwned_marker`` in the working directory."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("touch pwned_marker",))


def test_controlnet_files_that_do_not_fit_are_refused(controlnet_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file, save_file

    from studio.builtin_model import UNET_CONFIG
    from studio.generation.controlnet import load_controlnet

    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir / "unet", use_safetensors=True)
    single = tmp_path / "canny.safetensors"
    shutil.copyfile(controlnet_dir / "diffusion_pytorch_model.safetensors", single)
    assert load_controlnet(single, unet).config.cross_attention_dim == unet.config.cross_attention_dim
    other_base = UNet2DConditionModel(**{**UNET_CONFIG, "cross_attention_dim": 48})  # type: ignore[arg-type]
    for path in (single, controlnet_dir):
        with pytest.raises(ValueError, match="base model"):
            load_controlnet(path, other_base)
    state = load_file(str(single))
    state["controlnet_mid_block.weight"][0, 0, 0, 0] = torch.nan
    broken = tmp_path / "nan.safetensors"
    save_file(state, str(broken))
    with pytest.raises(ValueError, match="invalid values"):
        load_controlnet(broken, unet)


def test_cli_inpaints_with_a_mask_file(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from studio.cli import app
    from tests.fixtures import seed_data_dir

    monkeypatch.setenv("BRAND_STUDIO_DATA_DIR", str(seed_data_dir(tmp_path / "data", tiny_model_dir)))
    source = Image.open(BytesIO(product_photo(1, SIZE))).convert("RGB")
    (tmp_path / "photo.png").write_bytes(png_bytes(source))
    (tmp_path / "mask.png").write_bytes(_mask(source.size, (0, 0, 32, 64)))
    args = ["generate", "a bottle", "--init-image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
            "--steps", "2", "--seed", "3", "--out", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (png,) = sorted((tmp_path / "out").glob("*.png"))
    assert read_png_metadata(png.read_bytes())["recipe"]["mode"] == "inpaint"
    with Image.open(png) as image:
        assert np.array_equal(np.asarray(image.convert("RGB"))[:, 32:], np.asarray(source)[:, 32:])
    refused = CliRunner().invoke(app, [*args[:6], "--strength", "1.5"])
    assert refused.exit_code == 2 and "strength" in refused.output
