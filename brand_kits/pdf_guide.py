"""Read a PDF style guide's text, colours and fonts in a sandboxed child process.

PDF parsers are a classic attack surface (xref loops, self-referencing page trees, compression bombs,
huge metadata), so the parsing never runs in the app's process: :func:`extract_pdf_guide` starts
``python -m brand_kits.pdf_worker`` with an address-space (memory) limit, a CPU-time limit, no file
writes and few file descriptors, a minimal environment (no secrets), and a wall-clock timeout. The
worker's single JSON answer is validated field by field; anything else becomes one :class:`KitError`
("could not read PDF: ..."), never partial data.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brand_kits.errors import KitError

logger = logging.getLogger(__name__)

MAX_PDF_BYTES = 50 * 1024 * 1024
MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # readers accept a header within the first 1 KiB (PDF 2.0, annex H)
CHILD_MAX_FILES = 32
MAX_COLORS = 12
MAX_FONTS = 50
MAX_FONT_NAME = 100
MAX_WARNINGS = 20
MAX_WARNING_CHARS = 300
EXIT_REFUSED = 2
_WORKER_MODULE = "brand_kits.pdf_worker"
# `python -m` looks in the working directory first, so the child finds this very package.
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
_HEX_CODE = re.compile(r"#[0-9A-F]{6}")
_PASSED_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "SYSTEMROOT")
_CHILD_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",  # no .pyc writes: RLIMIT_FSIZE 0 would kill the child
    "PYTHONIOENCODING": "utf-8",
    "OPENBLAS_NUM_THREADS": "1",  # numpy may load with the package: no thread pools, small VM
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
# What a child that ran out of address space before it could answer leaves on stderr.
_OUT_OF_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "failed to map segment", "Memory allocation")
_FIX = "export the style guide again or enter its colours by hand"


@dataclass(frozen=True)
class ExtractedGuide:
    text: str
    colors: tuple[str, ...]
    fonts: tuple[str, ...]
    pages: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Limits:
    timeout_s: float
    max_memory_mb: int
    max_pages: int
    max_text_chars: int


def extract_pdf_guide(
    data: bytes,
    *,
    timeout_s: float = 20.0,
    max_memory_mb: int = 512,
    max_pages: int = 200,
    max_text_chars: int = 50_000,
) -> ExtractedGuide:
    """Text (first ``max_text_chars``), up to 12 colours (``#RRGGBB``), font names and page count.

    Raises :class:`KitError` for anything that is not a readable PDF within the limits (the child is
    killed after ``timeout_s`` of wall time, start-up included) and never returns partial data;
    raises ``ValueError`` for nonsensical limits (a programming error, not a user's).
    """
    limits = _check_limits(timeout_s, max_memory_mb, max_pages, max_text_chars)
    data = bytes(data)
    if not data:
        raise KitError("not a PDF: the file is empty; upload the style guide as a PDF file")
    if len(data) > MAX_PDF_BYTES:
        raise KitError(
            f"PDF too large (max {MAX_PDF_BYTES // (1024 * 1024)} MB): the file is "
            f"{len(data) / (1024 * 1024):.1f} MB; export a smaller PDF (fewer pages or compressed "
            "images) or enter the colours by hand"
        )
    if MAGIC not in data[:MAGIC_WINDOW]:
        raise KitError("not a PDF: the file does not start with %PDF-; upload the style guide as a PDF file")
    completed = _run_worker(data, limits)
    guide = _result_of(completed, limits)
    logger.info(
        "read PDF style guide: %d pages, %d colours, %d fonts, %d warnings",
        guide.pages,
        len(guide.colors),
        len(guide.fonts),
        len(guide.warnings),
    )
    return guide


def _check_limits(timeout_s: float, max_memory_mb: int, max_pages: int, max_text_chars: int) -> _Limits:
    if not isinstance(timeout_s, int | float) or not math.isfinite(timeout_s) or not 0 < timeout_s <= 600:
        raise ValueError(f"timeout_s must be a number of seconds in (0, 600], got {timeout_s!r}")
    for name, value, low in (
        ("max_memory_mb", max_memory_mb, 128),
        ("max_pages", max_pages, 1),
        ("max_text_chars", max_text_chars, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return _Limits(float(timeout_s), max_memory_mb, max_pages, max_text_chars)


def _unreadable(reason: str) -> KitError:
    return KitError(f"could not read PDF: {reason}; {_FIX}")


def _child_limits(limits: _Limits) -> Callable[[], None]:
    """The preexec function: rlimits for the child, computed here (no work between fork and exec)."""
    wanted = (
        (resource.RLIMIT_AS, limits.max_memory_mb * 1024 * 1024),
        (resource.RLIMIT_CPU, math.ceil(limits.timeout_s)),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, CHILD_MAX_FILES),
        (resource.RLIMIT_CORE, 0),
    )
    settings: list[tuple[int, tuple[int, int]]] = []
    for kind, soft in wanted:
        _, hard = resource.getrlimit(kind)
        hard_wanted = soft + 1 if kind == resource.RLIMIT_CPU else soft  # SIGXCPU, then SIGKILL
        if hard != resource.RLIM_INFINITY:
            soft, hard_wanted = min(soft, hard), min(hard_wanted, hard)
        settings.append((kind, (soft, hard_wanted)))

    def apply() -> None:
        for kind, values in settings:
            resource.setrlimit(kind, values)

    return apply


def _run_worker(data: bytes, limits: _Limits) -> subprocess.CompletedProcess[bytes]:
    command = [
        sys.executable, "-B", "-m", _WORKER_MODULE,
        "--max-pages", str(limits.max_pages),
        "--max-text-chars", str(limits.max_text_chars),
        "--max-memory-mb", str(limits.max_memory_mb),
    ]  # fmt: skip
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ} | _CHILD_ENV
    try:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            input=data,
            capture_output=True,
            timeout=limits.timeout_s,
            preexec_fn=_child_limits(limits),  # noqa: PLW1509 - only setrlimit calls, precomputed
            cwd=_PACKAGE_PARENT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed and reaped the child
        logger.info("PDF worker timed out after %g s", limits.timeout_s)
        raise _unreadable(f"reading it took longer than the {limits.timeout_s:g} s time limit") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("could not start the PDF worker: %s", exc)
        raise _unreadable("the PDF reader could not be started") from exc


def _result_of(completed: subprocess.CompletedProcess[bytes], limits: _Limits) -> ExtractedGuide:
    code = completed.returncode
    stderr_tail = completed.stderr[-2000:].decode("utf-8", "replace")
    if code != 0:
        logger.info("PDF worker exited with %d; stderr tail: %s", code, stderr_tail)
    if code < 0:
        raise _unreadable(_signal_reason(-code, limits))
    payload = _json_object(completed.stdout, limits)
    if code == EXIT_REFUSED and payload is not None and isinstance(payload.get("error"), str):
        reason = "".join(char for char in payload["error"] if char.isprintable())[:200]
        raise _unreadable(reason or "the file is damaged")
    if code != 0:
        if any(sign in stderr_tail for sign in _OUT_OF_MEMORY_SIGNS):
            raise _unreadable(f"it needs more than the {limits.max_memory_mb} MB memory limit")
        if "File too large" in stderr_tail:  # Python ignores SIGXFSZ: the write fails with EFBIG
            raise _unreadable(_signal_reason(signal.SIGXFSZ, limits))
        raise _unreadable(f"the PDF reader stopped unexpectedly (exit status {code})")
    guide = _guide_of(payload, limits) if payload is not None else None
    if guide is None:
        logger.warning("PDF worker returned malformed output (%d bytes)", len(completed.stdout))
        raise _unreadable("the PDF reader returned unreadable output")
    return guide


def _signal_reason(number: int, limits: _Limits) -> str:
    if number == signal.SIGXCPU:
        return f"reading it took longer than the {math.ceil(limits.timeout_s)} s CPU time limit"
    if number == signal.SIGXFSZ:
        return "the PDF reader tried to write a file and was stopped"
    if number == signal.SIGKILL:
        return "the PDF reader was stopped at its time or memory limit"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"the PDF reader crashed ({name})"


def _json_object(stdout: bytes, limits: _Limits) -> dict[str, Any] | None:
    if len(stdout) > 12 * limits.max_text_chars + 256 * 1024:
        return None
    try:
        payload = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def _string_list(value: object, max_items: int, max_chars: int) -> tuple[str, ...] | None:
    if not isinstance(value, list) or len(value) > max_items:
        return None
    if not all(isinstance(item, str) and 0 < len(item) <= max_chars for item in value):
        return None
    return tuple(value)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (JSON can carry them, UTF-8 cannot)
        return False
    return True


def _guide_of(payload: dict[str, Any], limits: _Limits) -> ExtractedGuide | None:
    """The worker's answer as an ExtractedGuide, or None unless every field is exactly as expected."""
    if set(payload) != {"text", "colors", "fonts", "pages", "warnings"}:
        return None
    text, pages = payload["text"], payload["pages"]
    colors = _string_list(payload["colors"], MAX_COLORS, 7)
    fonts = _string_list(payload["fonts"], MAX_FONTS, MAX_FONT_NAME)
    notes = _string_list(payload["warnings"], MAX_WARNINGS, MAX_WARNING_CHARS)
    if not isinstance(text, str) or len(text) > limits.max_text_chars or not _storable(text):
        return None
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
        return None
    if colors is None or fonts is None or notes is None:
        return None
    if not all(_HEX_CODE.fullmatch(color) for color in colors):
        return None
    return ExtractedGuide(text=text, colors=colors, fonts=fonts, pages=pages, warnings=notes)
