"""The demo model's build (``python -m training.demo_build``), run in miniature: a few steps per phase.

The real build takes ~25 minutes; these tests run the same code with a tiny plan and check what the
committed model relies on: the locally built tokenizer knows the demo words as single tokens and
survives a save/load, the result is an ordinary diffusers folder of safetensors that the studio
resolves like any other, the same seed gives the same bytes, and a build killed mid-way resumes from
its checkpoint to exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from studio.models import resolve_model
from training import demo_build
from training.demo_build import WORDS, build, build_tokenizer, default_plan

MINI = {"vae_steps": 3, "vae_batch": 2, "cached_images": 12, "unet_steps": 4, "unet_batch": 2, "warmup": 2,
        "checkpoint_every": 2, "decoder_steps": 2, "decoder_batch": 2}  # fmt: skip


def _plan() -> dict[str, Any]:
    return {**default_plan(), **MINI}


def _weights(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))}


def test_the_tokenizer_knows_the_demo_words_and_still_spells_anything_else(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    for word in WORDS:
        assert len(tokenizer(word).input_ids) == 3, word  # start, the word, end
    ids = tokenizer("a photo of a green star on a red background").input_ids
    assert len(ids) == 12  # ten words, one token each, and the two specials
    odd = tokenizer("Acmé ünïcode 🍾").input_ids  # unknown words fall back to bytes, never to <unk>
    assert len(odd) > 5 and tokenizer.unk_token_id not in odd[1:-1]
    tokenizer.save_pretrained(tmp_path)
    from transformers import CLIPTokenizer

    again = CLIPTokenizer.from_pretrained(tmp_path)
    assert again("a red bottle, tealpink").input_ids == tokenizer("a red bottle, tealpink").input_ids


def test_only_images_on_the_default_backdrop_may_leave_the_background_out_of_their_caption() -> None:
    """So "a red bottle" always means a red bottle on white (a white one on black), never a blend of backgrounds."""
    rng = np.random.default_rng(0)
    on_backdrop = {demo_build.caption(rng, "red", "bottle", "white") for _ in range(200)}
    assert "a red bottle" in on_backdrop and "a red bottle on a white background" in on_backdrop
    assert {demo_build.caption(rng, "white", "star", "black") for _ in range(200)} >= {
        "a white star",
        "a photo of a white star",
    }
    elsewhere = {demo_build.caption(rng, "red", "bottle", "blue") for _ in range(200)}
    assert len(elsewhere) == 4 and all("blue" in c for c in elsewhere), elsewhere
    assert all(
        c.count("red") == 1 for c in {demo_build.caption(rng, "white", "ring", "red") for _ in range(100)}
    )


def test_a_mini_build_is_a_diffusers_folder_the_studio_loads_and_is_reproducible(tmp_path: Path) -> None:
    first = tmp_path / "first"
    facts = build(first, tmp_path / "work1", _plan(), report=lambda _: None)
    assert facts["demo"] is True and facts["plan"]["unet_steps"] == 4
    card = (first / "README.md").read_text()
    assert "A demo, not a product model" in card and "python -m training.demo_build" in card
    assert not [p for p in first.rglob("*") if p.suffix in {".bin", ".pt", ".ckpt", ".pth"}]
    model = resolve_model(str(first), models_dir=tmp_path / "models")
    assert model.kind == "diffusers_folder" and model.family == "sd1" and model.default_size == 64
    build(tmp_path / "second", tmp_path / "work2", _plan(), report=lambda _: None)
    assert _weights(first) == _weights(tmp_path / "second")


def test_a_killed_build_resumes_from_its_checkpoint_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tmp_path / "whole", tmp_path / "work-whole", _plan(), report=lambda _: None)
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def dies_on_the_unet_phase_third_step(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        if self.param_groups[0]["weight_decay"] > 0:  # the UNet + text encoder optimizer, not the VAE's
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("killed")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", dies_on_the_unet_phase_third_step)
    work = tmp_path / "work-killed"
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "killed", work, _plan(), report=lambda _: None)
    assert not (tmp_path / "killed").exists()  # nothing half-written where the model goes
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    messages: list[str] = []
    build(tmp_path / "killed", work, _plan(), report=messages.append)
    assert any("reused the finished phase" in m for m in messages)
    assert any("resumed at step 2" in m for m in messages)
    assert _weights(tmp_path / "killed") == _weights(tmp_path / "whole")
    unet = load_file(str(tmp_path / "killed" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.isfinite(t).all() for t in unet.values())


def test_plan_knobs_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        demo_build.main(["--set", "nonsense=1"])
    assert "unknown knob" in capsys.readouterr().err
