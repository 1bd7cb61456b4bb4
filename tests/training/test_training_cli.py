"""``python -m training --config run.json`` in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(config_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "training", "--config", str(config_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
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
    assert [p.name for p in out.iterdir()] == ["cli_lora.safetensors"]


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
