"""benchmarks/gpu_check.py is only run on lent GPUs; its --tiny mode runs the same code on CPU here so
it cannot rot between loans (it wraps the trainer's private steps to split its memory peak)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_every_section_in_tiny_mode(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BRAND_STUDIO_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    by_name = {s["section"]: s for s in json.loads((tmp_path / "gpu_check.json").read_text())}
    assert set(by_name) == {"env", "build_sd15", "train_sd15", "generation", "build_sdxl", "train_sdxl"}
    assert not [name for name, s in by_name.items() if "error" in s]
    for name in ("train_sd15", "train_sdxl"):
        assert by_name[name]["steps"] >= 1 and by_name[name]["estimate_mb"]["peak"] > 0
    assert by_name["generation"]["ratio_studio_over_plain"] > 0
