"""The dependency rules of GUIDE.md, checked by import-linter, plus the import-time budget."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed (make test installs the dev extras)"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_light_packages_import_without_heavy_libraries() -> None:
    code = (
        "import sys, studio.api, studio.cli, storage, brand_kits, training;"
        "heavy = {'torch', 'diffusers', 'transformers', 'peft', 'streamlit'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
