"""PostgreSQL going away while serving: 503s with a clear message, recovery by
itself, and no acknowledged event lost. Also the start-up errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, free_port, pg_admin
from tests.server.test_ingest import ev, post, stored
from tests.server.test_stream import SseReader

pytestmark = pytest.mark.postgres


def block(dbname: str, allow: bool) -> None:
    """Make the database refuse (or accept again) connections, and cut the
    existing ones: to the server, the same as PostgreSQL going down."""
    pg_admin(f"ALTER DATABASE {dbname} WITH ALLOW_CONNECTIONS {str(allow).lower()}")
    if not allow:
        pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
        )


def test_database_outage_gives_503_then_recovers_losing_nothing(
    pg_url: str, pg_servers: list[ServerProcess], tmp_path: Path
) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    srv = ServerProcess(pg_url, log_dir=tmp_path)
    pg_servers.append(srv)
    srv.start()
    reader = SseReader(srv.url)
    acked = [f"before-{i}" for i in range(50)]
    try:
        assert post(srv.url, [ev(id=i) for i in acked]).status_code == 200
        block(dbname, allow=False)
        try:
            r = post(srv.url, [ev(id="during")])
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["detail"].startswith("storage unavailable: ")
            assert "INSERT" not in r.text  # the driver's message, not the SQL
            for path in ("/api/metrics/summary", "/api/events", "/api/health"):
                q = httpx.get(srv.url + path, timeout=30)
                assert q.status_code == 503, (path, q.status_code, q.text)
                assert q.json()["detail"].startswith("storage unavailable: ")
        finally:
            block(dbname, allow=True)
        # Back by itself: the client's retry (what the SDK does) now succeeds.
        deadline = time.monotonic() + 30
        while (r := post(srv.url, [ev(id="during")])).status_code != 200:
            assert r.status_code == 503 and time.monotonic() < deadline, r.text
            time.sleep(0.2)
        acked.append("during")
        assert post(srv.url, [ev(id="after")]).status_code == 200
        acked.append("after")
        assert {e["id"] for e in stored(srv.url)} == set(acked)
        s = httpx.get(srv.url + "/api/metrics/summary", params={"period": "1h"}).json()
        assert s["total_requests"] == len(acked)
        # The live stream reconnected too and carries on, nothing twice.
        got = [e["id"] for e in reader.wait_for(len(acked), timeout=15)]
        time.sleep(0.3)
        got = [e["id"] for e in reader.events]
        assert got[-2:] == ["during", "after"] and len(got) == len(set(got))
    finally:
        reader.close()
    assert "Traceback" not in srv.log()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://aw:s3cret@127.0.0.1:{port}/agentwatch", "Connection refused"),
        ("postgresql://no_such_role:s3cret@127.0.0.1:5432/test", 'role "no_such_role"'),
        ("postgresql://postgres:s3cret@127.0.0.1:5432/no_such_db", 'database "no_such_db"'),
    ],
)
def test_unreachable_or_refused_database_is_one_line_error(url: str, says: str) -> None:
    url = url.format(port=free_port())  # a port nobody listens on
    r = run("serve", "--host", "127.0.0.1", "--port", str(free_port()), "--db", url)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err and "s3cret" not in err and "s3cret" not in r.stdout
    assert "127.0.0.1" in err and says in err, err
