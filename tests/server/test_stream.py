"""GET /api/stream: real SSE clients over real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlparse

import httpx

from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post


class SseReader:
    """Reads an SSE stream on a thread, collecting data payloads and comments."""

    def __init__(self, url: str) -> None:
        self.events: list[dict] = []
        self.raw: list[str] = []
        self.closed = threading.Event()
        self.ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=60))
        self._t = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._t.start()
        assert self.ready.wait(10), "stream did not open"

    def _run(self, url: str) -> None:
        try:
            with self._client.stream("GET", url + "/api/stream") as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    self.raw.append(line)
                    if line.startswith(": connected"):
                        self.ready.set()
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except httpx.HTTPError:
            pass
        finally:
            self.closed.set()

    def wait_for(self, n: int, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events

    def close(self) -> None:
        self._client.close()


def test_events_arrive_in_ingest_order_with_retry_hint(server: ServerProcess) -> None:
    reader = SseReader(server.url)
    try:
        assert reader.raw[0] == "retry: 3000"
        batches = [[ev(id=f"b{b}-{i}", metadata={"n": i}) for i in range(20)] for b in range(5)]
        for b in batches:
            assert post(server.url, b).status_code == 200
        got = reader.wait_for(100)
        assert [e["id"] for e in got] == [e["id"] for b in batches for e in b]
        first = got[0]
        assert first["metadata"] == {"n": 0} and first["cost_usd"] > 0
        assert first["timestamp"].endswith("+00:00")
        # A retried batch is not streamed again.
        assert post(server.url, batches[0]).status_code == 200
        assert post(server.url, [ev(id="after")]).status_code == 200
        got = reader.wait_for(101)
        time.sleep(0.3)
        assert [e["id"] for e in reader.events[100:]] == ["after"]
    finally:
        reader.close()


def test_stalled_client_is_dropped_and_slows_nobody(server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--sse-buffer", "50").start()
    u = urlparse(srv.url)
    # A client that connects and then never reads a byte.
    stalled = socket.create_connection((u.hostname, u.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reader = SseReader(srv.url)
    try:
        deadline = time.monotonic() + 10
        while httpx.get(srv.url + "/api/health").json()["live_clients"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        big = "x" * 2000  # fill the stalled socket's buffers quickly
        total = 0
        for b in range(40):
            batch = [ev(id=f"s{b}-{i}", metadata={"pad": big}) for i in range(50)]
            r = post(srv.url, batch)
            assert r.status_code == 200
            total += len(batch)
        got = reader.wait_for(total, timeout=30)
        assert len(got) == total  # the healthy client got everything
        deadline = time.monotonic() + 10
        while httpx.get(srv.url + "/api/health").json()["live_clients"] != 1:
            assert time.monotonic() < deadline, "stalled client was never dropped"
            time.sleep(0.05)
    finally:
        stalled.close()
        reader.close()


def test_keepalive_comment_when_idle(server: ServerProcess) -> None:
    reader = SseReader(server.url)
    try:
        deadline = time.monotonic() + 14  # the server pings every 10 s
        while ": ping" not in reader.raw and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ": ping" in reader.raw
    finally:
        reader.close()


def test_burst_larger_than_buffer_keeps_a_healthy_client(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory(None, "--sse-buffer", "50").start()
    reader = SseReader(srv.url)
    try:
        for b in range(3):  # each commit is 10x the per-client buffer
            batch = [ev(id=f"burst{b}-{i}") for i in range(500)]
            assert post(srv.url, batch).status_code == 200
            assert len(reader.wait_for(500 * (b + 1), timeout=30)) == 500 * (b + 1)
        assert not reader.closed.is_set()
        assert httpx.get(srv.url + "/api/health").json()["live_clients"] == 1
    finally:
        reader.close()
