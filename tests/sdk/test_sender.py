"""The sender against the REAL AgentWatch server: down, slow, 500-then-200, 422, 413, exit, fork.

Faults come from a small HTTP proxy placed in front of the real server; the
server itself is never faked.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fakes import JSONHandler, LocalServer

import agentwatch
from tests.sdk.conftest import run_py

Action = Callable[[int, dict[str, Any]], "tuple[str, Any] | None"]


class FaultProxy(LocalServer):
    """Forwards POST /api/events to the real server; `plan(n, body)` may inject a fault.

    plan returns None (forward), ("status", code) (answer without forwarding),
    ("forward-then-status", code) (the server commits, the client sees an error),
    or ("delay", seconds) (forward after sleeping).
    """

    def __init__(self, upstream: str, plan: Action) -> None:
        up = urlsplit(upstream)
        self.requests: list[dict[str, Any]] = []
        proxy = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                n = len(proxy.requests)
                proxy.requests.append(body)
                action = plan(n, body)
                if action is not None and action[0] == "status":
                    return self.answer(action[1], b'{"detail":"injected"}')
                if action is not None and action[0] == "delay":
                    time.sleep(action[1])
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=30)
                conn.request("POST", self.path, raw, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if action is not None and action[0] == "forward-then-status":
                    return self.answer(action[1], b'{"detail":"lost response"}')
                self.answer(resp.status, data)

        super().__init__(Handler)


@pytest.fixture
def proxy_factory() -> Iterator[Callable[[str, Action], FaultProxy]]:
    made: list[FaultProxy] = []

    def make(upstream: str, plan: Action) -> FaultProxy:
        p = FaultProxy(upstream, plan)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def stored(url: str, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(url + "/api/events", params={"limit": 1000, **params}, timeout=10)
    r.raise_for_status()
    return list(r.json()["events"])


def test_delivers_to_real_server(server: Any) -> None:
    agentwatch.init(server_url=server.url, agent="a", task="t", auto_patch=False)
    for i in range(250):  # several batches
        agentwatch.log_event(model="gpt-4o", input_tokens=i, metadata={"i": i})
    assert agentwatch.flush(20)
    evs = stored(server.url)
    assert len(evs) == 250
    assert sorted(e["metadata"]["i"] for e in evs) == list(range(250))
    st = agentwatch.stats()
    assert st["sent"] == 250 and st["batches"] >= 3 and st["dropped_queue_full"] == 0


def test_server_down_then_up(server_factory: Any) -> None:
    srv = server_factory()  # not started yet: its port is closed
    agentwatch.init(server_url=srv.url, auto_patch=False)
    for _ in range(5):
        agentwatch.log_event(model="m", task_name="while-down")
    assert agentwatch.flush(1.0) is False  # cannot deliver yet, and does not hang
    st = agentwatch.stats()
    assert st["sent"] == 0 and st["retries"] >= 1 and st["last_error"]
    srv.start()
    assert agentwatch.flush(60)
    assert len(stored(srv.url, task_name="while-down")) == 5
    assert agentwatch.stats()["sent"] == 5


def test_500_after_commit_is_retried_and_stored_once(server: Any, proxy_factory: Any) -> None:
    # The first two answers are lost after the server committed: the SDK must retry
    # and the server's idempotent ingest must keep exactly one copy.
    proxy = proxy_factory(server.url, lambda n, b: ("forward-then-status", 500) if n < 2 else None)
    agentwatch.init(server_url=proxy.url, auto_patch=False)
    for i in range(3):
        agentwatch.log_event(model="m", task_name="retry", metadata={"i": i})
    assert agentwatch.flush(60)
    assert len(proxy.requests) >= 3
    assert proxy.requests[0]["events"] == proxy.requests[-1]["events"]  # same ids resent
    evs = stored(server.url, task_name="retry")
    assert sorted(e["metadata"]["i"] for e in evs) == [0, 1, 2]
    assert agentwatch.stats()["retries"] >= 2


def test_429_and_503_are_retried(server: Any, proxy_factory: Any) -> None:
    codes = {0: 429, 1: 503}
    proxy = proxy_factory(server.url, lambda n, b: ("status", codes[n]) if n in codes else None)
    agentwatch.init(server_url=proxy.url, auto_patch=False)
    agentwatch.log_event(model="m", task_name="throttled")
    assert agentwatch.flush(60)
    assert len(stored(server.url, task_name="throttled")) == 1


def test_slow_server(server: Any, proxy_factory: Any) -> None:
    proxy = proxy_factory(server.url, lambda n, b: ("delay", 1.0))
    agentwatch.init(server_url=proxy.url, auto_patch=False, batch_size=10)
    for _ in range(30):
        assert agentwatch.log_event(model="m", task_name="slow")
    assert agentwatch.flush(60)
    assert len(stored(server.url, task_name="slow")) == 30


def test_422_isolates_bad_event(
    server: Any, proxy_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = proxy_factory(server.url, lambda n, b: None)
    agentwatch.init(server_url=proxy.url, auto_patch=False, batch_size=100)
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        for i in range(7):
            agentwatch.log_event(model="m", task_name="mixed", input_tokens=i)
        # Invalid in ways only the server knows (the SDK checks types, not its limits).
        agentwatch.log_event(model="m", task_name="mixed", user_id="u" * 300)  # over 256
        agentwatch.log_event(model="", task_name="mixed", kind="llm")  # invalid: llm needs model
        assert agentwatch.flush(30)
    evs = stored(server.url, task_name="mixed")
    assert sorted(e["input_tokens"] for e in evs) == list(range(7))
    st = agentwatch.stats()
    assert st["dropped_rejected"] == 2 and st["sent"] == 7
    assert any("will not accept" in r.getMessage() for r in caplog.records)


def test_413_splits_batch(server: Any, proxy_factory: Any) -> None:
    proxy = proxy_factory(
        server.url, lambda n, b: ("status", 413) if len(b["events"]) > 4 else None
    )
    agentwatch.init(server_url=proxy.url, auto_patch=False, batch_size=16)
    for i in range(16):
        agentwatch.log_event(model="m", task_name="big", input_tokens=i)
    assert agentwatch.flush(30)
    assert len(stored(server.url, task_name="big")) == 16
    assert agentwatch.stats()["dropped_rejected"] == 0


def test_exit_with_dead_server_is_bounded() -> None:
    r = run_py(
        """
        import time, agentwatch
        agentwatch.init(server_url="http://127.0.0.1:9", shutdown_timeout=1.0, auto_patch=False)
        for _ in range(1000):
            agentwatch.log_event(model="m")
        t0 = time.monotonic()
        """,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "not sent before shutdown timeout" in r.stderr


def test_exit_with_hung_server_is_bounded() -> None:
    from fakes import SlowHTTPProvider

    hung = SlowHTTPProvider(delay=60)  # accepts, never answers in time
    try:
        r = run_py(
            f"""
            import agentwatch
            agentwatch.init(server_url="{hung.url}", shutdown_timeout=1.0, auto_patch=False)
            agentwatch.log_event(model="m")
            """,
            timeout=30,
        )
    finally:
        hung.close()
    assert r.returncode == 0, r.stderr


def test_exit_flushes_pending_events(server: Any) -> None:
    r = run_py(
        f"""
        import agentwatch
        agentwatch.init(server_url="{server.url}", flush_interval=60, auto_patch=False)
        for i in range(20):
            agentwatch.log_event(model="m", task_name="at-exit")
        """
    )
    assert r.returncode == 0, r.stderr
    assert len(stored(server.url, task_name="at-exit")) == 20


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_has_its_own_sender(server: Any) -> None:
    r = run_py(
        f"""
        import os, agentwatch
        agentwatch.init(server_url="{server.url}", auto_patch=False)
        agentwatch.log_event(model="m", task_name="parent-before")
        assert agentwatch.flush(20)
        agentwatch.log_event(model="m", task_name="parent-queued")  # not yet sent at fork
        pid = os.fork()
        if pid == 0:
            agentwatch.log_event(model="m", task_name="child")
            ok = agentwatch.flush(20)
            st = agentwatch.stats()
            os._exit(0 if ok and st["sent"] == 1 else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        agentwatch.log_event(model="m", task_name="parent-after")
        assert agentwatch.flush(20)
        """
    )
    assert r.returncode == 0, r.stderr
    names = sorted(e["task_name"] for e in stored(server.url))
    # Each event exactly once: the child did not resend the parent's queue.
    assert names == ["child", "parent-after", "parent-before", "parent-queued"]


def test_log_event_never_blocks_on_network(server: Any, proxy_factory: Any) -> None:
    """With the sender stuck on a slow server, the caller still enqueues at once."""
    gate = threading.Event()
    proxy = proxy_factory(server.url, lambda n, b: (gate.wait(30), None)[1])
    agentwatch.init(server_url=proxy.url, auto_patch=False, batch_size=1)
    agentwatch.log_event(model="m", task_name="blocked")
    results = [agentwatch.log_event(model="m", task_name="blocked") for _ in range(50)]
    assert all(results)  # all accepted while the first POST hangs
    gate.set()
    assert agentwatch.flush(60)
    assert len(stored(server.url, task_name="blocked")) == 51
