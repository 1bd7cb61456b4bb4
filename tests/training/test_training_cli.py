"""``python -m training --config run.json`` in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def run_cli(config_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", "--config", str(config_path), *extra],
        cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_cli_trains_from_json(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = {
        "pretrained_model": str(tiny_model_dir),
        "data_dir": str(product_dir),
        "output_dir": str(out),
        "output_name": "cli_lora",
        "resolution": 64,
        "max_train_steps": 2,
        "metadata": {"modelspec.title": "from the CLI"},
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config))
    done = run_cli(path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # logs only, on stderr
    assert "saved" in done.stderr and "cli_lora.safetensors" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cli_lora.kohya.safetensors", "cli_lora.safetensors"]


def test_cli_exits_2_on_a_bad_config(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {"pretrained_model": str(tiny_model_dir), "data_dir": str(product_dir), "output_dir": str(tmp_path),
             "max_train_steps": 0, "rnak": 4}
        )
    )  # fmt: skip
    done = run_cli(path)
    assert done.returncode == 2
    assert "rnak: unknown setting" in done.stderr
    path.write_text(
        json.dumps({"pretrained_model": str(tiny_model_dir), "data_dir": str(product_dir),
                    "output_dir": str(tmp_path), "max_train_steps": 0})
    )  # fmt: skip
    done = run_cli(path)
    assert done.returncode == 2
    assert "max_train_steps: must be >= 1" in done.stderr
    assert done.stdout == ""


def test_sigterm_stops_and_saves(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    out = tmp_path / "out"
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"pretrained_model": str(tiny_model_dir), "data_dir": str(product_dir),
                    "output_dir": str(out), "resolution": 64, "max_train_steps": 100000})
    )  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "--config", str(path), "--log-level", "DEBUG"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if "step 2/100000" in line:  # training is under way
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    with safe_open(str(out / "lora.safetensors"), framework="pt") as f:
        assert 2 <= int(f.metadata()["ss_steps"]) < 100000


def test_sigkill_then_resume_gives_the_uninterrupted_lora(
    tiny_model_dir: Path, product_dir: Path, tmp_path: Path
) -> None:
    """bad_inputs 34/35: a run killed at once (no chance to save) resumes from its last complete
    checkpoint and ends with the same tensors as a run that was never interrupted."""
    from training import TrainConfig, train

    settings = {
        "pretrained_model": str(tiny_model_dir), "data_dir": str(product_dir), "output_dir": str(tmp_path / "out"),
        "resolution": 64, "train_batch_size": 2, "max_train_steps": 24, "checkpointing_steps": 4,
        "center_crop": False, "random_flip": True,
    }  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps(settings))
    first = tmp_path / "out" / "checkpoints" / "step-000004"
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "--config", str(path)],
        cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not first.is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "out" / "lora.safetensors").exists()

    done = run_cli(path, "--resume", "latest")
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr
    checkpoints = tmp_path / "out" / "checkpoints"
    assert not [p.name for p in checkpoints.iterdir() if p.name.startswith(".")]  # leftovers removed

    reference = train(TrainConfig.from_dict({**settings, "output_dir": str(tmp_path / "reference")}))
    from training.lora import file_tensor_sha256

    assert file_tensor_sha256(tmp_path / "out" / "lora.safetensors") == reference.tensor_sha256


def test_resume_without_checkpoint_exits_2(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"pretrained_model": str(tiny_model_dir), "data_dir": str(product_dir),
                    "output_dir": str(tmp_path / "out"), "resolution": 64, "max_train_steps": 2})
    )  # fmt: skip
    done = run_cli(path, "--resume", "latest")
    assert done.returncode == 2
    assert "resume_from: no complete checkpoint in" in done.stderr
