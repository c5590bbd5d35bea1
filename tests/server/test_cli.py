"""`agentwatch serve` as a user runs it: help, errors, start banner, clean Ctrl+C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ServerProcess, free_port, serve_cmd
from tests.server.test_ingest import ev, post


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_serve_help_lists_brief_options() -> None:
    r = run("serve", "--help")
    assert r.returncode == 0
    for opt in ("--host", "--port", "--db", "0.0.0.0", "8787", "agentwatch.db", "AGENTWATCH_DB"):
        assert opt in r.stdout


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "agentwatch"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("agentwatch ")


def test_taken_port_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(tmp_path / "x.db"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert f"port {port} is already in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_db_is_one_line_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "agentwatch.db").mkdir()  # a directory where the file should be: cannot open
    for db in (str(tmp_path / "missing" / "x.db"), str(ro / "agentwatch.db")):
        r = run("serve", "--host", "127.0.0.1", "--port", str(free_port()), "--db", db)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip().count("\n") == 0, r.stderr
        assert "Traceback" not in r.stderr and "database" in r.stderr


def test_bad_price_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text('{"models": {"m": {"input": "cheap"}}}')
    r = run(
        "serve", "--port", str(free_port()), "--db", str(tmp_path / "x.db"), "--prices", str(bad)
    )
    assert r.returncode == 1 and "price file" in r.stderr and "Traceback" not in r.stderr


def test_env_db_is_honoured_and_banner_printed(tmp_path: Path) -> None:
    import os

    db = tmp_path / "from-env.db"
    port = free_port()
    env = {**os.environ, "AGENTWATCH_DB": str(db)}
    p = subprocess.Popen(
        serve_cmd(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert p.stdout is not None
        banner = p.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner and str(db) in banner
        # Let it finish starting before Ctrl+C, as a user would.
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(30)
    assert db.exists()


def test_ctrl_c_shuts_down_cleanly_with_nothing_lost(server: ServerProcess) -> None:
    batch = [ev() for _ in range(300)]
    assert post(server.url, batch).status_code == 200
    # an open live-stream client must not hold shutdown up
    with httpx.Client(timeout=5) as c, c.stream("GET", server.url + "/api/stream"):
        code = server.stop(signal.SIGINT, timeout=15)
    assert code == 0, server.log()
    assert "Traceback" not in server.log()
    server.start()
    assert httpx.get(server.url + "/api/health").json()["events"] == 300


def test_prune_deletes_old_events(server: ServerProcess) -> None:
    old = [ev(timestamp="2025-01-01T00:00:00+00:00") for _ in range(30)]
    new = [ev() for _ in range(5)]
    assert post(server.url, old + new).status_code == 200
    server.stop()
    r = run("prune", "--db", server.db, "--before", "2025-06-01")
    assert r.returncode == 0 and "deleted 30 events" in r.stdout
    server.start()
    assert httpx.get(server.url + "/api/health").json()["events"] == 5


def test_rebuild_rollups_command(server: ServerProcess) -> None:
    assert post(server.url, [ev() for _ in range(40)]).status_code == 200
    before = httpx.get(server.url + "/api/metrics/summary", params={"period": "1h"}).json()
    server.stop()
    r = run("rebuild-rollups", "--db", server.db)
    assert r.returncode == 0 and "from 40 events" in r.stdout
    server.start()
    after = httpx.get(server.url + "/api/metrics/summary", params={"period": "1h"}).json()
    assert after == before and after["total_requests"] == 40


def test_retention_days_deletes_old_events_while_serving(
    server_factory: type[ServerProcess],
) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    srv = server_factory().start()
    now = datetime.now(UTC)
    old = [ev(timestamp=(now - timedelta(days=5)).isoformat()) for _ in range(20)]
    new = [ev(timestamp=(now - timedelta(hours=1)).isoformat()) for _ in range(7)]
    assert post(srv.url, old + new).status_code == 200
    srv.stop()
    srv.extra_args += ["--retention-days", "2"]
    srv.start()
    deadline = time.monotonic() + 20
    while httpx.get(srv.url + "/api/health").json()["events"] != 7:
        assert time.monotonic() < deadline, "old events were not deleted"
        time.sleep(0.1)
    s = httpx.get(srv.url + "/api/metrics/summary", params={"period": "all"}).json()
    assert s["total_requests"] == 7  # the rollups went with them


def test_ctrl_c_during_startup_is_not_lost(tmp_path: Path) -> None:
    # SIGINT right after the banner, before uvicorn has its handlers: the
    # server must still stop (it used to keep running, the signal swallowed).
    for i in range(3):
        p = subprocess.Popen(
            serve_cmd(free_port(), "--db", str(tmp_path / f"s{i}.db")),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert p.stdout is not None
        p.stdout.readline()
        p.send_signal(signal.SIGINT)
        try:
            assert p.wait(30) == 0
        finally:
            p.kill()


def test_postgresql_without_its_driver_says_what_to_install(tmp_path: Path) -> None:
    """After a plain `pip install .` (no [postgres] extra) psycopg is missing:
    one line saying what to install, exit 1, no traceback."""
    fake = tmp_path / "nodriver" / "psycopg"
    fake.mkdir(parents=True)
    # What importing a package that is not installed does.
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\")\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    r = run("serve", "--port", str(free_port()), "--db", "postgresql://u@127.0.0.1:1/x", env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "pip install 'agentwatch[postgres]'" in lines[0], r.stderr
