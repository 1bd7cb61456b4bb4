"""TrainConfig: field-specific validation, (de)serialisation, and the default LoRA targets."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from training import TrainConfig, TrainConfigError
from training.config import DEFAULT_TARGET_MODULES

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_config(model: Path, data: Path, out: Path, **overrides: object) -> TrainConfig:
    return TrainConfig(pretrained_model=str(model), data_dir=str(data), output_dir=str(out), **overrides)


def test_valid_config_passes(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    make_config(tiny_model_dir, product_dir, tmp_path / "out").validate()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_train_steps", 0, ">= 1"),
        ("max_train_steps", 2.5, "whole number"),
        ("rank", 0, ">= 1"),
        ("learning_rate", 0.0, "> 0"),
        ("learning_rate", -1e-4, "> 0"),
        ("learning_rate", math.nan, "finite"),
        ("learning_rate", math.inf, "finite"),
        ("learning_rate", "1e-4", "number"),
        ("alpha", 0, "> 0"),
        ("resolution", 100, "multiple of 8"),
        ("resolution", 32, "between 64 and 2048"),
        ("resolution", 4096, "between 64 and 2048"),
        ("resolution", True, "whole number"),
        ("train_batch_size", 0, ">= 1"),
        ("gradient_accumulation_steps", 0, ">= 1"),
        ("lr_warmup_steps", -1, ">= 0"),
        ("max_grad_norm", 0.0, "> 0"),
        ("seed", -1, "0..4294967295"),
        ("seed", 2**32, "0..4294967295"),
        ("optimizer", "sgd", "adamw8bit, adamw"),
        ("mixed_precision", "fp8", "no, fp16, bf16"),
        ("output_name", "../escape", "letters, digits"),
        ("output_name", "", "letters, digits"),
        ("target_modules", [], "non-empty list"),
        ("target_modules", ["to_q", ""], "non-empty strings"),
        ("center_crop", "yes", "true or false"),
        ("metadata", {"modelspec.title": 3}, "must be strings"),
        ("metadata", {"sshs_model_hash": "abc"}, "written by the trainer"),
        ("optimizer", "lion", "adamw8bit, adamw, adafactor"),
        ("cache_latents", 1, "true or false"),
        ("enable_bucket", None, "true or false"),
        ("bucket_reso_steps", 12, "multiple of 8"),
        ("bucket_reso_steps", 0, "multiple of 8"),
        ("min_bucket_reso", 1024, "<= resolution (512)"),
        ("max_bucket_reso", 256, ">= resolution (512)"),
        ("max_bucket_reso", 100, "multiple of 8"),
        ("min_snr_gamma", 0, "> 0"),
        ("noise_offset", -0.1, ">= 0"),
        ("noise_offset", math.nan, ">= 0"),
        ("masked_loss", "yes", "true or false"),
        ("gradient_checkpointing", 0, "true or false"),
        ("checkpointing_steps", -1, ">= 0"),
        ("checkpoints_total_limit", 0, ">= 1"),
        ("resume_from", "", "latest"),
        ("export_kohya", "no", "true or false"),
    ],
)
def test_bad_field_is_named(
    tiny_model_dir: Path, product_dir: Path, tmp_path: Path, field: str, value: object, expected: str
) -> None:
    config = make_config(tiny_model_dir, product_dir, tmp_path, **{field: value})
    with pytest.raises(TrainConfigError) as info:
        config.validate()
    assert list(info.value.problems) == [field]
    assert expected in info.value.problems[field]
    assert field in str(info.value)


def test_every_bad_field_is_reported_at_once(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    config = make_config(tiny_model_dir, product_dir, tmp_path, rank=0, max_train_steps=0, resolution=65)
    with pytest.raises(TrainConfigError) as info:
        config.validate()
    assert set(info.value.problems) == {"rank", "max_train_steps", "resolution"}


def test_missing_folders_are_named(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError) as info:
        make_config(tmp_path / "nope", tmp_path / "nodata", tmp_path / "out").validate()
    assert "does not exist" in info.value.problems["pretrained_model"]
    assert "does not exist" in info.value.problems["data_dir"]

    not_a_model = tmp_path / "half-model"
    (not_a_model / "unet").mkdir(parents=True)
    with pytest.raises(TrainConfigError) as info:
        make_config(not_a_model, product_dir, tmp_path / "out").validate()
    assert (
        "missing sub-folder(s) vae, text_encoder, tokenizer, scheduler"
        in info.value.problems["pretrained_model"]
    )

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(TrainConfigError) as info:
        make_config(tiny_model_dir, product_dir, a_file).validate()
    assert "not a folder" in info.value.problems["output_dir"]


def test_missing_caption_names_the_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.png", "b.JPG", "c.webp"):
        Image.new("RGB", (64, 64), (10, 20, 30)).save(data / name)
    (data / "a.txt").write_text("a caption")
    (data / "c.txt").write_text("a caption")
    with pytest.raises(TrainConfigError) as info:
        make_config(tiny_model_dir, data, tmp_path / "out").validate()
    message = info.value.problems["data_dir"]
    assert "b.JPG" in message and "a.png" not in message and "c.webp" not in message


def test_empty_data_dir_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("no images here")
    with pytest.raises(TrainConfigError) as info:
        make_config(tiny_model_dir, tmp_path / "data", tmp_path / "out").validate()
    assert "no images" in info.value.problems["data_dir"]


def test_dict_and_json_round_trip(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    config = make_config(tiny_model_dir, product_dir, tmp_path, rank=8, metadata={"ss_output_name": "x"})
    data = config.to_dict()
    assert data["target_modules"] == list(DEFAULT_TARGET_MODULES)
    assert TrainConfig.from_dict(data) == config
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    assert TrainConfig.from_json(path) == config


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainConfig.from_dict(
            {"pretrained_model": "m", "data_dir": "d", "output_dir": "o", "lerning_rate": 1}
        )
    assert "unknown setting" in info.value.problems["lerning_rate"]
    assert "learning_rate" in info.value.problems["lerning_rate"]  # lists the valid names
    with pytest.raises(TrainConfigError) as info:
        TrainConfig.from_dict({"data_dir": "d"})
    assert set(info.value.problems) == {"pretrained_model", "output_dir"}


def test_from_json_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="cannot read"):
        TrainConfig.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TrainConfigError, match="not valid JSON"):
        TrainConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(TrainConfigError, match="JSON object"):
        TrainConfig.from_json(tmp_path / "list.json")


def test_import_training_is_light() -> None:
    code = (
        "import sys, training\n"
        "training.TrainConfig, training.TrainConfigError\n"
        "heavy = [m for m in ('torch', 'diffusers', 'peft', 'accelerate', 'bitsandbytes') if m in sys.modules]\n"
        "forbidden = [m for m in sys.modules if m.split('.')[0] in ('studio', 'storage', 'brand_kits', 'streamlit', 'sqlalchemy')]\n"
        "assert not heavy and not forbidden, (heavy, forbidden)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_training_never_imports_sibling_packages() -> None:
    code = (
        "import sys, training, training.loop, training.__main__\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('studio', 'storage', 'brand_kits', 'streamlit', 'sqlalchemy')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
