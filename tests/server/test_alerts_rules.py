"""The alert state machine (server/alerting.decide) step by step: one
notification per transition, flapping held back within the window, repeats
while firing, no_data; and the one-line text."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from agentwatch.server.alerting import decide, sentence, window_range
from agentwatch.store.alerts import AlertRule, StateUpdate

MIN = 60_000_000
T0 = 1_800_000_000_000_000


def make(**kw: Any) -> AlertRule:
    base = dict(
        id=1,
        name="r",
        metric="error_rate",
        window="5m",
        operator=">",
        threshold=10.0,
        filters={},
        webhook_url="http://x",
        secret=None,
        renotify_minutes=None,
        created_at=T0,
        updated_at=T0,
    )
    base.update(kw)
    return AlertRule(**base)  # type: ignore[arg-type]


def step(rule: AlertRule, value: float | None, now: int) -> tuple[AlertRule, StateUpdate]:
    u = decide(rule, value, value is not None, now, "http://dash")
    after = replace(
        rule,
        state=u.state,
        value=u.value,
        since=u.since,
        notified=u.notified,
        last_firing_at=u.last_firing_at,
        last_resolved_at=u.last_resolved_at,
    )
    return after, u


def kinds(u: StateUpdate) -> list[str]:
    return [k for k, _ in u.send]


def test_one_notification_per_transition() -> None:
    r = make()
    r, u = step(r, 1.0, T0)  # ok from the start: nothing to resolve
    assert u.state == "ok" and kinds(u) == []
    r, u = step(r, 20.0, T0 + MIN)
    assert u.state == "firing" and kinds(u) == ["firing"]
    body = json.loads(u.send[0][1])
    assert body["state"] == "firing" and body["value"] == 20.0 and body["alert"]["id"] == 1
    for i in range(2, 6):  # still firing: silent
        r, u = step(r, 30.0, T0 + i * MIN)
        assert kinds(u) == []
    r, u = step(r, 2.0, T0 + 6 * MIN)
    assert u.state == "ok" and kinds(u) == ["resolved"]
    r, u = step(r, 2.0, T0 + 7 * MIN)
    assert kinds(u) == []


def test_flapping_notifies_once_per_transition_per_window() -> None:
    r = make(window="5m")
    sent: list[str] = []
    t = T0
    # Crosses back and forth on every evaluation for 4 minutes (30 s apart).
    for i in range(8):
        r, u = step(r, 20.0 if i % 2 == 0 else 1.0, t)
        sent += kinds(u)
        t += MIN // 2
    assert sent == ["firing", "resolved"]
    assert r.state == "ok"
    # Once the window has passed since the last firing notice, a new firing goes out.
    r, u = step(r, 20.0, T0 + 5 * MIN)
    assert kinds(u) == ["firing"]


def test_held_back_notification_goes_out_later_if_the_state_still_differs() -> None:
    r = make(window="5m")
    r, _ = step(r, 20.0, T0)  # firing sent
    r, _ = step(r, 1.0, T0 + MIN)  # resolved sent
    r, u = step(r, 20.0, T0 + 2 * MIN)  # firing again within 5 min of the first: held
    assert kinds(u) == [] and u.deferred == "firing" and u.state == "firing"
    r, u = step(r, 25.0, T0 + 3 * MIN)
    assert kinds(u) == [] and u.deferred is None  # noted once
    r, u = step(r, 25.0, T0 + 5 * MIN)  # the window has passed: it goes out now
    assert kinds(u) == ["firing"]


def test_renotify_repeats_while_firing() -> None:
    r = make(renotify_minutes=10)
    r, u = step(r, 20.0, T0)
    assert kinds(u) == ["firing"]
    r, u = step(r, 20.0, T0 + 9 * MIN)
    assert kinds(u) == []
    r, u = step(r, 20.0, T0 + 10 * MIN)
    assert kinds(u) == ["firing"] and json.loads(u.send[0][1])["repeat"] is True
    r, u = step(r, 20.0, T0 + 11 * MIN)
    assert kinds(u) == []


def test_no_data() -> None:
    # Latency with no calls: no_data, and a firing rule resolves on it.
    r = make(metric="latency_p95", threshold=1000.0)
    r, u = step(r, 2000.0, T0)
    assert kinds(u) == ["firing"]
    r, u = step(r, None, T0 + MIN)
    assert u.state == "no_data" and u.value is None and kinds(u) == ["resolved"]
    # Cost with no calls is 0: `< 1` fires on it, `> 1` is no_data.
    low = make(metric="cost", operator="<", threshold=1.0)
    u = decide(low, None, False, T0, "http://dash")
    assert u.state == "firing" and u.value == 0.0
    high = make(metric="cost", operator=">", threshold=1.0)
    u = decide(high, None, False, T0, "http://dash")
    assert u.state == "no_data" and u.value == 0.0 and kinds(u) == []


def test_sentence() -> None:
    r = make(
        name="spender-budget",
        metric="cost",
        window="1h",
        threshold=0.5,
        filters={"agent_name": "spender"},
    )
    assert sentence(r, "firing", 0.6) == (
        "Budget spender-budget: cost over the last 1h is $0.60 (> $0.50) for agent_name=spender"
    )
    assert sentence(r, "resolved", 0.2) == (
        "Resolved spender-budget: cost over the last 1h is $0.20 (no longer > $0.50) "
        "for agent_name=spender"
    )
    lat = make(name="slow", metric="latency_p95", window="day", operator=">=", threshold=2000.0)
    assert sentence(lat, "firing", 2512.4) == (
        "Alert slow: p95 latency today (UTC) is 2,512 ms (>= 2,000 ms)"
    )


def test_calendar_windows_are_utc() -> None:
    # 2027-01-15 13:45:00 UTC
    now = 1_800_020_700_000_000
    start, end = window_range("day", now)
    assert end == now and start == 1_799_971_200_000_000  # 2027-01-15 00:00 UTC
    start, _ = window_range("month", now)
    assert start == 1_798_761_600_000_000  # 2027-01-01 00:00 UTC
    start, _ = window_range("15m", now)
    assert start == now - 15 * MIN
