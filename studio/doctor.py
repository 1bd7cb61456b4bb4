"""``brand-studio doctor``: what the install found (torch, device, bitsandbytes, model, DB, disk)."""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

import storage
from studio import errors
from studio.schemas import DoctorCheck, DoctorReport

if TYPE_CHECKING:
    from studio.api import Studio

MIN_FREE_BYTES = 2 * 1024**3
LIBRARIES = ("torch", "diffusers", "peft", "accelerate", "transformers", "bitsandbytes", "safetensors")


def _check_python(studio: Studio) -> DoctorCheck:
    ok = sys.version_info >= (3, 11)
    return DoctorCheck(name="python", ok=ok, detail=sys.version.split()[0])


def _check_libraries(studio: Studio) -> DoctorCheck:
    found, missing = [], []
    for name in LIBRARIES:
        try:
            module = importlib.import_module(name)
            found.append(f"{name} {getattr(module, '__version__', '?')}")
        except Exception as exc:  # noqa: BLE001 - any import failure means a broken install
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    if missing:
        return DoctorCheck(name="libraries", ok=False, detail="broken: " + "; ".join(missing))
    return DoctorCheck(name="libraries", ok=True, detail=", ".join(found))


def _check_device(studio: Studio) -> DoctorCheck:
    import torch

    from studio.generation.engine import resolve_device

    device = resolve_device(studio.settings.device)
    if device == "cuda" and not torch.cuda.is_available():
        return DoctorCheck(name="device", ok=False, detail="cuda requested but torch sees no CUDA GPU")
    detail = device
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        detail = f"cuda: {props.name}, {props.total_memory / 1024**3:.1f} GiB"
    elif device == "cpu":
        detail = f"cpu ({torch.get_num_threads()} threads); generation and training will be slow on real models"
    return DoctorCheck(name="device", ok=True, detail=detail)


def _check_bitsandbytes(studio: Studio) -> DoctorCheck:
    import bitsandbytes as bnb
    import torch

    param = torch.nn.Parameter(torch.ones(64, 64))
    opt = bnb.optim.AdamW8bit([param], lr=1e-3, min_8bit_size=16)
    param.grad = torch.ones_like(param)
    opt.step()
    state = opt.state[param]
    ok = "state1" in state and state["state1"].dtype == torch.uint8
    return DoctorCheck(name="bitsandbytes", ok=ok, detail=f"{bnb.__version__}: AdamW8bit step " + ("ran" if ok else "did not keep 8-bit state"))


def _check_model(studio: Studio) -> DoctorCheck:
    try:
        m = studio.resolve()
    except errors.ModelError as exc:
        return DoctorCheck(name="model", ok=False, detail=str(exc))
    note = " (placeholder: draws noise)" if m.is_placeholder else " (demo: simple coloured objects, 64 px)" if m.is_demo else ""
    return DoctorCheck(name="model", ok=True, detail=f"{m.ref} -> {m.path} [{m.family}, hash {m.short_hash}]{note}")


def _check_database(studio: Studio) -> DoctorCheck:
    try:
        storage.check_integrity(studio.db.engine)
        rev = storage.current_revision(studio.db.engine)
    except storage.StorageError as exc:
        return DoctorCheck(name="database", ok=False, detail=str(exc))
    url = studio.db.engine.url.render_as_string(hide_password=True)
    return DoctorCheck(name="database", ok=rev == storage.HEAD, detail=f"{url} at revision {rev} (head {storage.HEAD})")


def _check_disk(studio: Studio) -> DoctorCheck:
    data_dir = studio.settings.data_dir
    free = shutil.disk_usage(data_dir).free
    try:
        with tempfile.NamedTemporaryFile(dir=studio.settings.blobs_dir):
            pass
    except OSError as exc:
        return DoctorCheck(name="disk", ok=False, detail=f"{data_dir} is not writable: {exc}")
    ok = free >= MIN_FREE_BYTES
    return DoctorCheck(name="disk", ok=ok, detail=f"{data_dir.resolve()}: {free / 1024**3:.1f} GiB free")


CHECKS: tuple[Callable[[Studio], DoctorCheck], ...] = (
    _check_python, _check_libraries, _check_device, _check_bitsandbytes, _check_model, _check_database, _check_disk,
)  # fmt: skip


def run_checks(studio: Studio) -> DoctorReport:
    results = []
    for check in CHECKS:
        name = check.__name__.removeprefix("_check_")
        try:
            results.append(check(studio))
        except Exception as exc:  # noqa: BLE001 - the doctor reports every failure instead of crashing
            results.append(DoctorCheck(name=name, ok=False, detail=f"{type(exc).__name__}: {exc}"))
    return DoctorReport(checks=tuple(results))
