"""brand_kits tests: make sure `brand_kits` is the real package, not this test folder.

pytest's default "prepend" import mode puts tests/ (the rootdir conftest's folder) on sys.path, where
tests/brand_kits/ (no __init__.py) would shadow the real `brand_kits` package as a namespace package
unless the repository root is on sys.path too (it is under `python -m pytest`, not under `pytest`).
The image builders shared by these tests live in kit_images.py next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)
_shadow = sys.modules.get("brand_kits")
if _shadow is not None and getattr(_shadow, "__file__", None) is None:
    del sys.modules["brand_kits"]
