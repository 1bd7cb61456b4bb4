"""brand_kits stays a light, independent sibling: no torch stack, no DB, no UI, no sibling packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("torch", "diffusers", "transformers", "peft", "accelerate", "sqlalchemy", "alembic", "streamlit")
SIBLINGS = ("studio", "storage", "training")

_PROBE = """
import sys
import brand_kits, brand_kits.ingest, brand_kits.identity, brand_kits.trainset, brand_kits.captions
import brand_kits.colors, brand_kits.style, brand_kits.palette, brand_kits.dedupe, brand_kits.pdf_guide
import brand_kits.pdf_worker, brand_kits.archive, brand_kits.exports, brand_kits.caption_edit
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_importing_brand_kits_loads_no_heavy_or_sibling_package() -> None:
    repo_root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, cwd=repo_root, check=True
    )
    loaded = set(done.stdout.split())
    assert {"brand_kits", "pypdf", "numpy", "PIL"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN + SIBLINGS), loaded & set(FORBIDDEN + SIBLINGS)
