"""Shared fixtures: real servers on free ports, real SQLite files.

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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("AGENTWATCH_STRICT", "1")

REQUIRE_ALL = os.environ.get("AGENTWATCH_REQUIRE_ALL") == "1"
CHROMIUM = "/usr/bin/chromium"


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


class ServerProcess:
    """`agentwatch serve` in a child process, on 127.0.0.1 and a free port."""

    def __init__(
        self,
        db: str | Path,
        *extra_args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db = str(db)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(f"{self.db}.{self.port}.log") if "://" not in self.db else None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "agentwatch",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            self.db,
            *self.extra_args,
        ]
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


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    """Start extra servers; all are stopped at teardown."""
    started: list[ServerProcess] = []

    class _Factory(ServerProcess):
        def __init__(self, db: str | Path | None = None, *args: str, **kw: object) -> None:
            super().__init__(db or tmp_path / "agentwatch.db", *args, **kw)  # type: ignore[arg-type]
            started.append(self)

    yield _Factory
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory: type[ServerProcess]) -> ServerProcess:
    """A fresh `agentwatch serve` on its own SQLite file in tmp_path."""
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
