"""The real app on a free local port with a fresh data dir, and Debian's headless Chromium driving it.

No browser is ever downloaded: Playwright launches the system ``chromium`` (``apt-get install chromium``).
Without one the tests skip, unless ``BRAND_STUDIO_REQUIRE_E2E=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
BROWSER_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]  # root in CI: no sandbox; small /dev/shm in containers
START_TIMEOUT_S = 120.0
LOCAL_HOSTS = ("127.0.0.1", "localhost")
VIEWPORT = (1400, 1000)
_ARTIFACTS = pytest.StashKey[list[Path]]()


def _missing(reason: str) -> None:
    if os.environ.get("BRAND_STUDIO_REQUIRE_E2E", "").strip() == "1":
        pytest.fail(f"{reason}, but BRAND_STUDIO_REQUIRE_E2E=1: the browser tests must run here", pytrace=False)
    pytest.skip(f"{reason}: browser tests skipped")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The system Chromium; the browser tests skip without one (install: apt-get install chromium)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing("no system Chromium on PATH (Debian/Ubuntu: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    assert path is not None
    return path


@pytest.fixture
def e2e_artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where screenshots and the downloaded pack go: $BRAND_STUDIO_E2E_ARTIFACTS, else the test's tmp dir."""
    configured = os.environ.get("BRAND_STUDIO_E2E_ARTIFACTS", "").strip()
    folder = Path(configured).resolve() if configured else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash.setdefault(_ARTIFACTS, []).append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for folder in config.stash.get(_ARTIFACTS, []):
        terminalreporter.write_line(f"browser journey screenshots: {folder}")


# ------------------------------------------------------------------------------------------ the server


@dataclass
class AppServer:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(server: AppServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"streamlit exited with {server.process.returncode}:\n{server.log_tail()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit did not answer /_stcore/health in {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}",
                pytrace=False)  # fmt: skip


def _app_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment minus any BRAND_STUDIO_* (a developer's database URL, model ...), plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAND_STUDIO_")}
    env.update(
        BRAND_STUDIO_DATA_DIR=str(data_dir), BRAND_STUDIO_BASE_MODEL="builtin:demo",
        BRAND_STUDIO_VALIDATION_IMAGES="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


def _stop_tree(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    """Stop streamlit and everything it started. The training worker runs in its own session (it must
    outlive a closed page), so a process-group kill would miss it: collect the descendants first, and
    the pids the workers wrote into their liveness files too."""
    import psutil  # a dependency of accelerate, hence always installed with the studio

    try:
        procs = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for alive_file in (data_dir / "workers").glob("*.json"):
        try:
            pid = int(json.loads(alive_file.read_text())["pid"])
            worker = psutil.Process(pid)
            if "studio.worker" in " ".join(worker.cmdline()) and worker not in procs:
                procs.append(worker)
        except (ValueError, KeyError, OSError, psutil.Error):
            continue
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, survivors = psutil.wait_procs(procs, timeout=20)
    for proc in survivors:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(survivors, timeout=10)
    process.wait(timeout=10)


@pytest.fixture
def studio_app(chromium_executable: str, tmp_path: Path) -> Iterator[AppServer]:
    """``streamlit run streamlit_app.py`` (the flags of ``make run``, its default model: the built-in
    demo model) on a fresh data dir and a free port."""
    data_dir = tmp_path / "data"
    port = _free_port()
    log = tmp_path / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=_app_env(data_dir), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    server = AppServer(url=f"http://127.0.0.1:{port}", data_dir=data_dir, log=log, process=process)
    try:
        _wait_healthy(server)
        yield server
    finally:
        _stop_tree(process, data_dir)


# ----------------------------------------------------------------------------------------- the browser


@dataclass
class BrowserProblems:
    """What the browser saw go wrong so far (the test fails on any): console errors, uncaught page
    errors, failed requests and requests to any host but the local server."""

    messages: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.messages.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.messages.append(f"page error: {exc}"))
        page.on("requestfailed", self._request_failed)
        page.on("request", lambda r: self.messages.append(f"outside call (the app must make none): {r.url}")
                if _outside(r.url) else None)  # fmt: skip

    def _request_failed(self, request: Any) -> None:
        # A local load cancelled because a rerun replaced its element is not a failure (a missing
        # file is still caught: the console reports it as an error).
        if _outside(request.url) or "ERR_ABORTED" not in (request.failure or ""):
            self.messages.append(f"request failed: {request.url} ({request.failure})")


def _outside(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS


@pytest.fixture
def browser_page(chromium_executable: str) -> Iterator[tuple[Any, BrowserProblems]]:
    """A fresh page in headless system Chromium whose problems are recorded (see BrowserProblems)."""
    from playwright.sync_api import sync_playwright

    problems = BrowserProblems()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=BROWSER_ARGS)
        try:
            context = browser.new_context(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]},
                                          accept_downloads=True)  # fmt: skip
            page = context.new_page()
            problems.watch(page)
            yield page, problems
            context.close()
        finally:
            browser.close()
