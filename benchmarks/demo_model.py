"""What the built-in demo model (``builtin:demo``) can do, measured through the studio's own API.

``python -m benchmarks demo_quality`` prints the numbers the README quotes; ``tests/studio/
test_demo_model.py`` asserts the issue's thresholds with the same functions:

- **prompt following**: for each of :data:`PROMPTS` (every named colour once, with an object), the
  share of 20 seeds whose image's dominant non-background colour
  (:func:`training.demo_data.classify_colour`) is the colour the prompt names;
- **training works**: a kit of photos of a two-colour product (teal over pink, on beige: colours the
  base model never draws) trained with the one-click preset; "a photo of <trigger> <class>" at fixed
  seeds is compared with the base model by **palette distance** (mean over pixels of the RGB distance
  to the nearest kit colour; lower = closer to the kit); LoRA weight 0 gives the base pixels back;
- **editing works**: inpainting the object's box with another colour's prompt turns that box to the
  colour and leaves every other pixel identical; outpainting extends the background.

No timings are asserted anywhere; the training time is reported.
"""

from __future__ import annotations

import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from training.demo_data import COLOURS, OBJECTS, classify_colour, colour_votes, draw, nearest_colour

if TYPE_CHECKING:
    from studio.api import Studio
    from studio.schemas import GenerationView

#: One prompt per named colour, objects in turn.
PROMPTS = tuple(f"a {colour} {OBJECTS[i % len(OBJECTS)]}" for i, colour in enumerate(COLOURS))
SEEDS = 20
#: Classifier-free guidance for the demo model's measurements: its ``default_guidance``, where the
#: Generate form starts (prompt following is also reported at the studio's usual 7).
GUIDANCE = 2.0
#: The kit's product: a bottle, teal above pink, photographed on beige. None is a named colour.
KIT_COLOURS = {"teal": (0, 150, 150), "pink": (235, 95, 165), "beige": (215, 195, 150)}
TRIGGER, CLASS_NOUN = "tealpink", "bottle"
KIT_PROMPT = f"a photo of {TRIGGER} {CLASS_NOUN}"
KIT_SEEDS = 8


def _pixels(studio: Studio, blob: str) -> np.ndarray:
    with Image.open(BytesIO(studio.read_blob(blob))) as image:
        return np.asarray(image.convert("RGB"))


def images(studio: Studio, gen: GenerationView) -> list[np.ndarray]:
    return [_pixels(studio, img.blob_sha256) for img in gen.images]


def txt2img(studio: Studio, prompt: str, seed: int, count: int, **fields: Any) -> GenerationView:
    """``count`` images at seeds ``seed``.. (A1111 batch rule: image i has seed + i), at the model's size."""
    from studio.schemas import GenerateRequest

    batch = next(b for b in (4, 2, 1) if count % b == 0)
    fields.setdefault("guidance_scale", GUIDANCE)
    return studio.generate(GenerateRequest.of(
        prompt=prompt, seed=seed, batch_size=batch, batch_count=count // batch, **fields,
    ))  # fmt: skip


def prompt_following(studio: Studio, seeds: int = SEEDS, guidance: float = GUIDANCE) -> dict[str, float]:
    """Prompt -> share of ``seeds`` seeds whose dominant colour is the prompt's colour."""
    out = {}
    for prompt in PROMPTS:
        colour = prompt.split()[1]
        gen = txt2img(studio, prompt, 0, seeds, guidance_scale=guidance)
        got = [classify_colour(Image.fromarray(px)) for px in images(studio, gen)]
        out[prompt] = sum(g == colour for g in got) / seeds
    return out


# -- training ------------------------------------------------------------------------------------


def kit_photo(index: int, size: int = 128) -> bytes:
    """Photo ``index`` of the two-colour product: position, size and framing vary per photo."""
    rng = np.random.default_rng(1000 + index)
    side = int(rng.integers(size * 5 // 10, size * 8 // 10))
    left, top = (int(v) for v in rng.integers(0, size - side + 1, 2))
    teal, pink, beige = KIT_COLOURS.values()
    image = Image.new("RGB", (size, size), beige)
    bottle = draw("white", "bottle", "black", (left, top, left + side, top + side), size).image
    shape = np.asarray(bottle.convert("L")) > 128
    pixels = np.asarray(image).copy()
    upper = np.zeros_like(shape)
    upper[: top + int(side * 0.55)] = True
    pixels[shape & upper] = teal
    pixels[shape & ~upper] = pink
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def palette_distance(pixels: np.ndarray, palette: dict[str, tuple[int, int, int]] = KIT_COLOURS) -> float:
    """Mean over pixels of the RGB distance to the nearest palette colour."""
    table = np.array(list(palette.values()), dtype=np.float64)
    flat = pixels.reshape(-1, 3).astype(np.float64)
    return float(np.sqrt(((flat[:, None, :] - table[None]) ** 2).sum(-1)).min(axis=1).mean())


def create_kit(studio: Studio, photos: int = 8) -> int:
    from studio.schemas import KitCreateRequest, UploadedFile

    kit = studio.create_kit(
        KitCreateRequest.of(name="Tealpink Bottle", trigger_token=TRIGGER, class_noun=CLASS_NOUN),
        [UploadedFile(name=f"tealpink_{i}.png", data=kit_photo(i)) for i in range(photos)],
    )
    return kit.id


def train(studio: Studio, kit_id: int) -> tuple[int, float, int]:
    """One-click training (the preset for the base model); returns (LoRA id, seconds, steps)."""
    from studio.schemas import TrainRequest

    start = time.perf_counter()
    run = studio.train_lora(TrainRequest.of(kit_id=kit_id))
    seconds = time.perf_counter() - start
    if run.lora is None:
        raise RuntimeError(f"training gave no LoRA: {run.status} {run.error}")
    return run.lora.id, seconds, run.steps


def lora_effect(studio: Studio, lora_id: int, seeds: int = KIT_SEEDS) -> dict[str, Any]:
    """Palette distance of base vs LoRA images at the same seeds; whether weight 0 is the base."""
    from studio.schemas import LoraChoice

    base = txt2img(studio, KIT_PROMPT, 0, seeds)
    tuned = txt2img(studio, KIT_PROMPT, 0, seeds, loras=(LoraChoice(lora_id=lora_id, weight=1.0),))
    zero = txt2img(studio, KIT_PROMPT, 0, seeds, loras=(LoraChoice(lora_id=lora_id, weight=0.0),))
    base_d = [palette_distance(px) for px in images(studio, base)]
    tuned_d = [palette_distance(px) for px in images(studio, tuned)]
    return {
        "base_distance": float(np.mean(base_d)), "lora_distance": float(np.mean(tuned_d)),
        "ratio": float(np.mean(tuned_d) / np.mean(base_d)),
        "weight0_is_base": [i.pixel_sha256 for i in zero.images] == [i.pixel_sha256 for i in base.images],
        "generations": (base.id, tuned.id, zero.id),
    }  # fmt: skip


# -- editing -------------------------------------------------------------------------------------


def _mask_png(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    buffer = BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def object_box(pixels: np.ndarray, colour: str) -> tuple[int, int, int, int] | None:
    """Bounding box of the pixels nearest to ``colour`` (None if there are too few)."""
    ys, xs = np.nonzero(colour_votes(pixels) == list(COLOURS).index(colour))
    if len(xs) < 30:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def inpaint_recolour(studio: Studio, seed: int, source_colour: str = "blue", target: str = "red",
                     obj: str = "square", background: str = "white") -> dict[str, Any]:  # fmt: skip
    """Draw "a <source> <obj> on a <background> background", mask the object's box (grown by 4 px),
    inpaint with the target colour's prompt; report the box's colour after and whether the outside
    pixels are unchanged."""
    from studio.schemas import GenerateRequest, UploadedFile

    base = txt2img(studio, f"a {source_colour} {obj} on a {background} background", seed, 1)
    source = images(studio, base)[0]
    box = object_box(source, source_colour)
    if box is None:
        return {"seed": seed, "skipped": f"no {source_colour} object drawn"}
    h, w = source.shape[:2]
    box = (max(0, box[0] - 4), max(0, box[1] - 4), min(w, box[2] + 4), min(h, box[3] + 4))
    photo = studio.upload_input_image(UploadedFile(name="base.png", data=studio.read_blob(base.images[0].blob_sha256)))
    mask = studio.upload_mask(UploadedFile(name="mask.png", data=_mask_png((w, h), box)))
    gen = studio.generate(GenerateRequest.of(
        prompt=f"a {target} {obj} on a {background} background", mode="inpaint", init_image=photo, mask=mask,
        strength=1.0, seed=seed, guidance_scale=GUIDANCE,
    ))  # fmt: skip
    out = images(studio, gen)[0]
    inside = np.zeros((h, w), dtype=bool)
    inside[box[1] : box[3], box[0] : box[2]] = True
    region = Image.fromarray(out[box[1] : box[3], box[0] : box[2]])
    return {
        "seed": seed, "box": box, "region_colour": classify_colour(region, background=background),
        "outside_identical": bool(np.array_equal(out[~inside], source[~inside])), "generation": gen.id,
    }  # fmt: skip


def outpaint_extend(studio: Studio, seed: int, colour: str = "red", obj: str = "circle",
                    background: str = "blue", right: int = 32) -> dict[str, Any]:  # fmt: skip
    """Outpaint ``right`` px to the right of "a <colour> <obj> on a <background> background": the
    original stays, and the new strip's most common named colour is the background's."""
    from studio.schemas import GenerateRequest, UploadedFile

    base = txt2img(studio, f"a {colour} {obj} on a {background} background", seed, 1)
    source = images(studio, base)[0]
    photo = studio.upload_input_image(UploadedFile(name="base.png", data=studio.read_blob(base.images[0].blob_sha256)))
    gen = studio.generate(GenerateRequest.of(
        prompt=f"a {colour} {obj} on a {background} background", mode="outpaint", init_image=photo,
        outpaint_right=right, outpaint_fill="edge", seed=seed, guidance_scale=GUIDANCE,
    ))  # fmt: skip
    out = images(studio, gen)[0]
    h, w = source.shape[:2]
    strip = out[:, w:].reshape(-1, 3)
    names = [nearest_colour(px) for px in strip[:: max(1, len(strip) // 512)]]
    strip_colour = max(set(names), key=names.count)
    return {
        "seed": seed, "size": (out.shape[1], out.shape[0]), "original_kept": bool(np.array_equal(out[:, :w], source)),
        "strip_colour": strip_colour, "background": nearest_colour(np.median(source[[0, -1]].reshape(-1, 3), axis=0)),
        "generation": gen.id,
    }  # fmt: skip


# -- the benchmark -------------------------------------------------------------------------------


def run(runs: int = 1) -> dict[str, Any]:
    """Every measurement on a fresh data dir with ``builtin:demo``."""
    from studio.api import open_studio
    from studio.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        studio = open_studio(Settings(data_dir=Path(tmp) / "data", base_model="builtin:demo"))
        try:
            following = prompt_following(studio)
            following_default = prompt_following(studio, guidance=7.0)
            kit_id = create_kit(studio)
            lora_id, seconds, steps = train(studio, kit_id)
            effect = lora_effect(studio, lora_id)
            inpaints = [inpaint_recolour(studio, seed) for seed in range(10)]
            outpaints = [outpaint_extend(studio, seed) for seed in range(10)]
        finally:
            studio.close()
    done = [r for r in inpaints if "skipped" not in r]
    return {
        "prompt_following": following, "prompt_following_min": min(following.values()),
        "prompt_following_mean": round(sum(following.values()) / len(following), 3),
        "prompt_following_cfg7_mean": round(sum(following_default.values()) / len(following_default), 3),
        "train_seconds": round(seconds, 1), "train_steps": steps,
        "palette_distance_base": round(effect["base_distance"], 1),
        "palette_distance_lora": round(effect["lora_distance"], 1), "palette_ratio": round(effect["ratio"], 3),
        "weight0_is_base": effect["weight0_is_base"],
        "inpaint_recoloured": f"{sum(r['region_colour'] == 'red' for r in done)}/{len(done)}",
        "inpaint_outside_identical": all(r["outside_identical"] for r in done),
        "outpaint_background_kept": f"{sum(r['strip_colour'] == r['background'] for r in outpaints)}/{len(outpaints)}",
        "outpaint_original_kept": all(r["original_kept"] for r in outpaints),
    }  # fmt: skip
