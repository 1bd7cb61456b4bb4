"""Studio.request_from_png: our PNGs re-render the same pixels, A1111 PNGs map what they can and report the
rest, LoRA tags resolve only to registered LoRAs (never paths), hostile PNGs are refused, nothing is stored."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.api import Studio
from studio.errors import InvalidInput
from studio.generation.pngtext import PNG_SIGNATURE
from studio.history_schemas import HistoryQuery
from studio.schemas import GenerateRequest, KitCreateRequest, LoraChoice


def _png(text: dict[str, str] | None = None, size: tuple[int, int] = (64, 64), ztxt: dict[str, str] | None = None) -> bytes:
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    for key, value in (ztxt or {}).items():
        info.add_text(key, value, zip=True)
    buf = BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunks(png: bytes, *chunks: bytes) -> bytes:
    """``png`` with ``chunks`` inserted right after IHDR (where text chunks usually are)."""
    at = len(PNG_SIGNATURE) + 25
    return png[:at] + b"".join(chunks) + png[at:]


@pytest.fixture
def lora_studio(studio: Studio, tiny_model_dir: Path, tmp_path: Path) -> Studio:
    """A studio with kit "Acme Bottle" and a registered LoRA "acme-bottle-v1" (random, non-zero weights:
    made in a second, not trained)."""
    import torch
    from diffusers import UNet2DConditionModel

    from storage import BlobRepo, LoraRepo
    from training import save_lora
    from training.lora import attach_lora

    kit = studio.create_kit(KitCreateRequest.of(name="Acme Bottle", trigger_token="acm_bottle", class_noun="bottle"))
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet", local_files_only=True)
    attach_lora(unet, rank=4, alpha=4.0, target_modules=["to_q", "to_v"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    save_lora(unet, tmp_path / "lora.safetensors", {"ss_output_name": "acme-bottle-v1"})
    ref = studio.blobs.put_bytes((tmp_path / "lora.safetensors").read_bytes())
    with studio.db.session() as s:
        BlobRepo(s).record(ref, "application/x-safetensors")
        LoraRepo(s).create("acme-bottle-v1", ref.sha256, "builtin:tiny", 4, 4.0, kit_id=kit.id)
    return studio


def test_our_png_rerenders_the_same_image(lora_studio: Studio) -> None:
    studio = lora_studio
    kit, lora = studio.list_kits()[0], studio.list_loras()[0]
    gen = studio.generate(GenerateRequest.of(
        prompt="on a table", negative_prompt="blurry", kit_id=kit.id, loras=(LoraChoice(lora_id=lora.id, weight=0.7),),
        scheduler="DPM++ 2M Karras", num_inference_steps=3, guidance_scale=5.5, seed=41, batch_size=2,
    ))  # fmt: skip
    result = studio.request_from_png(studio.read_blob(gen.images[1].blob_sha256))
    assert result.source == "brand_studio" and result.unmapped == ()
    assert result.request == GenerateRequest.of(
        prompt="on a table", negative_prompt="blurry", kit_id=kit.id, loras=(LoraChoice(lora_id=lora.id, weight=0.7),),
        scheduler="DPM++ 2M Karras", num_inference_steps=3, guidance_scale=5.5, seed=41, batch_size=2,
        width=gen.width, height=gen.height,
    )  # fmt: skip
    assert any("image 2 of 2 (seed 42)" in n for n in result.notes)
    again = studio.generate(result.request)  # the whole press again: image 2 is identical
    assert again.images[1].pixel_sha256 == gen.images[1].pixel_sha256


def test_a1111_png_maps_what_it_can_and_reports_the_rest(lora_studio: Studio, tmp_path: Path) -> None:
    studio = lora_studio
    lora = studio.list_loras()[0]
    # A real LoRA file at the path a tag names: tags are names, never paths, so it must not be used.
    shutil.copyfile(studio.lora_file(lora.sha256), tmp_path / "evil.safetensors")
    parameters = (
        f"studio photo of acm_bottle bottle, <lora:brandx_alias:0.8>, wet slate <lora:{tmp_path}/evil:1>,\n"
        "(condensation:1.2) <lora:../../etc/passwd:1> <hypernet:h:1>\n"
        "Negative prompt: text, watermark\n"
        "Steps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 64x96, "
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Variation seed: 987654321, Variation seed strength: 0.15, "
        f'Hires upscale: 1.5, Lora hashes: "brandx_alias: {lora.short_hash}", Version: v1.10.1'
    )
    result = studio.request_from_png(_png({"parameters": parameters}))
    assert result.source == "a1111"
    assert result.request == GenerateRequest.of(
        prompt="studio photo of acm_bottle bottle, wet slate,\n(condensation:1.2)", negative_prompt="text, watermark",
        loras=(LoraChoice(lora_id=lora.id, weight=0.8),), scheduler="DPM++ 2M Karras", num_inference_steps=12,
        guidance_scale=6.5, seed=1234567890, width=64, height=96, subseed=987654321, subseed_strength=0.15,
    )  # fmt: skip
    assert result.unmapped == (
        f"<lora:{tmp_path}/evil:1>", "<lora:../../etc/passwd:1>", "<hypernet:h:1>", "Model hash", "RNG", "Hires upscale",
    )  # fmt: skip
    assert any("no LoRA with this name or hash is registered" in n for n in result.notes)
    # By name, with the weight written as A1111 writes it; old-style sampler names map too.
    by_name = studio.request_from_png(_png({"parameters": f"a bottle <lora:{lora.name}:1>\n"
                                            "Steps: 4, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3, RNG: CPU"}))  # fmt: skip
    assert by_name.request.loras == (LoraChoice(lora_id=lora.id, weight=1.0),) and by_name.unmapped == ()
    assert by_name.request.scheduler == "DPM++ 2M Karras" and by_name.request.prompt == "a bottle"


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [
        ("Sampler: Euler a", "Euler a"),
        ("Sampler: DPM++ 2M, Schedule type: Automatic", "DPM++ 2M"),
        ("Sampler: PLMS", "PNDM"),
        ("Sampler: Euler, Schedule type: Exponential", None),
        ("Sampler: __class__", None),
        ("Sampler: EulerDiscreteScheduler", None),
        ("Sampler: DPM++ 2M Karras, Schedule type: Karras", None),
    ],
)
def test_samplers_map_only_through_the_allow_list(studio: Studio, sampler: str, expected: str | None) -> None:
    result = studio.request_from_png(_png({"parameters": f"a bottle\nSteps: 4, {sampler}, Seed: 1, RNG: CPU"}))
    assert result.request.scheduler == (expected or "Euler")  # not mapped: the default, and reported
    assert ("Sampler" in result.unmapped) == (expected is None)


def test_values_the_studio_refuses_are_reported_not_clamped(studio: Studio) -> None:
    parameters = "a bottle\nSteps: 1000, Sampler: Euler, CFG scale: nan, Seed: 99999999999, Size: 100x100, Clip skip: 2, RNG: CPU"
    result = studio.request_from_png(_png({"parameters": parameters}))
    default = GenerateRequest.of(prompt="a bottle")
    assert result.request == default
    assert result.unmapped == ("CFG scale", "Clip skip", "Steps", "Size", "Seed")
    assert any(n.startswith("Steps: 1000 refused") for n in result.notes)
    # Only a prompt: nothing else to map, nothing to report.
    assert studio.request_from_png(_png({"parameters": "just a prompt, no settings"})).unmapped == ()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"\xff\xd8\xff\xe0 not a png", "not a PNG file"),
        (lambda: b"", "not a PNG file"),
        (lambda: _png(), "no generation parameters"),
        (lambda: _png({"parameters": "\nSteps: 4, Sampler: Euler, Seed: 1"}), "prompt"),
        (lambda: _png({"parameters": "x" * 5000}), "prompt is 5000 characters; the limit is 4000"),
        (lambda: _png({"parameters": "x" * (2 * 1024 * 1024)}), "is 2097152 bytes"),
        (lambda: _png(ztxt={"parameters": "a" * (64 * 1024 * 1024)}), "decompresses to more than"),
        (lambda: _with_chunks(_png(), _chunk(b"iTXt", b"parameters\0\1\0\0\0" + zlib.compress(b"\0" * 8 * 10**6))),
         "decompresses to more than"),
        (lambda: _with_chunks(_png(), *[_chunk(b"tEXt", b"k%d\0v" % i) for i in range(100)]), "more than 64 text chunks"),
        (lambda: _with_chunks(_png(), _chunk(b"tEXt", b"\0no keyword")), "no valid keyword"),
        (lambda: _png({"parameters": "a bottle\nSteps: 4, Sampler: Euler, Seed: 1"})[:-30], "truncated"),
        (lambda: _png({"parameters": "a bottle\nSteps: 4, Sampler: Euler, Seed: 1"}).replace(b"bottle", b"bottlf"), "corrupt"),
        (lambda: _png({"brand_studio": "[" * 100_000}), "recipe is not valid JSON"),
    ],
)
def test_hostile_or_useless_pngs_are_refused_and_nothing_is_stored(studio: Studio, make: Callable[[], bytes], message: str) -> None:
    before = sorted(p.name for p in studio.settings.blobs_dir.rglob("*"))
    with pytest.raises(InvalidInput, match=message):
        studio.request_from_png(make())
    assert sorted(p.name for p in studio.settings.blobs_dir.rglob("*")) == before
    assert studio.count_history(HistoryQuery.of()) == 0


def test_pixel_bombs_and_oversized_files_use_the_upload_limits(make_studio: Callable[..., Studio]) -> None:
    studio = make_studio(max_upload_mb=1)
    png = _png({"parameters": "a bottle\nSteps: 4, Sampler: Euler, Seed: 1"})
    bomb = PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">II", 30000, 30000) + png[24:29]) + png[33:]
    with pytest.raises(InvalidInput, match=r"image too large \(max 40 MP\): 30000x30000 is 900 MP"):
        studio.request_from_png(bomb)
    with pytest.raises(InvalidInput, match=r"image too large \(max 1 MB\)"):
        studio.request_from_png(png + b"\0" * (1024 * 1024))
    # A broken recipe chunk falls back to the A1111 text beside it.
    result = studio.request_from_png(_png({"parameters": "a bottle\nSteps: 5, Sampler: Euler, Seed: 1", "brand_studio": "{"}))
    assert result.source == "a1111" and result.request.num_inference_steps == 5
