"""A1111 ``parameters`` text: written exactly as A1111 does, parsed back to the same values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from studio.generation.infotext import build_parameters, parse_parameters, quote
from studio.generation.recipe import RecipeLora, RecipeModel, a1111_parameters, make_recipe

FORMATS_EXAMPLE = (
    "studio product photo of brandx_bottle on wet slate, soft rim light, (condensation:1.2), <lora:brandx_v3:0.8>\n"
    "Negative prompt: text, watermark, blurry, deformed label\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Variation seed: 987654321, Variation seed strength: 0.15, "
    'Denoising strength: 0.4, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: Latent, Lora hashes: '
    '"brandx_v3: 6f1a2b3c4d5e", Version: v1.10.1'
)


def test_reference_example_parses_and_rebuilds_byte_for_byte() -> None:
    parsed = parse_parameters(FORMATS_EXAMPLE)
    assert parsed["Prompt"].endswith("<lora:brandx_v3:0.8>")
    assert parsed["Negative prompt"] == "text, watermark, blurry, deformed label"
    assert parsed["Size-1"] == "832" and parsed["Size-2"] == "1216"
    assert parsed["Lora hashes"] == "brandx_v3: 6f1a2b3c4d5e"
    params = {k: v for k, v in parsed.items() if k not in ("Prompt", "Negative prompt") and k[-2:] not in ("-1", "-2")}
    # Keys arrive shuffled: the writer must restore A1111's order (extras keep insertion order).
    shuffled = dict(reversed(list(params.items())))
    shuffled = {k: shuffled[k] for k in ["Hires upscale", "Hires steps", "Hires upscaler", "Lora hashes"]} | {
        k: v for k, v in shuffled.items() if not k.startswith(("Hires", "Lora"))
    }
    assert build_parameters(parsed["Prompt"], parsed["Negative prompt"], shuffled) == FORMATS_EXAMPLE


def test_quoting_and_omissions() -> None:
    assert quote("plain") == "plain" and quote("a, b") == '"a, b"' and quote("k: v") == '"k: v"'
    text = build_parameters("p", "", {"Steps": 5, "Seed": 1, "Face restoration": None, "Tiling": "Tiling", "Size": "8x8"})
    assert text == "p\nSteps: 5, Seed: 1, Size: 8x8, Tiling"


def test_our_recipe_text_parses_back_to_the_recipe() -> None:
    recipe = make_recipe(
        model=RecipeModel(ref="builtin:tiny", name="builtin-tiny", sha256="ab" * 32, family="sd1"),
        prompt="acm_bottle bottle, on slate\nsecond line", negative_prompt="blurry, text", user_prompt="on slate",
        user_negative_prompt="blurry, text",
        scheduler="DPM++ 2M Karras", num_inference_steps=25, guidance_scale=6.5, width=512, height=768,
        seeds=[7, 8], loras=[RecipeLora(id=1, name="acme-v1", sha256="cd" * 32, short_hash="0123456789ab", weight=0.75)],
        kit_id=1, app_version="0.1.0", warnings=[],
    )  # fmt: skip
    parsed = parse_parameters(a1111_parameters(recipe, seed=8))
    assert parsed["Prompt"] == "acm_bottle bottle, on slate\nsecond line <lora:acme-v1:0.75>"
    assert parsed["Negative prompt"] == "blurry, text"
    assert (parsed["Steps"], parsed["Sampler"], parsed["Schedule type"]) == ("25", "DPM++ 2M", "Karras")
    assert (parsed["CFG scale"], parsed["Seed"], parsed["Size"]) == ("6.5", "8", "512x768")
    assert parsed["Model hash"] == "ab" * 5 and parsed["Lora hashes"] == "acme-v1: 0123456789ab"


@given(
    prompt=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1).filter(
        lambda s: not s.startswith("Negative prompt:") and s.strip() == s and s
    ),
    seed=st.integers(0, 2**32 - 1),
    cfg=st.floats(0, 30, allow_nan=False).map(lambda x: round(x, 2)),
    model=st.text(st.characters(whitelist_categories=("L", "N", "P", "Zs")), min_size=1, max_size=40).filter(
        lambda s: s.strip() == s and '"' not in s and "\\" not in s
    ),
)
def test_any_values_round_trip(prompt: str, seed: int, cfg: float, model: str) -> None:
    text = build_parameters(prompt, "", {"Steps": 20, "CFG scale": cfg, "Seed": seed, "Model": model})
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Seed"] == str(seed) and float(parsed["CFG scale"]) == cfg and parsed["Model"] == model
