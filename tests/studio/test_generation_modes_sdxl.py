"""The image modes on the tiny SDXL pipeline, through the studio and its engine: inpaint keeps the pixels
outside the mask, img2img reads weighted and long prompts (with SDXL's pooled embeddings), and a tiny
SDXL ControlNet (``ControlNetModel.from_unet`` of the tiny SDXL UNet) conditions the image; each
re-renders byte-identically."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.api import Studio
from studio.generation.imagefile import read_png_metadata
from studio.schemas import GenerateRequest, GenerationView, UploadedFile
from tests.controlnet_model import write_tiny_controlnet
from tests.fixtures import png_bytes, product_photo
from tests.sdxl_model import write_tiny_sdxl

SIZE = 64
LONG = "studio photo of a bottle on a table, " * 3  # byte-level tiny tokenizer: well over 75 tokens


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture
def xl(make_studio: Callable[..., Studio], sdxl_dir: Path) -> Studio:
    studio = make_studio(base_model=str(sdxl_dir))
    assert studio.model_info().family == "sdxl"
    return studio


def _request(**fields: object) -> GenerateRequest:
    base: dict[str, object] = dict(prompt="a bottle on a table", seed=7, num_inference_steps=3, width=SIZE,
                                   height=SIZE, scheduler="Euler")  # fmt: skip
    base.update(fields)
    return GenerateRequest.of(**base)



def _pixels(studio: Studio, gen: GenerationView) -> np.ndarray:
    with Image.open(BytesIO(studio.read_blob(gen.images[0].blob_sha256))) as image:
        return np.asarray(image.convert("RGB"))


def _same(a: GenerationView, b: GenerationView) -> bool:
    return [i.pixel_sha256 for i in a.images] == [i.pixel_sha256 for i in b.images]


def test_sdxl_inpaint_keeps_pixels_outside_the_mask_byte_identical(xl: Studio) -> None:
    source = Image.open(BytesIO(product_photo(1, SIZE))).convert("RGB")
    photo = xl.upload_input_image(UploadedFile(name="photo.png", data=png_bytes(source)))
    mask_image = Image.new("L", source.size, 0)
    mask_image.paste(255, (16, 16, 48, 48))
    mask = xl.upload_mask(UploadedFile(name="mask.png", data=png_bytes(mask_image)))
    gen = xl.generate(_request(mode="inpaint", init_image=photo, mask=mask, strength=1.0))
    out, original = _pixels(xl, gen), np.asarray(source)
    inside = np.zeros(original.shape[:2], dtype=bool)
    inside[16:48, 16:48] = True
    assert np.array_equal(out[~inside], original[~inside])
    assert (out[inside] != original[inside]).any(axis=-1).mean() > 0.5
    assert _same(gen, xl.rerender(gen.id)) and gen.mode == "inpaint"
    recipe = read_png_metadata(xl.read_blob(gen.images[0].blob_sha256))["recipe"]
    assert recipe["model"]["family"] == "sdxl" and recipe["mask_sha256"] == mask


def test_sdxl_img2img_reads_weighted_and_long_prompts(xl: Studio) -> None:
    photo = xl.upload_input_image(UploadedFile(name="photo.png", data=product_photo(0, SIZE)))
    fields = dict(mode="img2img", init_image=photo, strength=0.75)
    plain = xl.generate(_request(**fields, prompt="a red bottle"))
    one = xl.generate(_request(**fields, prompt="a (red:1) bottle"))
    weighted = xl.generate(_request(**fields, prompt="a (red:1.6) bottle"))
    assert _same(plain, one) and not _same(plain, weighted)
    assert _same(weighted, xl.rerender(weighted.id))
    red = xl.generate(_request(**fields, prompt=LONG + "red label"))
    blue = xl.generate(_request(**fields, prompt=LONG + "blue label"))
    assert not _same(red, blue)  # the tail after token 75 counts on both text encoders
    assert any("chunks of 75" in w for w in red.warnings) and _same(red, xl.rerender(red.id))


def test_sdxl_controlnet_conditions_and_scale_zero_is_txt2img(xl: Studio, sdxl_dir: Path, tmp_path: Path) -> None:
    controlnet = write_tiny_controlnet(tmp_path / "tiny-sdxl-canny", sdxl_dir)
    square = Image.new("RGB", (SIZE, SIZE), (0, 0, 0))
    square.paste((255, 255, 255), (16, 16, 48, 48))
    control = xl.upload_input_image(UploadedFile(name="square.png", data=png_bytes(square)))
    fields = dict(mode="controlnet", control_image=control, controlnet=str(controlnet), prompt="a (bottle:1.3)")
    plain = xl.generate(_request(prompt=fields["prompt"]))
    zero = xl.generate(_request(**fields, controlnet_conditioning_scale=0.0))
    full = xl.generate(_request(**fields))
    assert _same(zero, plain) and not _same(full, plain)
    assert _same(full, xl.rerender(full.id)) and full.mode == "controlnet"
    other = xl.upload_input_image(UploadedFile(name="photo.png", data=product_photo(3, SIZE)))
    assert not _same(full, xl.generate(_request(**{**fields, "control_image": other})))
