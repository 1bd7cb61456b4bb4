"""Prompt weighting ``(word:1.2)`` and > 75-token prompts in the image modes, as in text-to-image.

The modes encode prompts with the same A1111 method as txt2img (studio.generation.prompt_encode):
weights change pixels, ``(word:1)`` is byte-identical to the plain prompt (plain prompts still go to
the pipeline as strings), a long prompt's tail is read (not cut) and the user is told how it was split.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.controlnet_model import write_tiny_controlnet
from tests.fixtures import product_photo

SIZE = 64
LONG = "studio photo of a bottle on a table, " * 3  # byte-level tiny tokenizer: well over 75 tokens


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from studio.generation.engine import Engine

    eng = Engine(device="cpu", dtype="float32")
    yield eng
    eng.unload()


@pytest.fixture(scope="module")
def controlnet_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return write_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "tiny-canny", tiny_model_dir)


def _photo() -> Image.Image:
    return Image.open(BytesIO(product_photo(1, SIZE))).convert("RGB")


def _mode_fields(mode: str, controlnet_dir: Path) -> dict[str, Any]:
    from studio.generation.modes import ControlNetSpec, OutpaintSpec

    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 16, 48, 48))
    square = Image.new("RGB", (SIZE, SIZE), (0, 0, 0))
    square.paste((255, 255, 255), (16, 16, 48, 48))
    return {
        "img2img": dict(mode="img2img", init_image=_photo(), strength=0.75),
        "inpaint": dict(mode="inpaint", init_image=_photo(), mask=mask, strength=1.0),
        "outpaint": dict(mode="outpaint", init_image=_photo(), outpaint=OutpaintSpec(right=16, fill="edge")),
        "controlnet": dict(mode="controlnet", control_image=square,
                           controlnet=ControlNetSpec(key="tiny-canny", path=controlnet_dir)),  # fmt: skip
    }[mode]


def _job(model: Path, prompt: str, negative: str = "", **kw: Any) -> Any:
    from studio.generation.engine import GenerationJob

    fields: dict[str, Any] = dict(model_path=model, prompt=prompt, negative_prompt=negative, scheduler="Euler",
                                  num_inference_steps=4, guidance_scale=7.0, width=SIZE, height=SIZE, seeds=(11,))  # fmt: skip
    fields.update(kw)
    return GenerationJob(**fields)


def _hashes(engine: Any, job: Any) -> list[str]:
    return [img.pixel_sha256 for img in engine.generate(job).images]


def test_weights_change_img2img_pixels_and_weight_one_is_the_plain_prompt(engine: Any, tiny_model_dir: Path) -> None:
    fields = _mode_fields("img2img", Path())
    plain = _hashes(engine, _job(tiny_model_dir, "a red bottle", **fields))
    one = _hashes(engine, _job(tiny_model_dir, "a (red:1) bottle", **fields))
    up = _hashes(engine, _job(tiny_model_dir, "a (red:1.6) bottle", **fields))
    negative = _hashes(engine, _job(tiny_model_dir, "a red bottle", "(blurry:1.5)", **fields))
    assert one == plain  # the embeddings path encodes exactly as diffusers: same pixels
    assert len({plain[0], up[0], negative[0]}) == 3


@pytest.mark.parametrize("mode", ["img2img", "inpaint", "outpaint", "controlnet"])
def test_long_prompts_are_read_to_the_end_and_reported_in_every_mode(
    engine: Any, tiny_model_dir: Path, controlnet_dir: Path, mode: str
) -> None:
    fields = _mode_fields(mode, controlnet_dir)
    red = engine.generate(_job(tiny_model_dir, LONG + "red label", **fields))
    blue = engine.generate(_job(tiny_model_dir, LONG + "blue label", **fields))
    assert red.images[0].pixel_sha256 != blue.images[0].pixel_sha256  # the tail after token 75 counts
    assert any(w.startswith("prompt is ") and "chunks of 75" in w and "no token is cut" in w for w in red.warnings)
    assert not any("negative prompt" in w for w in red.warnings)  # the short negative fits one chunk
    short = engine.generate(_job(tiny_model_dir, "a red bottle", **fields))
    assert short.warnings == []
    if mode == "inpaint":  # the embeddings path keeps the pixels outside the mask exact too
        out, original = np.asarray(red.images[0].image), np.asarray(_photo())
        assert np.array_equal(out[:16], original[:16]) and np.array_equal(out[48:], original[48:])


def test_a_weighted_batch_reproduces_and_each_image_uses_its_own_seed(engine: Any, tiny_model_dir: Path) -> None:
    fields = _mode_fields("img2img", Path())
    job = _job(tiny_model_dir, "a (red:1.4) bottle", seeds=(11, 12), **fields)
    first, again = _hashes(engine, job), _hashes(engine, job)
    assert first == again and first[0] != first[1]
