"""A throwaway PostgreSQL server for the storage tests: initdb into a temp dir, start, stop, delete.

The server listens on a free localhost port with its unix socket in the same temp dir, runs with
``fsync=off`` (its data is thrown away), trusts local connections, and gets one fresh database per
test (:meth:`PostgresServer.create_database`). PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (Debian's package creates it) through ``runuser``.

:func:`find_pg_bin` returns why no server can be started instead of raising, so the fixture can
skip (or fail, with ``BRAND_STUDIO_REQUIRE_POSTGRES=1``) with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

REQUIRE_ENV = "BRAND_STUDIO_REQUIRE_POSTGRES"
SUPERUSER = "brand_test"
_RUN_AS = "postgres"
_START_TIMEOUT_S = 60


def require_postgres() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def find_pg_bin() -> tuple[Path | None, str]:
    """The folder holding initdb, pg_ctl and postgres (PATH first, then Debian's), or None and why."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0), reverse=True
    )
    candidates += [Path(p) for p in versions]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder, ""
    return None, (
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under "
        "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path = field(init=False)
    port: int = field(init=False, default=0)
    _names: count[int] = field(init=False, default_factory=lambda: count(1))
    _user: pwd.struct_passwd | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam(_RUN_AS)
            except KeyError as err:
                raise RuntimeError(
                    f"running as root and there is no {_RUN_AS!r} user to run PostgreSQL as "
                    "(PostgreSQL refuses to run as root); install Debian's postgresql package or run "
                    "the tests as an ordinary user"
                ) from err
        # Not under pytest's tmp_path: that folder is private to root, and the server user needs it.
        self.root = Path(tempfile.mkdtemp(prefix="brand-studio-pg-"))
        self.root.chmod(0o700)
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _run(self, *argv: str, timeout: float = _START_TIMEOUT_S) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        done = subprocess.run(
            command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--no-locale", "--no-sync", "--no-instructions")  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        for _ in range(3):  # the free port can be taken between choosing and binding it
            self.port = _free_port()
            try:
                self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                          "-t", str(_START_TIMEOUT_S), "-o", f"{options} -p {self.port}")  # fmt: skip
                return self
            except RuntimeError:
                if "could not bind" not in self._log_tail():
                    raise
        raise RuntimeError(f"PostgreSQL could not bind a free port; see {self.log_file}")

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as connection:  # fmt: skip
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)
