"""The sender's bounds: one event a server refuses forever, a server that never answers.

These servers are real HTTP servers on free ports, but not AgentWatch: they
answer the way a server with a bug (or behind a broken proxy) would, which the
real one is built never to do. tests/sdk/test_sender.py covers the real server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import JudgingServer, SilentServer

import agentwatch
from tests.sdk.conftest import run_py

POISON = "poison"


@pytest.fixture
def judging() -> Iterator[Callable[[Any], JudgingServer]]:
    made: list[JudgingServer] = []

    def make(judge: Any) -> JudgingServer:
        made.append(JudgingServer(judge))
        return made[-1]

    yield make
    for s in made:
        s.close()


def poisoned(events: list[dict[str, Any]]) -> list[int]:
    return [i for i, e in enumerate(events) if e["task_name"] == POISON]


def test_one_event_refused_forever_holds_up_nothing(
    judging: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """422 for any batch holding the poison event: all 10,000 good ones behind it arrive."""

    def judge(events: list[dict[str, Any]], headers: dict[str, str]) -> tuple[int, Any]:
        bad = poisoned(events)
        if bad:
            detail = [{"index": i, "field": "metadata", "message": "poisoned"} for i in bad]
            return 422, {"detail": detail}
        return 200, {"status": "ok", "count": len(events)}

    srv = judging(judge)
    # The queue must hold all 10,001 at once: they are logged faster than sent.
    agentwatch.init(server_url=srv.url, auto_patch=False, max_queue=20_000)
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        agentwatch.log_event(model="m", task_name=POISON)
        for i in range(10_000):
            agentwatch.log_event(model="m", task_name="good", input_tokens=i)
        assert agentwatch.flush(120)
    assert sorted(e["input_tokens"] for e in srv.accepted.values()) == list(range(10_000))
    st = agentwatch.stats()
    assert (st["sent"], st["dropped_rejected"], st["queued"]) == (10_000, 1, 0)
    warned = [r.getMessage() for r in caplog.records if "will not accept" in r.getMessage()]
    assert len(warned) == 1 and "poisoned" in warned[0]  # the server's reason, once


def test_a_batch_failing_with_5xx_is_dropped_in_bounded_time(
    judging: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """503 forever for the poison's batch: it is dropped after the age bound; the rest arrive."""

    def judge(events: list[dict[str, Any]], headers: dict[str, str]) -> tuple[int, Any]:
        if poisoned(events):
            return 503, {"detail": "database is locked"}
        return 200, {"status": "ok", "count": len(events)}

    srv = judging(judge)
    client = agentwatch.init(server_url=srv.url, auto_patch=False, batch_size=10)
    client._sender.failing_batch_max_age_s = 1.0  # 60 s in production: too long for a test
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        agentwatch.log_event(model="m", task_name=POISON)
        for i in range(109):
            agentwatch.log_event(model="m", task_name="good", input_tokens=i)
        assert agentwatch.flush(60)
    assert time.monotonic() - t0 < 30
    # The poison's batch (the first ten events) is lost with it; every later one arrives.
    assert sorted(e["input_tokens"] for e in srv.accepted.values()) == list(range(9, 109))
    st = agentwatch.stats()
    assert (st["sent"], st["dropped_rejected"]) == (100, 10)
    assert st["retries"] >= 2
    (warned,) = [r.getMessage() for r in caplog.records if "kept failing" in r.getMessage()]
    assert "database is locked" in warned and "dropped 10 event(s)" in warned


def test_other_4xx_drop_the_batch_without_bisecting(judging: Any) -> None:
    """A 404 (a wrong server_url path) says nothing about the events: no bisection storm."""
    srv = judging(lambda events, headers: (404, {"detail": "Not Found"}))
    agentwatch.init(server_url=srv.url + "/wrong", auto_patch=False, batch_size=50)
    for _ in range(100):
        agentwatch.log_event(model="m")
    assert agentwatch.flush(30)
    st = agentwatch.stats()
    assert (st["sent"], st["dropped_rejected"]) == (0, 100)
    assert srv.requests == 2 and st["last_error"] == "404 Not Found"


def test_shutdown_with_a_server_that_never_answers_is_bounded_and_counted() -> None:
    silent = SilentServer()
    try:
        r = run_py(
            f"""
            import json, time, agentwatch
            c = agentwatch.init(server_url="{silent.url}", shutdown_timeout=1.0, auto_patch=False)
            for i in range(9_900):
                agentwatch.log_event(model="m", input_tokens=i)
            time.sleep(0.3)  # the first POST is now waiting for an answer
            t0 = time.monotonic()
            done = agentwatch.shutdown()
            took = time.monotonic() - t0
            print(json.dumps({{"done": done, "took": took, "stats": c.stats()}}))
            """
        )
    finally:
        silent.close()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["took"] < 1.0 + 0.25 + 0.5  # the deadline, the grace, a margin for a busy CPU
    st = out["stats"]
    assert (st["sent"], st["dropped_shutdown"], st["queued"]) == (0, 9_900, 0)
    assert "9900 event(s) not sent before shutdown timeout" in r.stderr


def test_stats_after_shutdown_count_what_was_left() -> None:
    silent = SilentServer()
    try:
        client = agentwatch.AgentWatch(server_url=silent.url, shutdown_timeout=0.5)
        for i in range(500):
            client.log_event(model="m", input_tokens=i)
        time.sleep(0.3)
        t0 = time.monotonic()
        client.shutdown()
        took = time.monotonic() - t0
    finally:
        silent.close()
    st = client.stats()
    assert took < 0.5 + 0.25 + 0.5
    assert (st["sent"], st["dropped_shutdown"], st["queued"]) == (0, 500, 0)
