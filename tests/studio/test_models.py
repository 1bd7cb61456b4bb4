"""Model resolution: each kind of reference, and every refusal (pickles are never opened)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.builtin_model import BUILTIN_TINY, build_components, builtin_folder, materialize_builtin
from studio.errors import ModelError
from studio.models import read_safetensors_header, resolve_model


class _Boom:
    """Pickles into a call of os.system: loading it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _malicious_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": _Boom(marker)}))
    return path


def test_builtin_model_is_built_once_deterministically(tmp_path: Path, tiny_model_dir: Path) -> None:
    m = resolve_model(BUILTIN_TINY, models_dir=tmp_path)
    assert m.kind == "builtin" and m.is_placeholder and m.family == "sd1" and m.default_size == 128
    assert m.path == builtin_folder(tmp_path)
    assert all(p.suffix != ".bin" for p in m.path.rglob("*"))
    # Same recipe -> same weights -> same hash as the session's separately built copy.
    assert m.sha256 == resolve_model(str(tiny_model_dir), models_dir=tmp_path).sha256
    stamp = (m.path / "model_index.json").stat().st_mtime_ns
    assert materialize_builtin(tmp_path) == m.path
    assert (m.path / "model_index.json").stat().st_mtime_ns == stamp


def test_builtin_tokenizer_is_the_real_byte_level_vocab() -> None:
    tok = build_components()["tokenizer"]
    assert len(tok) == 514
    ids = tok("a red bottle").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) == 12


def test_local_diffusers_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    m = resolve_model(str(tiny_model_dir), models_dir=tmp_path)
    assert m.kind == "diffusers_folder" and not m.is_placeholder and m.path == tiny_model_dir.resolve()
    assert len(m.short_hash) == 10


def test_name_found_in_an_a1111_models_layout(tmp_path: Path, tiny_model_dir: Path) -> None:
    a1111 = tmp_path / "webui" / "models"
    shutil.copytree(tiny_model_dir, a1111 / "Stable-diffusion" / "my-model")
    m = resolve_model("my-model", models_dir=tmp_path / "data", search_dirs=[a1111])
    assert m.path == (a1111 / "Stable-diffusion" / "my-model").resolve()


def test_folder_with_only_pickle_weights_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelError, match=r"unet has no \.safetensors weights .*diffusion_pytorch_model\.bin"):
        resolve_model(str(folder), models_dir=tmp_path / "m")


@pytest.mark.parametrize("name", ["model.ckpt", "model.pt", "model.bin", "model.pth"])
def test_pickle_files_are_refused_without_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned_marker"
    path = _malicious_pickle(tmp_path / name, marker)
    with pytest.raises(ModelError, match="pickle-based file"):
        resolve_model(str(path), models_dir=tmp_path / "m")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "model.SAFETENSORS"])
def test_pickle_renamed_safetensors_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned_marker"
    path = _malicious_pickle(tmp_path / name, marker)
    with pytest.raises(ModelError, match="not a safetensors file"):
        resolve_model(str(path), models_dir=tmp_path / "m", offline=True)
    assert not marker.exists()


def _checkpoint(path: Path, prefix: str = "model.diffusion_model.") -> Path:
    save_file({f"{prefix}input_blocks.0.0.weight": torch.zeros(4, 4), "cond_stage_model.transformer.x": torch.ones(3)},
              str(path), metadata={"format": "pt"})  # fmt: skip
    return path


def test_truncated_safetensors_is_reported_incomplete(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "cut.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ModelError, match="incomplete"):
        resolve_model(str(path), models_dir=tmp_path / "m")
    assert not (tmp_path / "m" / "converted").exists()


def test_header_reader_accepts_a_complete_file(tmp_path: Path) -> None:
    header = read_safetensors_header(_checkpoint(tmp_path / "ok.safetensors"))
    assert "model.diffusion_model.input_blocks.0.0.weight" in header


def test_absurd_header_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ModelError, match="not a safetensors file"):
        read_safetensors_header(path)


def test_lora_given_as_base_model_is_explained(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "lora.safetensors", prefix="lora_unet_")
    with pytest.raises(ModelError, match="is it a LoRA"):
        resolve_model(str(path), models_dir=tmp_path / "m")


def test_single_file_offline_without_config_names_the_fix(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "civitai-model.safetensors")
    with pytest.raises(ModelError, match="BRAND_STUDIO_SINGLE_FILE_CONFIG"):
        resolve_model(str(path), models_dir=tmp_path / "m", offline=True)


def test_hub_id_offline_fails_fast_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    start = time.monotonic()
    with pytest.raises(ModelError, match="hf download stable-diffusion-v1-5/stable-diffusion-v1-5"):
        resolve_model("stable-diffusion-v1-5/stable-diffusion-v1-5", models_dir=tmp_path / "m", offline=True)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    ("ref", "message"),
    [("", "no model given"), ("builtin:huge", "unknown built-in model"), ("./nowhere", "not found"),
     ("missing.safetensors", "not found"), ("not a model ref!", "cannot understand")],
)  # fmt: skip
def test_bad_references(tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        resolve_model(ref, models_dir=tmp_path)


def test_hash_cache_survives_and_is_valid_json(tmp_path: Path, tiny_model_dir: Path) -> None:
    resolve_model(str(tiny_model_dir), models_dir=tmp_path)
    cache = json.loads((tmp_path / "hashes.json").read_text())
    assert len(cache) == 1 and all(len(v) == 64 for v in cache.values())


def test_single_file_checkpoint_converts_once_and_draws_the_same_pixels(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A Civitai-style original-layout checkpoint of the tiny model gives the folder's exact pixels."""
    from studio.generation.engine import Engine, GenerationJob
    from tests.ldm_checkpoint import write_ldm_checkpoint

    ckpt = write_ldm_checkpoint(tiny_model_dir, tmp_path / "civitai-model.safetensors")
    m = resolve_model(str(ckpt), models_dir=tmp_path / "m", single_file_config=tiny_model_dir, offline=True)
    assert m.kind == "single_file" and m.name == "civitai-model" and m.family == "sd1"
    assert m.path.parent == tmp_path / "m" / "converted"
    assert not [p for p in m.path.rglob("*") if p.suffix in {".bin", ".ckpt", ".pt"}]
    stamp = (m.path / "model_index.json").stat().st_mtime_ns
    again = resolve_model(str(ckpt), models_dir=tmp_path / "m", offline=True)  # cached: no config needed now
    assert again.path == m.path and (m.path / "model_index.json").stat().st_mtime_ns == stamp
    engine = Engine()
    job = GenerationJob(tiny_model_dir, "a red bottle", "", "Euler", 4, 7.0, 64, 64, (5,))
    reference = engine.generate(job).images[0].pixel_sha256
    converted = engine.generate(GenerationJob(**{**job.__dict__, "model_path": m.path})).images[0].pixel_sha256
    assert converted == reference
