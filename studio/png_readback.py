"""Read a generation request back from a PNG: ours (the ``brand_studio`` JSON recipe) or AUTOMATIC1111's
(the ``parameters`` text, docs formats.md §1), and report what could not be carried over.

Every value in the file is untrusted. The PNG is read by :mod:`studio.generation.pngtext` under the
brand-kit upload limits (bytes, pixels) plus text limits, without decoding pixels. Sampler names are
only looked up in the scheduler allow-list. ``<lora:name:w>`` tags are matched by name, or through
"Lora hashes", against LoRAs registered in the database only: never opened as paths (bad inputs C.23).
Finally the request is validated field by field: a value the studio refuses (Steps: 1000) is left out
and reported, never clamped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import brand_kits
from studio import errors
from studio.generation.infotext import parse_parameters
from studio.generation.pngtext import PngTextError, PngTextLimits, PngTooManyPixels, read_png_text
from studio.generation.schedulers import SCHEDULERS
from studio.generation_seeds import seed_replay_fields
from studio.history_schemas import PngReadResult
from studio.mode_fields import mode_request_fields
from studio.schemas import GenerateRequest, LoraChoice, LoraView

if TYPE_CHECKING:
    from studio.api import Studio

RECIPE_KEY = "brand_studio"
NETWORK_TAG = re.compile(r"<(lora|lyco|hypernet):([^<>\n]{1,300})>")
#: A1111 (sampler, schedule type) -> our scheduler name, from the allow-list (data, not an if-chain)
A1111_SAMPLERS: dict[tuple[str, str], str] = {(s.a1111_sampler, s.a1111_schedule): n for n, s in SCHEDULERS.items()}
#: A1111 keys that are read (or only informational) and never reported as unmapped
A1111_INFO_KEYS = frozenset({"Version", "User", "Model", "Lora hashes", "Final size"})
#: A1111 number keys -> (our request field, parser)
A1111_NUMBERS = (("Steps", "num_inference_steps", int), ("CFG scale", "guidance_scale", float), ("Seed", "seed", int),
                 ("Variation seed", "subseed", int), ("Variation seed strength", "subseed_strength", float))  # fmt: skip
#: our request field -> the A1111 key it came from (for messages)
A1111_FIELDS = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "num_inference_steps": "Steps",
                "scheduler": "Sampler", "guidance_scale": "CFG scale", "seed": "Seed", "width": "Size",
                "height": "Size", "subseed": "Variation seed", "subseed_strength": "Variation seed strength",
                "seed_resize_from_w": "Seed resize from", "seed_resize_from_h": "Seed resize from",
                "format": "Ad format"}  # fmt: skip


@dataclass
class _Reading:
    """What has been read so far: request fields, and what was left out and why."""

    source: str
    data: dict[str, Any] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, name: str, why: str) -> None:
        if name not in self.unmapped:
            self.unmapped.append(name)
        self.notes.append(f"{name}: {why}")


def request_from_png(studio: Studio, data: bytes) -> PngReadResult:
    """1) read the text chunks safely, 2) map our recipe or A1111's parameters, 3) validate."""
    text = _read_text(studio, data)
    reading = _from_recipe(studio, text) if RECIPE_KEY in text else None
    if reading is None:
        if "parameters" not in text:
            raise errors.InvalidInput("this PNG has no generation parameters (no 'parameters' or "
                                      f"'{RECIPE_KEY}' text); it was not made by Brand Studio or AUTOMATIC1111", field="png")  # fmt: skip
        reading = _from_a1111(studio, text["parameters"])
    result = _build(reading)
    limit = studio.settings.max_prompt_chars
    for name, value in (("prompt", result.request.prompt), ("negative_prompt", result.request.negative_prompt)):
        if len(value) > limit:
            raise errors.InvalidInput(f"the PNG's {name} is {len(value)} characters; the limit is {limit}", field=name)
    return result


def _read_text(studio: Studio, data: bytes) -> dict[str, str]:
    upload = brand_kits.IngestLimits(max_bytes=studio.settings.max_upload_mb * 1024 * 1024)
    limits = PngTextLimits(max_bytes=upload.max_bytes, max_pixels=upload.max_pixels)
    if len(data) > limits.max_bytes:
        raise brand_kits.ImageTooLarge.for_bytes(limits.max_bytes, len(data))
    try:
        return read_png_text(bytes(data), limits).text
    except PngTooManyPixels as exc:
        raise brand_kits.ImageTooLarge.for_pixels(exc.max_pixels, exc.width, exc.height) from None
    except PngTextError as exc:
        raise errors.InvalidInput(f"cannot read parameters from this file: {exc}", field="png") from None


# ----- our recipe -------------------------------------------------------------------------------
def _from_recipe(studio: Studio, text: dict[str, str]) -> _Reading | None:
    """The request of this image from our JSON recipe; None (with A1111 text to fall back on) if the
    recipe is unreadable."""
    try:
        recipe = json.loads(text[RECIPE_KEY])
    except (ValueError, RecursionError):
        recipe = None
    if not isinstance(recipe, dict):
        if "parameters" in text:
            return None
        raise errors.InvalidInput(f"the PNG's {RECIPE_KEY} recipe is not valid JSON", field="png")
    r = _Reading("brand_studio")
    keys = ("scheduler", "num_inference_steps", "guidance_scale", "width", "height", "seed", "batch_size")
    r.data.update({k: recipe[k] for k in keys if k in recipe})
    r.data["prompt"], r.data["negative_prompt"] = recipe.get("user_prompt"), recipe.get("user_negative_prompt", "")
    _recipe_kit(studio, recipe, r)
    _recipe_loras(studio, recipe.get("loras"), r)
    model = recipe.get("model")
    _check_model(studio, model.get("sha256") if isinstance(model, dict) else None, "model", r)
    _recipe_replay(studio, recipe, r)
    _recipe_batch(recipe, parse_parameters(text.get("parameters", "")).get("Seed"), r)
    return r


def _recipe_kit(studio: Studio, recipe: dict[str, Any], r: _Reading) -> None:
    """Keep the kit if it exists here; else use the final prompt the kit had composed."""
    kit_id = recipe.get("kit_id")
    if kit_id is None:
        return
    try:
        studio.get_kit(int(kit_id))
        r.data["kit_id"] = int(kit_id)
    except (errors.StudioError, TypeError, ValueError):
        r.data["prompt"], r.data["negative_prompt"] = recipe.get("prompt"), recipe.get("negative_prompt", "")
        r.skip("kit_id", f"brand kit {str(kit_id)[:20]} is not in this studio; using the final prompt it composed")


def _recipe_replay(studio: Studio, recipe: dict[str, Any], r: _Reading) -> None:
    """The seed controls, batches, format and mode inputs, as a re-render reads them. Input images are
    kept only when this studio has them; a ControlNet reference from a file is never followed."""
    for name, replay in (("seed controls", seed_replay_fields), ("mode", mode_request_fields)):
        try:
            r.data.update(replay(recipe))
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            r.skip(name, "the recipe's fields for it are incomplete or damaged")
    for name in ("init_image", "mask", "control_image"):
        sha = r.data.get(name)
        if sha is not None and not (isinstance(sha, str) and _is_stored(studio, sha)):
            r.skip(name, "this input image is not stored in this studio; upload it and set it again")
            r.data.pop(name)
    if r.data.pop("controlnet", None) is not None:
        r.skip("controlnet", "choose the ControlNet model again (model references in files are not followed)")


def _is_stored(studio: Studio, sha256: str) -> bool:
    try:
        return studio.blobs.path_for(sha256).is_file()
    except ValueError:  # not a blob id
        return False


def _recipe_batch(recipe: dict[str, Any], image_seed: str | None, r: _Reading) -> None:
    """The request renders the whole press (a batch and single images differ by float rounding on CPU,
    so only the recorded batches reproduce this image exactly); say which image the PNG is."""
    seeds = recipe.get("seeds")
    if isinstance(seeds, list) and len(seeds) > 1 and image_seed is not None and image_seed.isdigit():
        position = seeds.index(int(image_seed)) + 1 if int(image_seed) in seeds else "?"
        r.notes.append(f"this PNG is image {position} of {len(seeds)} (seed {image_seed}); the request renders "
                       "all of them, as the original press did, so this one comes out identical")  # fmt: skip


def _recipe_loras(studio: Studio, loras: Any, r: _Reading) -> None:
    if not loras:
        return
    registered = studio.list_loras()
    by_id, by_sha = {x.id: x for x in registered}, {x.sha256: x for x in registered}
    choices: list[LoraChoice] = []
    for item in loras if isinstance(loras, list) else [loras]:
        item = item if isinstance(item, dict) else {}
        label = str(item.get("name", "?"))[:100]
        found = by_id.get(item.get("id")) if isinstance(item.get("id"), int) else None  # type: ignore[arg-type]
        if found is None or found.sha256 != item.get("sha256"):
            found = by_sha.get(item.get("sha256"))  # type: ignore[arg-type]
        weight = _weight(item.get("weight"))
        if found is None or weight is None:
            r.skip(f"LoRA {label}", "not registered in this studio (matched by id and file hash)" if found is None
                   else "its weight is not a number between -4 and 4")  # fmt: skip
        elif found.id not in {c.lora_id for c in choices}:
            choices.append(LoraChoice(lora_id=found.id, weight=weight))
    r.data["loras"] = tuple(choices)


# ----- AUTOMATIC1111 ----------------------------------------------------------------------------
def _from_a1111(studio: Studio, text: str) -> _Reading:
    params = parse_parameters(text)
    r = _Reading("a1111")
    prompt, tags = _strip_network_tags(params.pop("Prompt"))
    r.data["prompt"], r.data["negative_prompt"] = prompt, params.pop("Negative prompt")
    _a1111_loras(studio, tags, _lora_hashes(params.get("Lora hashes", "")), r)
    _a1111_scheduler(params.pop("Sampler", None), params.pop("Schedule type", None), r)
    for key, name, parse in A1111_NUMBERS:
        if key not in params:
            continue
        value = (_int if parse is int else _float)(params.pop(key))
        if value is None:
            r.skip(key, "not a number")
        else:
            r.data[name] = value
    for key, names in (("Size", ("width", "height")), ("Seed resize from", ("seed_resize_from_w", "seed_resize_from_h"))):
        if key in params:
            width, height = _int(params.pop(f"{key}-1", "")), _int(params.pop(f"{key}-2", ""))
            params.pop(key)
            if width is None or height is None:
                r.skip(key, "not WIDTHxHEIGHT")
            else:
                r.data.update(zip(names, (width, height), strict=True))
    if "Ad format" in params:
        r.data["format"] = params.pop("Ad format")
    _check_model(studio, params.pop("Model hash", None), "Model hash", r)
    rng = params.pop("RNG", None)
    if rng != "CPU" and "seed" in r.data:  # the noise of a seed depends on where it was drawn
        r.skip("RNG", f"made with {rng or 'GPU (the A1111 default)'} noise; Brand Studio draws CPU noise, so the "
               "same seed gives a different image")  # fmt: skip
    if params.pop("Clip skip", "1") != "1":
        r.skip("Clip skip", "not supported (Brand Studio uses the last text-encoder layer)")
    for key in params:
        derived = key[-2:] in ("-1", "-2") and key[:-2] in params
        if key not in A1111_INFO_KEYS and not derived:
            r.skip(key[:60], "not supported")
    return r


def _strip_network_tags(prompt: str) -> tuple[str, list[tuple[str, str]]]:
    """The prompt without ``<lora:...>``-style tags (extra-network syntax, not words), and the tags."""
    tags = [(m.group(1), m.group(2)) for m in NETWORK_TAG.finditer(prompt)]
    cleaned = re.sub(r"[ \t]*,(?:[ \t]*,)+", ",", NETWORK_TAG.sub("", prompt))  # ", ," where a tag was
    cleaned = re.sub(r"[ \t]+,", ",", re.sub(r"[ \t]{2,}", " ", cleaned))
    return "\n".join(line.strip() for line in cleaned.split("\n")).strip().rstrip(",").strip(), tags


def _lora_hashes(value: str) -> dict[str, str]:
    """"name: hash12, name2: hash12" -> {name: hash12}."""
    pairs = (item.rpartition(":") for item in value.split(",") if ":" in item)
    return {name.strip(): digest.strip().lower() for name, _, digest in pairs}


def _a1111_loras(studio: Studio, tags: list[tuple[str, str]], hashes: dict[str, str], r: _Reading) -> None:
    """Map tags to registered LoRAs by name or by "Lora hashes"; a name is only ever a lookup key."""
    if not tags:
        return
    registered: list[LoraView] = studio.list_loras()
    by_name, by_hash = {x.name: x for x in registered}, {x.short_hash.lower(): x for x in registered}
    choices: list[LoraChoice] = []
    for kind, body in tags:
        label = f"<{kind}:{body}>"
        name, _, rest = body.partition(":")
        weight = _weight(rest or "1")
        found = by_name.get(name.strip()) or by_hash.get(hashes.get(name.strip(), ""))
        if kind == "hypernet":
            r.skip(label, "hypernetworks are not supported")
        elif found is None:
            r.skip(label, "no LoRA with this name or hash is registered in this studio")
        elif weight is None:
            r.skip(label, "its weight is not a number between -4 and 4 (separate text-encoder/UNet weights are not supported)")
        elif found.id not in {c.lora_id for c in choices}:
            choices.append(LoraChoice(lora_id=found.id, weight=weight))
    r.data["loras"] = tuple(choices)


def _a1111_scheduler(sampler: str | None, schedule: str | None, r: _Reading) -> None:
    if sampler is None:
        return
    name = A1111_SAMPLERS.get((sampler, schedule or "Automatic"))
    if name is None and schedule is None and sampler in SCHEDULERS:  # A1111 < 1.9: "DPM++ 2M Karras"
        name = sampler
    if name is None:
        shown = f"{sampler[:40]!r}" + (f" with schedule {schedule[:40]!r}" if schedule else "")
        r.skip("Sampler", f"{shown} is not one of Brand Studio's schedulers ({', '.join(SCHEDULERS)})")
    else:
        r.data["scheduler"] = name


# ----- shared -----------------------------------------------------------------------------------
def _check_model(studio: Studio, file_hash: Any, name: str, r: _Reading) -> None:
    """Note when the image was made with another base model than this studio's (the request has no model)."""
    if not isinstance(file_hash, str) or not file_hash:
        return
    try:
        model = studio.resolve()
    except errors.StudioError:
        return
    if not model.sha256.startswith(file_hash.lower()[:64]):
        r.skip(name, f"made with another base model (hash {file_hash[:10]}); this studio renders with "
               f"{model.name} ({model.short_hash}), so the image will differ")  # fmt: skip


def _build(r: _Reading) -> PngReadResult:
    """Validate; a field the studio refuses is left out (default used) and reported, the prompt is required."""
    data = {k: v for k, v in r.data.items() if v is not None}
    for _ in range(len(data) + 1):
        try:
            request = GenerateRequest.of(**data)
        except errors.InvalidInput as exc:
            name = (exc.field or "").split(".")[0]
            if name not in data or name == "prompt":
                raise errors.InvalidInput(f"the PNG's parameters cannot be used: {exc}", field=name or "png") from None
            label = A1111_FIELDS.get(name, name) if r.source == "a1111" else name
            r.skip(label, f"{str(data.pop(name))[:40]} refused ({exc.message}); the default is used")
            continue
        return PngReadResult(request=request, source=r.source, unmapped=tuple(r.unmapped), notes=tuple(r.notes))
    raise AssertionError("unreachable: every pass removes a field")


def _int(value: str) -> int | None:
    return int(value) if re.fullmatch(r"-?\d{1,20}", value.strip()) else None


def _float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _weight(value: Any) -> float | None:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    number = _float(value) if isinstance(value, str) else value if numeric else None
    return float(number) if number is not None and math.isfinite(number) and -4 <= number <= 4 else None

