"""The dashboard's queries in a reader process (server/reads.py, issue 10):
the same answers as the server's own, every acknowledged event seen at once,
and a reader that dies or outlives its server changes nothing."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from agentwatch.server.reads import MIN_LIFE_S
from tests.conftest import ServerProcess

QUERIES = [
    ("/api/metrics/summary", {"period": "7d"}),
    ("/api/metrics/summary", {"period": "24h", "agent_name": "a1"}),
    ("/api/metrics/timeseries", {"period": "24h"}),
    ("/api/metrics/timeseries", {"period": "7d", "model": "m2"}),
    ("/api/metrics/breakdown", {"group_by": "task_name", "period": "7d"}),
    ("/api/metrics/breakdown", {"group_by": "model", "period": "24h", "limit": 2}),
    ("/api/metrics/breakdown", {"group_by": "provider", "period": "7d"}),
    ("/api/events", {"limit": 50, "agent_name": "a2"}),
]


def events(n: int, now: float) -> list[dict[str, Any]]:
    return [
        {
            "agent_name": f"a{i % 3}",
            "task_name": f"t{i % 5}",
            "model": f"m{i % 4}",
            "provider": "openai",
            "input_tokens": i,
            "output_tokens": 2 * i,
            "latency_ms": 10.0 + i,
            "cost_usd": 0.001 * i,
            "status": "error" if i % 7 == 0 else "success",
            # now and the past days: rollups, the raw tail and a dirty day
            "timestamp": datetime.fromtimestamp(now - (i % 4) * 86_400 - i, UTC).isoformat(),
        }
        for i in range(n)
    ]


def wait_readers(srv: ServerProcess, up: int, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        r: dict[str, int] = httpx.get(srv.url + "/api/health").json()["readers"]
        if r["up"] == up or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def one(srv: ServerProcess, path: str, params: dict[str, Any], timeout: float = 30) -> Any:
    r = httpx.get(srv.url + path, params=params, timeout=timeout)
    assert r.status_code == 200, (path, r.text)
    body = r.json()
    return body["events"] if path == "/api/events" else body


def answers(srv: ServerProcess) -> list[Any]:
    return [one(srv, path, params) for path, params in QUERIES]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(d.name))
    return found


def gone(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_reader_answers_as_the_server_would(server_factory: type[ServerProcess]) -> None:
    srv = server_factory().start()
    assert wait_readers(srv, 1)["up"] == 1
    now = time.time()
    r = httpx.post(srv.url + "/api/events", json={"events": events(400, now)})
    assert r.status_code == 200
    by_reader = answers(srv)
    assert wait_readers(srv, 1)["answered"] >= len(QUERIES)
    srv.stop()

    alone = server_factory(None, "--read-workers", "0").start()
    assert wait_readers(alone, 0) == {"up": 0, "answered": 0}
    assert answers(alone) == by_reader


def test_what_was_acknowledged_is_read_at_once(server: ServerProcess) -> None:
    assert wait_readers(server, 1)["up"] == 1
    for i in range(5):
        name = f"new-agent-{i}"  # a name the reader's cache has never seen
        ev = {"agent_name": name, "task_name": "t", "model": "m", "input_tokens": 7}
        assert httpx.post(server.url + "/api/events", json={"events": [ev]}).status_code == 200
        s = httpx.get(
            server.url + "/api/metrics/summary", params={"period": "1h", "agent_name": name}
        ).json()
        assert (s["total_requests"], s["input_tokens"]) == (1, 7)
    assert wait_readers(server, 1)["answered"] >= 5


def test_a_dead_reader_changes_nothing_but_speed(server: ServerProcess) -> None:
    assert wait_readers(server, 1)["up"] == 1
    assert server.proc is not None
    before = answers(server)
    (first,) = children(server.proc.pid)
    os.kill(first, signal.SIGKILL)
    # Queries sent together, as a dashboard does: whichever finds the reader
    # dead, none may be left waiting for it (a hang ends in the client's
    # timeout).
    with ThreadPoolExecutor(len(QUERIES)) as pool:
        got = list(pool.map(lambda q: one(server, *q, timeout=10), QUERIES))
    assert got == before
    assert answers(server) == before
    # One that dies this young is not started again (its cause would repeat).
    assert wait_readers(server, 0)["up"] == 0
    assert children(server.proc.pid) == []


def test_a_reader_that_dies_later_is_replaced(server: ServerProcess) -> None:
    assert wait_readers(server, 1)["up"] == 1
    assert server.proc is not None
    (first,) = children(server.proc.pid)
    time.sleep(MIN_LIFE_S)
    os.kill(first, signal.SIGKILL)
    before = wait_readers(server, 1)["answered"]
    answers(server)  # the first query finds it dead, and a new one starts
    assert wait_readers(server, 1)["up"] == 1
    (second,) = children(server.proc.pid)
    assert second != first
    answers(server)
    assert wait_readers(server, 1)["answered"] > before


def test_the_reader_goes_with_a_killed_server(server: ServerProcess) -> None:
    assert wait_readers(server, 1)["up"] == 1
    assert server.proc is not None
    readers = children(server.proc.pid)
    assert readers
    server.kill()  # SIGKILL: the server cannot stop its reader
    deadline = time.monotonic() + 10
    while not all(gone(p) for p in readers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(p) for p in readers)
