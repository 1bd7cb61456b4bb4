"""The PDF reader's sandbox itself: rlimits, environment, and every way a child can misbehave.

These tests swap the worker module for THIS file (run as ``python -m tests.brand_kits.
test_kit_pdf_sandbox``): its ``__main__`` block plays a hostile or broken worker, chosen by the word
after ``%PDF-`` in the input, so each failure path of :func:`extract_pdf_guide` runs for real.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import brand_kits.pdf_guide as pdf_guide
from brand_kits.errors import KitError
from brand_kits.pdf_guide import extract_pdf_guide

PROBE_MODULE = "tests.brand_kits.test_kit_pdf_sandbox"
OUR_PACKAGES = {"brand_kits", "studio", "storage", "training", "tests"}
GOOD_ANSWER = {"text": "ok", "colors": ["#1F3A93"], "fonts": ["Inter"], "pages": 1, "warnings": []}


def _refuse(observation: object) -> None:
    """Report an observation through the worker's refusal channel (exit 2 + {"error": ...})."""
    sys.stdout.write(json.dumps({"error": json.dumps(observation)}))
    sys.stdout.flush()
    os._exit(2)


def _probe() -> None:  # pragma: no cover - runs in the child
    words = sys.stdin.buffer.read().decode()[len("%PDF-") :].split()
    action, arguments = words[0], words[1:]
    if action == "limits":
        kinds = {"as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "fsize": resource.RLIMIT_FSIZE}
        kinds |= {"nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
        _refuse({name: resource.getrlimit(kind) for name, kind in kinds.items()} | {"argv": sys.argv[1:]})
    elif action == "env":
        _refuse(sorted(os.environ))
    elif action == "write":
        with open(arguments[0], "wb") as handle:
            handle.write(b"x" * 4096)
            handle.flush()
        _refuse("wrote the file")
    elif action == "files":
        handles = []
        try:
            while len(handles) < 1000:
                handles.append(open(os.devnull, "rb"))  # noqa: SIM115 - counting how many we get
        except OSError:
            pass
        _refuse(len(handles))
    elif action == "allocate":
        blocks = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GB: MemoryError under RLIMIT_AS
        _refuse(len(blocks))
    elif action == "spin":
        while True:
            pass
    elif action == "answer":
        sys.stdout.write(" ".join(arguments))
    elif action == "crash":
        sys.stdout.write(json.dumps(GOOD_ANSWER)[:20])  # partial output, then a crash
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSEGV)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_guide, "_WORKER_MODULE", PROBE_MODULE)


def _observation(action: str, **limits: float) -> object:
    with pytest.raises(KitError) as caught:
        extract_pdf_guide(b"%PDF-" + action.encode(), **limits)  # type: ignore[arg-type]
    reason = str(caught.value).removeprefix("could not read PDF: ").rsplit(";", 1)[0]
    return json.loads(reason)


@pytest.mark.usefixtures("probe")
def test_child_runs_under_the_requested_rlimits() -> None:
    seen = _observation("limits", timeout_s=7.5, max_memory_mb=300)
    assert isinstance(seen, dict)
    assert seen["as"] == [300 * 1024 * 1024] * 2
    assert seen["cpu"] == [8, 9]  # SIGXCPU at ceil(timeout), SIGKILL a second later
    assert seen["fsize"] == [0, 0] and seen["core"] == [0, 0]
    assert seen["nofile"][0] <= 32
    assert seen["argv"] == ["--max-pages", "200", "--max-text-chars", "50000", "--max-memory-mb", "300"]


@pytest.mark.usefixtures("probe")
def test_child_gets_no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAND_STUDIO_DATABASE_URL", "postgresql://user:secret@db/brand")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    seen = _observation("env")
    assert isinstance(seen, list)
    assert "BRAND_STUDIO_DATABASE_URL" not in seen and "HF_TOKEN" not in seen
    assert "PYTHONDONTWRITEBYTECODE" in seen and "OPENBLAS_NUM_THREADS" in seen


@pytest.mark.usefixtures("probe")
def test_child_cannot_write_files(tmp_path: Path) -> None:
    target = tmp_path / "escape.txt"
    with pytest.raises(KitError, match="tried to write a file"):
        extract_pdf_guide(b"%PDF-write " + str(target).encode())
    assert not target.exists() or target.stat().st_size == 0


@pytest.mark.usefixtures("probe")
def test_child_has_few_file_descriptors() -> None:
    opened = _observation("files")
    assert isinstance(opened, int) and opened < 32


@pytest.mark.usefixtures("probe")
def test_child_out_of_memory_is_a_clear_error() -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(KitError, match="more than the 256 MB memory limit"):
        extract_pdf_guide(b"%PDF-allocate", max_memory_mb=256)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024


@pytest.mark.usefixtures("probe")
def test_child_that_never_answers_is_killed_at_the_time_limit() -> None:
    started = time.monotonic()
    with pytest.raises(KitError, match=r"longer than the 0\.8 s time limit"):
        extract_pdf_guide(b"%PDF-spin", timeout_s=0.8)
    assert time.monotonic() - started < 0.8 + 5


@pytest.mark.usefixtures("probe")
def test_crash_after_partial_output_gives_no_partial_data() -> None:
    with pytest.raises(KitError, match="crashed"):
        extract_pdf_guide(b"%PDF-crash")


@pytest.mark.usefixtures("probe")
@pytest.mark.parametrize(
    "answer",
    ["not json", "[1, 2]", json.dumps(GOOD_ANSWER) + json.dumps(GOOD_ANSWER)],
    ids=["text", "list", "two"],
)
def test_a_child_answering_garbage_is_refused(answer: str) -> None:
    with pytest.raises(KitError, match="unreadable output"):
        extract_pdf_guide(b"%PDF-answer " + answer.encode())


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"colors": ["navy"]},
        {"colors": ["#1f3a93"]},
        {"colors": ["#000000"] * 13},
        {"pages": -1},
        {"pages": True},
        {"pages": 1.0},
        {"fonts": [""]},
        {"fonts": ["x" * 101]},
        {"text": "x" * 50_001},
        {"text": None},
        {"text": "lone \ud800 surrogate"},
        {"warnings": "one"},
        {"warnings": [7]},
    ],
)
def test_every_field_of_the_answer_is_checked(change: dict[str, object]) -> None:
    """Field checks without a child process: the same parser, fed a finished child's output."""
    limits = pdf_guide._check_limits(20.0, 512, 200, 50_000)
    answer = json.dumps(GOOD_ANSWER | change).encode()
    finished = subprocess.CompletedProcess(["worker"], 0, stdout=answer, stderr=b"")
    with pytest.raises(KitError, match="unreadable output"):
        pdf_guide._result_of(finished, limits)
    good = subprocess.CompletedProcess(["worker"], 0, stdout=json.dumps(GOOD_ANSWER).encode(), stderr=b"")
    assert pdf_guide._result_of(good, limits).colors == ("#1F3A93",)


@pytest.mark.usefixtures("probe")
def test_a_well_formed_answer_is_accepted() -> None:
    guide = extract_pdf_guide(b"%PDF-answer " + json.dumps(GOOD_ANSWER).replace(" ", "").encode())
    assert guide.colors == ("#1F3A93",) and guide.fonts == ("Inter",) and guide.text == "ok"


def test_missing_python_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(KitError, match="could not be started"):
        extract_pdf_guide(b"%PDF-1.7\n")


def test_worker_imports_nothing_of_ours_but_colours() -> None:
    source = Path(pdf_guide.__file__).with_name("pdf_worker.py").read_text(encoding="utf-8")
    ours = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            ours |= {alias.name for alias in node.names if alias.name.split(".")[0] in OUR_PACKAGES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OUR_PACKAGES:
            ours.add(node.module or "")
    assert ours == {"brand_kits.colors"}


if __name__ == "__main__":
    _probe()
