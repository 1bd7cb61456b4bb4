"""A1111 prompt emphasis and long prompts: the parser, the chunking, and what they do to pixels."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studio.generation.prompt_weights import (
    WeightedText,
    chunk_tokens,
    is_plain,
    parse_prompt_attention,
)


def _parse(text: str) -> list[tuple[str, float]]:
    return [(p.text, round(p.weight, 6)) for p in parse_prompt_attention(text)]


# ----- the parser: A1111's own doctests, then malformed input ---------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
         [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
          (", sun, ", 1.1), ("sky", 1.4641), (".", 1.1)]),
        ("[word]", [("word", round(1 / 1.1, 6))]),
        ("((word))", [("word", 1.21)]),
        ("(word:0.5)", [("word", 0.5)]),
        ("(word: 1.25 )", [("word", 1.25)]),
        ("", [("", 1.0)]),
    ],
)  # fmt: skip
def test_parser_matches_a1111(text: str, expected: list[tuple[str, float]]) -> None:
    assert _parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unbalanced)", [("unbalanced)", 1.0)]),  # nothing to close: literal
        ("a]b", [("a]b", 1.0)]),
        ("(word:abc)", [("word:abc", 1.1)]),  # not a number: the colon is text
        ("(word:1.2.3)", [("word", 1.0)]),  # A1111 raises on float("1.2.3"); we take it as weight 1
        ("\\\\", [("\\", 1.0)]),
        ("<lora:../../etc/passwd:1>", [("<lora:../../etc/passwd:1>", 1.0)]),
    ],
)  # fmt: skip
def test_malformed_syntax_is_text_never_an_error(text: str, expected: list[tuple[str, float]]) -> None:
    assert _parse(text) == expected


def test_break_splits_chunks_even_inside_brackets() -> None:
    parts = parse_prompt_attention("red bottle BREAK (blue sky BREAK sea)")
    assert [(p.text, p.is_break) for p in parts] == [
        ("red bottle", False), ("BREAK", True), ("", False), ("blue sky", False), ("BREAK", True), ("sea", False)
    ]  # fmt: skip
    assert [round(p.weight, 3) for p in parts if not p.is_break] == [1.0, 1.0, 1.1, 1.1]


def test_random_bracket_soup_never_raises_and_keeps_only_input_characters() -> None:
    rng = random.Random(5)
    alphabet = "ab ():[]\\,.0123456789BREAK"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        parts = parse_prompt_attention(text)
        assert parts, text
        for part in parts:
            assert set(part.text) <= set(text), text
            assert part.is_break or part.weight > 0, text


def test_plain_prompts_are_recognised() -> None:
    assert is_plain("studio photo of a bottle, soft light: 50mm")
    assert is_plain("<lora:brand:0.8> bottle")
    assert not is_plain("a (bottle)")
    assert not is_plain("a \\(bottle\\)")  # A1111 removes the escapes: not the text as written
    assert not is_plain("a BREAK b")


# ----- chunking ---------------------------------------------------------------------------------------
BOS, EOS, PAD, COMMA = 1000, 1001, 0, 7


def _chunks(parts: list[WeightedText], tokens: list[list[int]]) -> tuple[list[Any], int]:
    return chunk_tokens(parts, tokens, bos=BOS, eos=EOS, pad=PAD, comma=COMMA)


def test_a_short_prompt_is_one_chunk_padded_like_the_tokenizer() -> None:
    chunks, count = _chunks([WeightedText("x", 1.0), WeightedText("y", 1.5)], [[11, 12], [13]])
    assert count == 3 and len(chunks) == 1
    assert chunks[0].tokens == [BOS, 11, 12, 13, EOS] + [PAD] * 72
    assert chunks[0].multipliers == [1.0, 1.0, 1.0, 1.5] + [1.0] * 73


def test_long_prompts_continue_in_chunks_of_75() -> None:
    chunks, count = _chunks([WeightedText("x", 1.2)], [list(range(10, 170))])
    assert count == 160 and len(chunks) == 3
    assert all(len(c.tokens) == 77 and c.tokens[0] == BOS for c in chunks)
    assert chunks[0].tokens[1:76] == list(range(10, 85)) and chunks[0].tokens[76] == EOS
    assert chunks[2].tokens[1:11] == list(range(160, 170)) and chunks[2].tokens[11] == EOS
    assert chunks[2].multipliers[1:11] == [1.2] * 10 and chunks[2].multipliers[11:] == [1.0] * 66


def test_a_full_chunk_moves_the_words_after_its_last_comma_to_the_next() -> None:
    tokens = [20] * 60 + [COMMA] + [21] * 20  # comma at position 60; the chunk fills at 75
    chunks, _ = _chunks([WeightedText("x", 1.0)], [tokens])
    assert len(chunks) == 2
    assert chunks[0].tokens[1:62] == [20] * 60 + [COMMA] and chunks[0].tokens[62] == EOS
    assert chunks[1].tokens[1:21] == [21] * 20 and chunks[1].tokens[21] == EOS


def test_break_starts_a_new_chunk() -> None:
    parts = parse_prompt_attention("a BREAK b")
    chunks, count = _chunks(parts, [[11], [], [12]])
    assert len(chunks) == 2 and count == 2
    assert chunks[0].tokens[:3] == [BOS, 11, EOS] and chunks[1].tokens[:3] == [BOS, 12, EOS]


# ----- encoding and pixels ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from studio.generation.engine import Engine

    eng = Engine(device="cpu", dtype="float32")
    yield eng
    eng.unload()


def _job(model: Path, prompt: str, negative: str = "", **kw: Any) -> Any:
    from studio.generation.engine import GenerationJob

    fields: dict[str, Any] = dict(model_path=model, prompt=prompt, negative_prompt=negative, scheduler="Euler",
                                  num_inference_steps=3, guidance_scale=7.0, width=64, height=64, seeds=(11,))  # fmt: skip
    fields.update(kw)
    return GenerationJob(**fields)


def _pixels(engine: Any, job: Any) -> list[str]:
    return [img.pixel_sha256 for img in engine.generate(job).images]


def test_plain_prompts_keep_todays_pixels_exactly(engine: Any, tiny_model_dir: Path) -> None:
    """No weighting syntax: the pipeline gets the strings, as before this feature (same pixels)."""
    import torch

    from studio.generation.engine import pixel_sha256
    from studio.generation.prompt_encode import prompt_arguments

    job = _job(tiny_model_dir, "a bottle on a table", "blurry", seeds=(11, 12))
    ours = _pixels(engine, job)
    pipe = engine.pipeline(tiny_model_dir)
    with torch.inference_mode():
        args, notes = prompt_arguments(pipe, job.prompt, job.negative_prompt, 2)
        assert args == {"prompt": [job.prompt] * 2, "negative_prompt": [job.negative_prompt] * 2} and notes == []
        generators = [torch.Generator("cpu").manual_seed(s) for s in job.seeds]
        latents = torch.stack([torch.randn((4, 8, 8), generator=g, dtype=torch.float32) for g in generators])
        before = pipe(prompt=[job.prompt] * 2, negative_prompt=[job.negative_prompt] * 2, num_inference_steps=3,
                      guidance_scale=7.0, width=64, height=64, latents=latents, generator=generators).images  # fmt: skip
    assert ours == [pixel_sha256(img) for img in before]


def test_weight_one_through_embeddings_equals_the_plain_prompt(engine: Any, tiny_model_dir: Path) -> None:
    """The embeddings path encodes exactly as diffusers does: ``(bottle:1)`` draws what ``bottle`` draws."""
    assert _pixels(engine, _job(tiny_model_dir, "a (bottle:1)")) == _pixels(engine, _job(tiny_model_dir, "a bottle"))


def test_weights_change_pixels(engine: Any, tiny_model_dir: Path) -> None:
    plain = _pixels(engine, _job(tiny_model_dir, "a red bottle"))
    up = _pixels(engine, _job(tiny_model_dir, "a (red:1.6) bottle"))
    down = _pixels(engine, _job(tiny_model_dir, "a [red] bottle"))
    negative = _pixels(engine, _job(tiny_model_dir, "a red bottle", "(blurry:1.5)"))
    assert len({plain[0], up[0], down[0], negative[0]}) == 4


def test_emphasis_keeps_the_chunk_mean() -> None:
    import torch

    from studio.generation.prompt_encode import emphasize

    z = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(0)) + 0.3
    weights = [1.0] * 5 + [1.5] * 3 + [1.0] * 69
    out = emphasize(z, weights)
    assert torch.allclose(out.mean(), z.mean(), atol=1e-6)
    ratio = (out[0, 5] / z[0, 5]).mean() / (out[0, 0] / z[0, 0]).mean()
    assert ratio == pytest.approx(1.5, rel=1e-4)


def test_emphasis_on_zero_mean_embeddings_stays_finite() -> None:
    """A final layer norm without bias (the tiny model) gives chunk means of ~1e-8: A1111's division
    would turn them into inf/NaN (black images); the guard applies the weights only."""
    import torch

    from studio.generation.prompt_encode import emphasize

    z = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    z = z - z.mean(dim=-1, keepdim=True)  # per-token zero mean, like LayerNorm(weight=1, bias=0)
    weights = [1.0, 1.6, 1.6] + [1.0] * 74
    out = emphasize(z, weights)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0, 1], z[0, 1] * 1.6) and torch.equal(out[0, 0], z[0, 0])


def test_long_prompts_use_every_token_and_say_so(engine: Any, tiny_model_dir: Path) -> None:
    import torch

    from studio.generation.prompt_encode import prompt_arguments

    head = "studio photo of a bottle on a table, " * 3  # the tiny tokenizer is byte-level: > 75 tokens
    job_a, job_b = _job(tiny_model_dir, head + "red label"), _job(tiny_model_dir, head + "blue label")
    out_a = engine.generate(job_a)
    assert _pixels(engine, job_b) != [i.pixel_sha256 for i in out_a.images]  # the tail is no longer cut off
    assert any("chunks of 75" in w and "prompt is" in w for w in out_a.warnings)
    pipe = engine.pipeline(tiny_model_dir)
    with torch.inference_mode():
        args, _ = prompt_arguments(pipe, job_a.prompt, "short negative", 3)
    chunks = args["prompt_embeds"].shape[1] // 77
    assert chunks >= 2 and args["prompt_embeds"].shape == args["negative_prompt_embeds"].shape
    assert args["prompt_embeds"].shape[0] == 3


def test_lora_syntax_in_a_prompt_is_only_text(engine: Any, tiny_model_dir: Path) -> None:
    out = engine.generate(_job(tiny_model_dir, "a bottle <lora:../../etc/passwd:1>"))
    assert len(out.images) == 1 and engine.loaded_adapters() == set()


def test_sdxl_encoding_matches_diffusers_and_weights_only_touch_the_sequence(tmp_path: Path) -> None:
    import torch

    from studio.generation.engine import Engine
    from studio.generation.prompt_encode import prompt_arguments
    from tests.sdxl_model import write_tiny_sdxl

    eng = Engine(device="cpu", dtype="float32")
    pipe = eng.pipeline(write_tiny_sdxl(tmp_path / "xl"))
    with torch.inference_mode():
        same, _ = prompt_arguments(pipe, "(a red bottle:1)", "blurry", 1)
        ref = pipe.encode_prompt("a red bottle", device="cpu", num_images_per_prompt=1,
                                 do_classifier_free_guidance=True, negative_prompt="blurry")  # fmt: skip
        weighted, _ = prompt_arguments(pipe, "a (red:1.5) bottle", "blurry", 1)
    keys = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    for key, expected in zip(keys, ref, strict=True):
        assert torch.equal(same[key], expected), key
    assert not torch.equal(weighted["prompt_embeds"], same["prompt_embeds"])
    assert torch.equal(weighted["pooled_prompt_embeds"], same["pooled_prompt_embeds"])  # A1111: pooled unweighted
    eng.unload()

