"""Shared fixtures: real servers on free ports, real SQLite files, real PostgreSQL.

The `server`, `server_factory` and `db_url` fixtures are parametrised over both
backends: each test runs once on a fresh SQLite file and once on a fresh
PostgreSQL database (created on 127.0.0.1:5432, or AGENTWATCH_TEST_PG, and
dropped afterwards), marked `postgres`.

AGENTWATCH_STRICT=1 makes the SDK re-raise its internal errors, so a bug in
telemetry code fails a test instead of hiding behind the never-break guard.
AGENTWATCH_REQUIRE_ALL=1 (set by CI) turns a skip for a missing browser or
PostgreSQL into a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import httpx
import hypothesis
import pytest

os.environ.setdefault("AGENTWATCH_STRICT", "1")

# Hypothesis profiles (tests/server/test_properties.py). Each example is a
# sequence of up to `stateful_step_count` steps against a live server, every
# step followed by a round of checks, so examples are few and short by
# default; `pytest --hypothesis-profile=long` runs a long search.
hypothesis.settings.register_profile(
    "agentwatch", max_examples=25, stateful_step_count=10, deadline=None
)
hypothesis.settings.register_profile(
    "ci", parent=hypothesis.settings.get_profile("agentwatch"), database=None, print_blob=True
)
hypothesis.settings.register_profile(
    "long", max_examples=500, stateful_step_count=20, deadline=None
)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "agentwatch")

REQUIRE_ALL = os.environ.get("AGENTWATCH_REQUIRE_ALL") == "1"
CHROMIUM = "/usr/bin/chromium"
# A maintenance database on the test PostgreSQL: fresh databases are made from here.
PG_ADMIN = os.environ.get("AGENTWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(condition: bool, reason: str) -> None:
    """Skip when `condition` is false, or fail under AGENTWATCH_REQUIRE_ALL=1."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required by AGENTWATCH_REQUIRE_ALL=1 but unavailable: {reason}")
    pytest.skip(reason)


@cache
def pg_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except Exception as e:  # not installed, not running, refused
        return f"PostgreSQL at {PG_ADMIN} unavailable: {str(e).strip().splitlines()[0]}"
    return None


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (or module); dropped after."""
    reason = pg_unavailable()
    need(reason is None, reason or "")
    name = f"aw_test_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def backend_db(backend: str, directory: Path) -> Iterator[str]:
    """A store location for `backend`: a SQLite file in `directory`, or a fresh
    PostgreSQL database URL."""
    if backend == "postgresql":
        with pg_database() as url:
            yield url
    else:
        yield str(directory / "agentwatch.db")


def serve_cmd(port: int, *args: str) -> list[str]:
    """The command line of `agentwatch serve` on 127.0.0.1:`port`, plus `args`."""
    return [
        sys.executable,
        "-m",
        "agentwatch",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]


class ServerProcess:
    """`agentwatch serve` in a child process, on 127.0.0.1 and a free port."""

    def __init__(
        self,
        db: str | Path,
        *extra_args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.db = str(db)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = Path(f"{self.db}.{self.port}.log")
        if "://" in self.db:
            self.log_path = (log_dir or Path(tempfile_dir())) / f"server.{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = serve_cmd(self.port, "--db", self.db, *self.extra_args)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s: {self.log()}")

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


# Tests under these directories run on both backends; elsewhere (SDK, browser,
# demo) the server is only a fixture and SQLite is enough.
BOTH_BACKENDS_UNDER = ("server", "store", "pg")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        here = Path(str(metafunc.definition.path)).resolve().relative_to(Path(__file__).parent)
        if here.parts[0] in BOTH_BACKENDS_UNDER:
            metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgresql" (parametrised over both under tests/server,
    tests/store and tests/pg)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store for this test: a SQLite file, or a new PostgreSQL database."""
    with backend_db(backend, tmp_path) as db:
        yield db


@pytest.fixture
def server_factory(db_url: str, tmp_path: Path) -> Iterator[type[ServerProcess]]:
    """Start extra servers (on this test's store unless given another); all
    are stopped at teardown."""
    started: list[ServerProcess] = []

    class _Factory(ServerProcess):
        def __init__(self, db: str | Path | None = None, *args: str, **kw: object) -> None:
            kw.setdefault("log_dir", tmp_path)
            super().__init__(db or db_url, *args, **kw)  # type: ignore[arg-type]
            started.append(self)

    yield _Factory
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory: type[ServerProcess]) -> ServerProcess:
    """A fresh `agentwatch serve` on its own store (SQLite file or PostgreSQL database)."""
    return server_factory().start()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    need(Path(CHROMIUM).exists(), f"{CHROMIUM} not installed (apt-get install -y chromium)")
    need(shutil.which("playwright") is not None or _has_playwright(), "playwright not installed")
    return CHROMIUM


def _has_playwright() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True
