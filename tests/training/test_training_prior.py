"""Prior preservation (DreamBooth): class images generated once and reproducibly by the base model, a
loss that includes them, weight 0 = no prior exactly, exact resume, kohya metadata and clear errors."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from tests.training.conftest import one_torch_thread
from training import TrainConfigError, train
from training.class_images import class_image_seed

CLASS_PROMPT = "a photo of a bottle"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def class_dir(tiny_model_dir: Path, product_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three class images the tiny model drew for "a photo of a bottle" (one training step ran too)."""
    from training import TrainConfig

    folder = tmp_path_factory.mktemp("prior") / "class"
    config = TrainConfig(
        pretrained_model=str(tiny_model_dir), data_dir=str(product_dir),
        output_dir=str(folder.parent / "first"), resolution=64, max_train_steps=1,
        class_data_dir=str(folder), class_prompt=CLASS_PROMPT, num_class_images=3,
    )  # fmt: skip
    with one_torch_thread():
        train(config)
    return folder


def test_class_images_are_generated_once_and_reproducibly(
    class_dir: Path, small_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = ["class_00000.png", "class_00000.txt", "class_00001.png", "class_00001.txt",
             "class_00002.png", "class_00002.txt"]  # fmt: skip
    assert sorted(p.name for p in class_dir.iterdir()) == names  # no temp files left
    assert (class_dir / "class_00001.txt").read_text() == f"{CLASS_PROMPT}\n"
    with Image.open(class_dir / "class_00002.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    images = [(class_dir / f"class_0000{i}.png").read_bytes() for i in range(3)]
    assert len(set(images)) == 3  # seeded per index: three different pictures
    assert class_image_seed(0, 1) != class_image_seed(0, 2) and class_image_seed(0, 1) != class_image_seed(
        1, 1
    )

    # A second run finds the folder full: nothing is generated or rewritten.
    before = snapshot(class_dir)
    settings = {"class_data_dir": str(class_dir), "class_prompt": CLASS_PROMPT, "num_class_images": 3}
    with caplog.at_level(logging.INFO, logger="training.class_images"):
        train(small_config("again", max_train_steps=1, **settings))
    assert "generating" not in caplog.text
    assert snapshot(class_dir) == before

    # A deleted image (and a killed run's caption without its image) comes back identical.
    copy = tmp_path / "class"
    shutil.copytree(class_dir, copy)
    (copy / "class_00001.png").unlink()
    (copy / "class_00001.txt").write_text("half-written by a killed run")
    with caplog.at_level(logging.INFO, logger="training.class_images"):
        train(small_config("regen", max_train_steps=1, **{**settings, "class_data_dir": str(copy)}))
    assert "generating 1 class image(s)" in caplog.text
    assert (copy / "class_00001.png").read_bytes() == images[1]
    assert (copy / "class_00001.txt").read_text() == f"{CLASS_PROMPT}\n"
    assert {p.name for p in copy.iterdir()} == set(names)

    # Asking for more keeps the existing images and draws the next indices.
    with caplog.at_level(logging.INFO, logger="training.class_images"):
        train(
            small_config(
                "more", max_train_steps=1, **{**settings, "class_data_dir": str(copy), "num_class_images": 4}
            )
        )
    assert "generating 1 class image(s)" in caplog.text
    assert (copy / "class_00000.png").read_bytes() == images[0] and (copy / "class_00003.png").is_file()


def test_prior_loss_changes_training_and_weight_zero_is_no_prior(class_dir: Path, small_config) -> None:
    plain = train(small_config("plain"))
    with_prior = train(small_config("prior", class_data_dir=str(class_dir)))  # uses the 3 images as they are
    assert with_prior.steps == plain.steps == 4
    assert all(a != b for a, b in zip(with_prior.losses, plain.losses, strict=True))
    assert with_prior.tensor_sha256 != plain.tensor_sha256
    zero = train(small_config("zero", class_data_dir=str(class_dir), prior_loss_weight=0.0))
    assert zero.losses == plain.losses
    assert zero.tensor_sha256 == plain.tensor_sha256  # the class batches touch nothing of the subject's

    with safe_open(str(with_prior.lora_path), framework="pt") as f:
        meta = f.metadata()
    assert meta["ss_num_reg_images"] == "3" and meta["ss_prior_loss_weight"] == "1.0"
    assert json.loads(meta["ss_reg_dataset_dirs"]) == {"class": {"n_repeats": 1, "img_count": 3}}
    with safe_open(str(plain.lora_path), framework="pt") as f:
        plain_meta = f.metadata()
    assert (plain_meta["ss_num_reg_images"], plain_meta["ss_reg_dataset_dirs"]) == ("0", "{}")


#: Random crops and flips, 4 subject images in batches of 3 (2 batches an epoch), 3 class images (1 class
#: batch an epoch), accumulation over 2 micro-batches, and the text encoder trained on both captions.
RESUME_RUN = {
    "max_train_steps": 4,
    "checkpointing_steps": 2,
    "train_batch_size": 3,
    "gradient_accumulation_steps": 2,
    "center_crop": False,
    "random_flip": True,
    "train_text_encoder": True,
}


def test_resume_with_prior_preservation_is_exact(class_dir: Path, small_config) -> None:
    run = {**RESUME_RUN, "class_data_dir": str(class_dir)}
    uninterrupted = train(small_config("a", **run))

    updates: list = []
    stopped = train(small_config("b", **run), progress=updates.append, should_stop=lambda: len(updates) >= 3)
    assert stopped.losses == uninterrupted.losses[:3]
    state = json.loads(
        (Path(stopped.lora_path).parent / "checkpoints" / "step-000003" / "state.json").read_text()
    )
    # 6 micro-batches: the subject's order is at epoch 3 (2 batches an epoch), the class order at its
    # epoch 6 (1 batch an epoch); each position is saved.
    assert (state["epoch"], state["batch_in_epoch"]) == (3, 0)
    assert (state["class_epoch"], state["class_batch_in_epoch"]) == (6, 0)

    resumed = train(small_config("b", resume_from="latest", **run))
    assert resumed.losses == uninterrupted.losses
    assert resumed.tensor_sha256 == uninterrupted.tensor_sha256

    # The class images are part of the run's identity: other ones refuse the checkpoint.
    other = Path(small_config("x").output_dir).parent / "other-class"
    shutil.copytree(class_dir, other)
    (other / "class_00000.txt").write_text("a photo of a vase\n")
    with pytest.raises(TrainConfigError, match="images, captions or masks changed"):
        train(small_config("b", resume_from="latest", **{**run, "class_data_dir": str(other)}))


def test_prior_settings_are_validated(
    class_dir: Path, small_config, product_dir: Path, tmp_path: Path
) -> None:
    def problems(**settings: object) -> dict[str, str]:
        with pytest.raises(TrainConfigError) as info:
            small_config(**settings).validate()
        return info.value.problems

    empty = tmp_path / "empty"
    assert problems(class_data_dir=str(empty), num_class_images=2)["class_prompt"].startswith(
        f"is required: {empty} holds 0 of num_class_images 2 class images"
    )
    assert "holds no class images" in problems(class_data_dir=str(empty))["class_data_dir"]
    assert "another folder than data_dir" in problems(class_data_dir=str(product_dir))["class_data_dir"]
    (tmp_path / "file.png").write_bytes(b"")
    assert "is not a folder" in problems(class_data_dir=str(tmp_path / "file.png"))["class_data_dir"]
    uncaptioned = tmp_path / "uncaptioned"
    shutil.copytree(class_dir, uncaptioned)
    (uncaptioned / "class_00001.txt").unlink()
    assert (
        "no caption file for class_00001.png" in problems(class_data_dir=str(uncaptioned))["class_data_dir"]
    )
    assert problems(class_prompt=CLASS_PROMPT, num_class_images=5) == {
        "class_prompt": "is only used with class_data_dir; set class_data_dir or remove it",
        "num_class_images": "is only used with class_data_dir; set class_data_dir or remove it",
    }
    bad = problems(
        class_data_dir=str(class_dir), prior_loss_weight=float("inf"), num_class_images=-1, class_prompt="  "
    )
    assert bad["prior_loss_weight"] == "must be a finite number >= 0, got inf"
    assert bad["num_class_images"] == "must be >= 0, got -1"
    assert "non-empty caption" in bad["class_prompt"]
    assert (
        "finite number >= 0"
        in problems(class_data_dir=str(class_dir), prior_loss_weight=-0.5)["prior_loss_weight"]
    )

    # Enough images: no prompt needed; a missing folder with a prompt will be created and filled.
    small_config(class_data_dir=str(class_dir), num_class_images=3).validate()
    small_config(
        class_data_dir=str(tmp_path / "new"), num_class_images=2, class_prompt=CLASS_PROMPT
    ).validate()
    assert not (tmp_path / "new").exists()


def test_two_processes_share_generation_and_train_both_features(
    sdxl_model_dir: Path, product_dir: Path, tmp_path: Path
) -> None:
    """``accelerate launch`` with two CPU processes (DDP over gloo) on SDXL: each process draws its share
    of the class images (the same pictures one process draws), and the text encoders train under DDP."""
    import socket
    import subprocess
    import sys

    from tests.training.test_training_cli import ENV, REPO_ROOT
    from training import TrainConfig
    from training.class_images import generate_class_images

    settings = {
        "pretrained_model": str(sdxl_model_dir), "data_dir": str(product_dir), "output_dir": str(tmp_path / "ddp"),
        "resolution": 64, "max_train_steps": 2, "train_batch_size": 1, "optimizer": "adamw",
        "train_text_encoder": True, "class_data_dir": str(tmp_path / "class"), "class_prompt": CLASS_PROMPT,
        "num_class_images": 3,
    }  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(settings))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--main_process_port", port,
               "--num_machines", "1", "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "training", "--config", str(tmp_path / "run.json")]  # fmt: skip
    env = {**ENV, "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        done.stderr.count("generated 1 class image(s)") == 1 and done.stderr.count("generated 2 class") == 1
    )

    with safe_open(str(tmp_path / "ddp" / "lora.safetensors"), framework="pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert any(k.startswith("text_encoder_2.") for k in keys) and any(
        k.startswith("text_encoder.") for k in keys
    )
    assert (meta["ss_num_reg_images"], meta["ss_total_batch_size"], meta["ss_steps"]) == ("3", "2", "2")

    alone = tmp_path / "alone"
    config = TrainConfig(**{**settings, "class_data_dir": str(alone)})  # type: ignore[arg-type]
    with one_torch_thread():
        generate_class_images(config, [1], torch.device("cpu"))
    assert (alone / "class_00001.png").read_bytes() == (tmp_path / "class" / "class_00001.png").read_bytes()


def test_runs_without_the_new_settings_keep_their_checkpoint_fingerprint(small_config) -> None:
    """Checkpoints written before prior preservation and text-encoder LoRAs existed still resume."""
    import hashlib
    from dataclasses import asdict

    from training.checkpoints import CheckpointState, fingerprint
    from training.dataset import find_examples

    config = small_config()
    new = {"train_text_encoder", "text_encoder_lr", "text_encoder_rank", "text_encoder_alpha", "class_data_dir",
           "class_prompt", "num_class_images", "prior_loss_weight"}  # fmt: skip
    old_free = {"output_dir", "output_name", "data_dir", "max_train_steps", "metadata", "checkpointing_steps",
                "checkpoints_total_limit", "resume_from", "export_kohya"}  # fmt: skip
    old = {k: v for k, v in config.to_dict().items() if k not in new | old_free}
    old["pretrained_model"] = str(Path(config.pretrained_model).resolve())
    run = fingerprint(config, find_examples(Path(config.data_dir)))
    assert run.config_sha256 == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    assert run.settings == old

    state = asdict(CheckpointState(1, 0, 1, [0.5], "c", {}, "d", 1, "l", "r", 0.0))
    del state["class_epoch"], state["class_batch_in_epoch"]  # an older state.json
    assert CheckpointState(**state).class_epoch == 0
