"""Alerts (issue 13) against a real server (--alert-interval 1) and a real
local webhook receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.alert_receiver import Receiver, alerts, call, rule, verify, wait_for
from tests.conftest import ServerProcess
from tests.server.test_auth import bearer, create_key
from tests.server.test_ingest import post

FAST = ("--alert-interval", "1", "--alert-retry-base", "0.2")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fast(server_factory: type[ServerProcess]) -> ServerProcess:
    return server_factory(None, *FAST).start()


def create(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = httpx.post(url + "/api/alerts", json=body, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def summary(url: str, agent: str) -> dict[str, Any]:
    r = httpx.get(url + "/api/metrics/summary", params={"period": "1h", "agent_name": agent})
    return r.json()  # type: ignore[no-any-return]


def next_evaluation(url: str, name: str) -> None:
    """Wait until the rule has been evaluated again."""
    seen = alerts(url)[name]["evaluated_at"] or ""
    wait_for(lambda: (alerts(url)[name]["evaluated_at"] or "") > seen, what="an evaluation")


def test_bad_rules_get_422_naming_the_field(fast: ServerProcess, receiver: Receiver) -> None:
    good = rule("fine", receiver.url)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "metric": "dollars"}, "metric"),
        ({k: v for k, v in good.items() if k != "threshold"}, "threshold"),
        ({**good, "window": "2h"}, "window"),
        ({**good, "webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({**good, "webhook_url": "not a url"}, "webhook_url"),
        ({**good, "operator": "=="}, "operator"),
        ({**good, "filters": {"provider": "openai"}}, "filters"),
    ]
    for body, field in cases:
        r = httpx.post(fast.url + "/api/alerts", json=body)
        assert r.status_code == 422, (field, r.text)
        locs = [e["loc"] for e in r.json()["detail"]]
        assert any(field in loc for loc in locs), (field, locs)
    assert alerts(fast.url) == {}  # nothing half-made
    made = create(fast.url, good)
    assert httpx.post(fast.url + "/api/alerts", json=good).status_code == 409
    r = httpx.patch(fast.url + f"/api/alerts/{made['id']}", json={"window": "3h"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "window"
    r = httpx.patch(fast.url + f"/api/alerts/{made['id']}", json={"threshold": None})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "threshold"
    assert httpx.get(fast.url + "/api/alerts/999").status_code == 404


def test_crud_round_trip(fast: ServerProcess, receiver: Receiver) -> None:
    made = create(fast.url, rule("crud", receiver.url, secret="s3", filters={"model": "m"}))
    assert made["has_secret"] is True and "secret" not in made
    assert made["filters"] == {"model": "m"}
    rid = made["id"]
    r = httpx.patch(fast.url + f"/api/alerts/{rid}", json={"threshold": 2, "secret": None})
    assert r.status_code == 200
    assert r.json()["threshold"] == 2 and r.json()["has_secret"] is False
    assert httpx.get(fast.url + f"/api/alerts/{rid}").json()["threshold"] == 2
    assert httpx.delete(fast.url + f"/api/alerts/{rid}").status_code == 200
    assert httpx.get(fast.url + f"/api/alerts/{rid}").status_code == 404
    assert httpx.delete(fast.url + f"/api/alerts/{rid}").status_code == 404


def test_each_metric_fires_and_resolves_with_the_right_value(
    fast: ServerProcess, receiver: Receiver
) -> None:
    run = str(uuid.uuid4())
    evs = (
        [call("a-cost", cost_usd=0.2) for _ in range(3)]
        + [call("a-req") for _ in range(3)]
        + [call("a-tok", input_tokens=100, output_tokens=50) for _ in range(3)]
        + [call("a-err", status="error")]
        + [call("a-err") for _ in range(3)]
        + [call("a-lat", latency_ms=float(ms)) for ms in (100, 200, 300, 400, 2000)]
        + [call("a-run", trace_id=run, parent_id=run) for _ in range(5)]
        + [call("a-run", trace_id=str(uuid.uuid4())) for _ in range(2)]
    )
    assert post(fast.url, evs).status_code == 200
    lat = summary(fast.url, "a-lat")
    # (name, metric, agent, threshold that fires, expected value, threshold that resolves)
    specs = [
        ("r-cost", "cost", "a-cost", 0.5, 0.6, 1.0),
        ("r-req", "requests", "a-req", 2, 3, 3),
        ("r-tok", "tokens", "a-tok", 400, 450, 500),
        ("r-err", "error_rate", "a-err", 20, 25.0, 30),
        ("r-p50", "latency_p50", "a-lat", 250, lat["latency_p50"], 1000),
        ("r-p95", "latency_p95", "a-lat", 1000, lat["latency_p95"], 5000),
        ("r-run", "calls_per_run", "a-run", 4, 5, 5),
    ]
    ids = {}
    for name, metric, agent, fire_at, _, _ in specs:
        body = rule(name, receiver.url, metric=metric, threshold=fire_at)
        body["filters"] = {"agent_name": agent}
        ids[name] = create(fast.url, body)["id"]
    wait_for(lambda: len(receiver.bodies()) >= len(specs), what="a firing notification per rule")
    states = alerts(fast.url)
    for name, metric, agent, _, want, _ in specs:
        (got,) = receiver.bodies(name)
        assert got["state"] == "firing"
        assert got["value"] == pytest.approx(want), name
        assert got["alert"]["metric"] == metric and got["alert"]["filters"] == {"agent_name": agent}
        assert f"agent_name={agent}" in got["text"] and name in got["text"]
        assert got["dashboard_url"].endswith(f"/?view=alerts&alert={ids[name]}")
        assert states[name]["state"] == "firing"
        assert states[name]["value"] == pytest.approx(want)
    assert receiver.bodies("r-cost")[0]["text"] == (
        "Budget r-cost: cost over the last 5m is $0.60 (> $0.50) for agent_name=a-cost"
    )
    # Raise each threshold above the value: every rule resolves, once.
    for name, *_, resolve_at in specs:
        r = httpx.patch(fast.url + f"/api/alerts/{ids[name]}", json={"threshold": resolve_at})
        assert r.status_code == 200
    wait_for(lambda: len(receiver.bodies()) >= 2 * len(specs), what="a resolved per rule")
    # A few more evaluations: nothing more is sent.
    next_evaluation(fast.url, "r-cost")
    next_evaluation(fast.url, "r-cost")
    for name, *_, want, _ in specs:
        got = receiver.bodies(name)
        assert [b["state"] for b in got] == ["firing", "resolved"], name
        assert got[1]["value"] == pytest.approx(want)
        assert alerts(fast.url)[name]["state"] == "ok"
    hist = httpx.get(fast.url + f"/api/alerts/{ids['r-cost']}/history").json()["history"]
    changes = [h["state"] for h in reversed(hist) if h["event"] == "state"]
    assert changes == ["firing", "ok"]
    sent = [h for h in hist if h["event"] == "delivery"]
    assert sorted(h["notification"] for h in sent) == ["firing", "resolved"]
    assert all(h["outcome"] == "delivered" and h["attempt"] == 1 for h in sent)


def test_no_data_and_empty_windows(fast: ServerProcess, receiver: Receiver) -> None:
    # No call at all: latency has no data; `requests < 1` fires on the 0.
    create(
        fast.url,
        rule("quiet-lat", receiver.url, metric="latency_p95", filters={"agent_name": "none"}),
    )
    create(
        fast.url,
        rule(
            "quiet-req",
            receiver.url,
            metric="requests",
            operator="<",
            threshold=1,
            filters={"agent_name": "none"},
        ),
    )
    wait_for(lambda: receiver.bodies("quiet-req"), what="the empty-window alert")
    got = alerts(fast.url)
    assert got["quiet-lat"]["state"] == "no_data" and got["quiet-lat"]["value"] is None
    assert got["quiet-req"]["state"] == "firing" and got["quiet-req"]["value"] == 0
    assert receiver.bodies("quiet-lat") == []


def test_signature_verifies_and_a_failing_receiver_is_retried(
    server_factory: type[ServerProcess],
) -> None:
    rec = Receiver(fail=2)
    try:
        srv = server_factory(None, *FAST).start()
        rid = create(srv.url, rule("signed", rec.url, secret="hush", threshold=0.05))["id"]
        assert post(srv.url, [call("x", cost_usd=0.1)]).status_code == 200
        wait_for(lambda: len(rec.requests) >= 3, what="two failures and a success")
        hist = wait_for(
            lambda: [
                h
                for h in httpx.get(srv.url + f"/api/alerts/{rid}/history").json()["history"]
                if h["event"] == "delivery"
            ][:3],
            what="three attempts in the history",
        )
        assert [h["outcome"] for h in reversed(hist)] == ["retry", "retry", "delivered"]
        assert [h["attempt"] for h in reversed(hist)] == [1, 2, 3]
        bodies = {b for _, b in rec.requests}
        assert len(bodies) == 1  # the same notification, attempted three times
        for headers, body in rec.requests:
            assert verify("hush", headers, body)
            assert not verify("wrong", headers, body)
        assert json.loads(rec.requests[0][1])["state"] == "firing"
    finally:
        rec.close()


def test_restart_while_firing_does_not_renotify(
    server_factory: type[ServerProcess], receiver: Receiver
) -> None:
    srv = server_factory(None, *FAST).start()
    create(srv.url, rule("sticky", receiver.url, threshold=0.05))
    assert post(srv.url, [call("y", cost_usd=0.1)]).status_code == 200
    wait_for(lambda: receiver.bodies("sticky"), what="the firing notification")
    srv.restart()
    for _ in range(3):  # three evaluations by the restarted server
        next_evaluation(srv.url, "sticky")
    assert alerts(srv.url)["sticky"]["state"] == "firing"
    assert [b["state"] for b in receiver.bodies("sticky")] == ["firing"]


def test_scopes_read_key_reads_admin_key_changes(
    server_factory: type[ServerProcess], db_url: str, receiver: Receiver
) -> None:
    keys = {s: create_key(db_url, s, f"k-{s}") for s in ("ingest", "read", "admin")}
    srv = server_factory(None, *FAST).start()
    body = rule("scoped", receiver.url)
    for scope in ("ingest", "read"):
        r = httpx.post(srv.url + "/api/alerts", json=body, headers=bearer(keys[scope]))
        assert r.status_code == 403, scope
    made = create(srv.url, body, headers=bearer(keys["admin"]))
    assert httpx.get(srv.url + "/api/alerts", headers=bearer(keys["read"])).status_code == 200
    assert httpx.get(srv.url + "/api/alerts", headers=bearer(keys["ingest"])).status_code == 403
    path = f"/api/alerts/{made['id']}"
    assert httpx.get(srv.url + path + "/history", headers=bearer(keys["read"])).status_code == 200
    r = httpx.patch(srv.url + path, json={"threshold": 1}, headers=bearer(keys["read"]))
    assert r.status_code == 403
    assert httpx.delete(srv.url + path, headers=bearer(keys["read"])).status_code == 403
    assert httpx.delete(srv.url + path, headers=bearer(keys["admin"])).status_code == 200


def alerts_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", "alerts", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_list_and_test(fast: ServerProcess, db_url: str, receiver: Receiver) -> None:
    create(fast.url, rule("cli-rule", receiver.url, secret="k"))
    wait_for(lambda: alerts(fast.url)["cli-rule"]["state"], what="a first evaluation")
    r = alerts_cli("list", "--db", db_url)
    assert r.returncode == 0, r.stderr
    assert "cli-rule" in r.stdout and "no_data" in r.stdout and "cost" in r.stdout
    r = alerts_cli("test", "cli-rule", "--db", db_url)
    assert r.returncode == 0, r.stderr
    assert "delivered" in r.stdout
    (got,) = receiver.bodies("cli-rule")
    assert got["state"] == "test" and got["text"].startswith("Test of cli-rule")
    headers, body = receiver.requests[0]
    assert verify("k", headers, body)
    r = alerts_cli("test", "no-such-rule", "--db", db_url)
    assert r.returncode != 0 and "no-such-rule" in r.stderr
