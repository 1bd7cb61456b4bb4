"""``accelerate launch -m training --config run.json``: the same trainer under accelerate's launcher,
on one process (same LoRA as ``python -m training``) and on two CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.training.test_training_cli import ENV, REPO_ROOT, run_cli
from training.lora import file_tensor_sha256


def _config(tmp_path: Path, model: Path, data: Path, name: str, **extra: object) -> Path:
    config = {"pretrained_model": str(model), "data_dir": str(data), "output_dir": str(tmp_path / name),
              "output_name": name, "resolution": 64, "max_train_steps": 3, "train_batch_size": 2,
              "optimizer": "adamw", **extra}  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def _launch(config: Path, processes: int) -> subprocess.CompletedProcess[str]:
    """One process: accelerate's simple launcher. Several: its torchrun launcher (``--multi_gpu``) with
    ``ACCELERATE_USE_CPU``, i.e. accelerate's MULTI_CPU mode (DDP over gloo), the same code path as DDP
    on a GPU node except for the backend."""
    mode = ["--multi_gpu", "--main_process_port", str(_free_port())] if processes > 1 else ["--cpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_machines", "1",
               "--num_processes", str(processes), "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "training", "--config", str(config)]  # fmt: skip
    env = {**ENV, "CUDA_VISIBLE_DEVICES": "", **({"ACCELERATE_USE_CPU": "true"} if processes > 1 else {})}
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_accelerate_launch_one_process_gives_the_plain_cli_lora(
    tiny_model_dir: Path, product_dir: Path, tmp_path: Path
) -> None:
    plain = run_cli(_config(tmp_path, tiny_model_dir, product_dir, "plain"))
    assert plain.returncode == 0, plain.stderr
    launched = _launch(_config(tmp_path, tiny_model_dir, product_dir, "launched"), 1)
    assert launched.returncode == 0, launched.stderr
    assert file_tensor_sha256(tmp_path / "launched" / "launched.safetensors") == file_tensor_sha256(
        tmp_path / "plain" / "plain.safetensors"
    )


def test_accelerate_launch_two_processes_trains_one_lora(tiny_model_dir: Path, product_dir: Path, tmp_path: Path) -> None:
    done = _launch(_config(tmp_path, tiny_model_dir, product_dir, "ddp", train_batch_size=1), 2)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "ddp"
    assert sorted(p.name for p in out.iterdir()) == ["ddp.kohya.safetensors", "ddp.safetensors"]
    from safetensors import safe_open

    with safe_open(str(out / "ddp.safetensors"), "pt") as f:
        meta = f.metadata()
    # one file, written by the main process; the total batch counts both processes
    assert (meta["ss_batch_size_per_device"], meta["ss_total_batch_size"], meta["ss_steps"]) == ("1", "2", "3")
