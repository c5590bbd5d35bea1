"""Several `agentwatch serve` processes on one PostgreSQL database.

Each server streams what any server ingested (LISTEN/NOTIFY + tailing by seq),
concurrent ingest through both loses and doubles nothing, migrations run once
when servers start together, and killing one leaves the other serving.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from agentwatch.store.migrations import LATEST, MIGRATIONS
from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post, stored
from tests.server.test_stream import SseReader

pytestmark = pytest.mark.postgres


def start_all(servers: list[ServerProcess]) -> None:
    """Launch every server at once (racing for the migration), then wait for each."""
    for s in servers:
        s.proc = None
    threads = [threading.Thread(target=s.start) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in servers:
        assert s.proc is not None and s.proc.poll() is None, s.log()


def all_ids(url: str) -> list[str]:
    out: list[str] = []
    offset = 0
    while True:
        page = stored(url, offset=offset)
        out += [str(e["id"]) for e in page]
        if len(page) < 1000:
            return out
        offset += 1000


def test_servers_starting_together_migrate_once(
    pg_url: str, pg_servers: list[ServerProcess], tmp_path: Path
) -> None:
    servers = [ServerProcess(pg_url, log_dir=tmp_path) for _ in range(3)]
    pg_servers.extend(servers)
    start_all(servers)
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM agentwatch_schema")]
    assert sorted(versions) == [v for v, _, _ in MIGRATIONS] and max(versions) == LATEST
    for s in servers:
        assert "Traceback" not in s.log()
        h = httpx.get(s.url + "/api/health").json()
        assert h["backend"] == "postgresql" and h["events"] == 0


def test_two_servers_share_stream_and_data_and_survive_a_kill(
    pg_url: str, pg_servers: list[ServerProcess], tmp_path: Path
) -> None:
    a = ServerProcess(pg_url, log_dir=tmp_path)
    b = ServerProcess(pg_url, log_dir=tmp_path)
    pg_servers.extend([a, b])
    start_all([a, b])
    ra, rb = SseReader(a.url), SseReader(b.url)
    try:
        # 1. An event ingested through A shows on B's live stream (and A's).
        t0 = time.monotonic()
        assert post(a.url, [ev(id="via-a")]).status_code == 200
        assert [e["id"] for e in rb.wait_for(1)] == ["via-a"]
        print(f"A -> B stream latency: {1000 * (time.monotonic() - t0):.0f} ms")
        assert [e["id"] for e in ra.wait_for(1)] == ["via-a"]
        assert rb.events[0] == stored(b.url)[0]  # the same JSON as GET /api/events

        # 2. Ingest through both at once, every batch sent to BOTH servers (as a
        # client retrying against another server would): nothing lost, nothing doubled.
        batches = [[ev(id=f"b{b_}-{i}") for i in range(100)] for b_ in range(40)]
        errors: list[str] = []

        def send(url: str, order: list[list[dict]]) -> None:
            with httpx.Client(timeout=30) as c:
                for batch in order:
                    r = c.post(url + "/api/events", json={"events": batch})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text}")

        threads = [
            threading.Thread(target=send, args=(a.url, batches)),
            threading.Thread(target=send, args=(b.url, batches[::-1])),
            threading.Thread(target=send, args=(a.url, batches[1::2])),
            threading.Thread(target=send, args=(b.url, batches[::2])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        want = {"via-a"} | {str(e["id"]) for batch in batches for e in batch}
        for s in (a, b):
            ids = all_ids(s.url)
            assert len(ids) == len(set(ids)) == len(want) and set(ids) == want
            assert httpx.get(s.url + "/api/health").json()["events"] == len(want)
        sa = httpx.get(a.url + "/api/metrics/summary", params={"period": "1h"}).json()
        sb = httpx.get(b.url + "/api/metrics/summary", params={"period": "1h"}).json()
        assert sa == sb and sa["total_requests"] == len(want)  # rollups counted once
        # Each stream got every event exactly once, both in the same (commit) order.
        for r in (ra, rb):
            got = [str(e["id"]) for e in r.wait_for(len(want), timeout=30)]
            time.sleep(0.5)  # anything doubled would arrive now
            got = [str(e["id"]) for e in r.events]
            assert len(got) == len(set(got)) == len(want), (len(got), len(set(got)))
        assert [e["id"] for e in ra.events] == [e["id"] for e in rb.events]

        # 3. Kill A outright: B keeps ingesting, answering and streaming.
        a.kill()
        assert post(b.url, [ev(id="after-kill")]).status_code == 200
        assert rb.wait_for(len(want) + 1)[-1]["id"] == "after-kill"
        h = httpx.get(b.url + "/api/health").json()
        assert h["events"] == len(want) + 1
        # A restarted joins again and streams what B ingests.
        a.start()
        rc = SseReader(a.url)
        try:
            assert post(b.url, [ev(id="after-restart")]).status_code == 200
            assert [e["id"] for e in rc.wait_for(1)] == ["after-restart"]
        finally:
            rc.close()
    finally:
        ra.close()
        rb.close()


def test_serve_reads_db_url_from_environment(pg_url: str, tmp_path: Path) -> None:
    import os

    from tests.conftest import free_port, serve_cmd

    port = free_port()
    env = {**os.environ, "AGENTWATCH_DB": pg_url.replace("postgres@", "postgres:hunter2@")}
    p = subprocess.Popen(
        serve_cmd(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert p.stdout is not None
        banner = p.stdout.readline()
        assert "postgresql: postgresql://postgres:***@127.0.0.1" in banner, banner
        assert "hunter2" not in banner
        assert post(f"http://127.0.0.1:{port}", [ev(id="env")]).status_code == 200
    finally:
        p.terminate()
        p.wait(20)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id FROM events").fetchall() == [("env",)]
