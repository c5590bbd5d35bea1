"""Alerts with two servers on one PostgreSQL: one evaluates (a lease), one
notification per transition, and the other takes over when it dies."""

from __future__ import annotations

import httpx
import pytest

from tests.alert_receiver import Receiver, call, rule, wait_for
from tests.conftest import ServerProcess
from tests.server.test_alerts import next_evaluation
from tests.server.test_ingest import post

pytestmark = pytest.mark.postgres

FAST = ("--alert-interval", "1", "--alert-retry-base", "0.2")


def evaluating(s: ServerProcess) -> bool:
    return bool(httpx.get(s.url + "/api/alerts", timeout=10).json()["evaluating_here"])


def evaluations(s: ServerProcess, name: str, n: int) -> None:
    for _ in range(n):
        next_evaluation(s.url, name)


def test_two_servers_send_one_notification_and_take_over(
    pg_url: str, pg_servers: list[ServerProcess]
) -> None:
    rec = Receiver()
    try:
        a = ServerProcess(pg_url, *FAST)
        b = ServerProcess(pg_url, *FAST)
        pg_servers += [a, b]
        a.start()
        b.start()
        r = httpx.post(a.url + "/api/alerts", json=rule("shared", rec.url, threshold=0.05))
        assert r.status_code == 201
        assert post(b.url, [call("p", cost_usd=0.1)]).status_code == 200
        wait_for(lambda: rec.bodies("shared"), what="the firing notification")
        evaluations(a, "shared", 3)
        assert [x["state"] for x in rec.bodies("shared")] == ["firing"]
        # Exactly one of the two holds the lease.
        here = wait_for(lambda: [s for s in (a, b) if evaluating(s)], what="a lease holder")
        assert len(here) == 1
        (leader,) = here
        other = b if leader is a else a
        leader.kill()  # no release: the lease has to run out
        r = httpx.post(other.url + "/api/alerts", json=rule("after", rec.url, threshold=0.15))
        assert r.status_code == 201
        assert post(other.url, [call("p", cost_usd=0.1)]).status_code == 200
        wait_for(lambda: rec.bodies("after"), timeout=30, what="the survivor's notification")
        assert evaluating(other)
        evaluations(other, "after", 2)
        assert [x["state"] for x in rec.bodies("after")] == ["firing"]
        assert [x["state"] for x in rec.bodies("shared")] == ["firing"]
    finally:
        rec.close()
