"""The explorer's API (issue 15) against a real server, on both backends:
cursor pages, sorts, the added filters and search, custom metric windows,
breakdowns by provider/user/session, run totals and the session view."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post

NOW = datetime.now(UTC).replace(microsecond=0)


def get(url: str, path: str = "/api/events", **params: Any) -> httpx.Response:
    return httpx.get(url + path, params=params, timeout=30)


def page(url: str, **params: Any) -> dict[str, Any]:
    r = get(url, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"events", "next_cursor"}
    return body  # type: ignore[no-any-return]


def walk(url: str, cursor: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every page of a query, by cursor (from `cursor` on, if given)."""
    out: list[dict[str, Any]] = []
    while True:
        body = page(url, **params, **({"cursor": cursor} if cursor else {}))
        out += body["events"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["id"]) for e in events]


def spread(n: int, rng: random.Random, **over: Any) -> list[dict[str, object]]:
    """n LLM calls over the last 10 hours with a few repeated timestamps and
    costs, so ties fall on page boundaries."""
    out = []
    for i in range(n):
        ts = NOW - timedelta(minutes=rng.randrange(0, 600) // 3 * 3)
        out.append(
            ev(
                id=f"c{i:03d}",
                timestamp=ts.isoformat(),
                cost_usd=rng.choice([0.001, 0.002, 0.0151, 0.5]),
                latency_ms=float(rng.choice([100, 250, 250, 900])),
                input_tokens=rng.choice([10, 500, 1000]),
                output_tokens=rng.choice([0, 20, 500]),
                **over,
            )
        )
    return out


def test_cursor_pages_in_every_sort_cover_each_event_once(server: ServerProcess) -> None:
    rng = random.Random(7)
    events = spread(130, rng)
    assert post(server.url, events).status_code == 200
    by_id = {e["id"]: e for e in events}
    # The unpaged answer, newest first (ties: later arrival first).
    full = page(server.url, limit=1000)["events"]
    assert full[0]["timestamp"] >= full[-1]["timestamp"]
    for sort, field in [
        ("time", None),
        ("cost", "cost_usd"),
        ("latency", "latency_ms"),
        ("tokens", None),
    ]:
        for order in ("desc", "asc"):
            got = walk(server.url, sort=sort, order=order, limit=17)
            assert sorted(ids(got)) == sorted(by_id), (sort, order)  # each once
            if sort == "time":
                keys = [e["timestamp"] for e in got]
            elif sort == "tokens":
                keys = [e["input_tokens"] + e["output_tokens"] for e in got]
            else:
                keys = [e[field] for e in got]
            assert keys == sorted(keys, reverse=order == "desc"), (sort, order)
            # One page of 1000 gives the same order as 17 at a time.
            assert ids(got) == ids(page(server.url, sort=sort, order=order, limit=1000)["events"])
    assert ids(walk(server.url, limit=17)) == ids(full)


def test_cursor_pages_stay_exact_while_events_arrive(server: ServerProcess) -> None:
    rng = random.Random(8)
    old = spread(90, rng)
    assert post(server.url, old).status_code == 200
    seen: list[dict[str, Any]] = []
    body = page(server.url, limit=20)
    seen += body["events"]
    n = 0
    while body["next_cursor"]:
        # Newer events arrive between pages (as live traffic does).
        fresh = [
            ev(id=f"new{n}-{j}", timestamp=(NOW + timedelta(seconds=n * 10 + j)).isoformat())
            for j in range(7)
        ]
        n += 1
        assert post(server.url, fresh).status_code == 200
        body = page(server.url, limit=20, cursor=body["next_cursor"])
        seen += body["events"]
    assert len(ids(seen)) == len(set(ids(seen)))  # nothing twice
    assert sorted(ids(seen)) == sorted(e["id"] for e in old)  # nothing skipped, nothing new
    # A late event stamped below the cursor appears in a later page, in place.
    first = page(server.url, limit=50, since=(NOW - timedelta(hours=11)).isoformat())
    late = ev(id="late", timestamp=(NOW - timedelta(hours=10, minutes=30)).isoformat())
    assert post(server.url, [late]).status_code == 200
    assert first["next_cursor"]
    rest = walk(
        server.url, first["next_cursor"], limit=50, since=(NOW - timedelta(hours=11)).isoformat()
    )
    assert "late" in ids(rest) and not set(ids(rest)) & set(ids(first["events"]))


def test_added_filters_and_error_search(server: ServerProcess) -> None:
    t = NOW - timedelta(minutes=5)
    evs = [
        ev(id="a", provider="openai", user_id="u1", session_id="s1", timestamp=t.isoformat()),
        ev(
            id="b",
            provider="anthropic",
            user_id="u2",
            session_id="s1",
            status="error",
            error_message="RateLimitError: 429 Too Many Requests",
        ),
        ev(
            id="c",
            provider="openai",
            user_id="u2",
            session_id="s2",
            status="error",
            error_message="APITimeoutError: request timed out after 30s",
        ),
        ev(id="d", status="error", error_message="100% of quota_used"),
        ev(id="6f1c8a52-0f8e-4b39-9a56-2f2c1c1c0abc", kind="tool", model="", user_id="u1"),
    ]
    assert post(server.url, evs).status_code == 200
    q = lambda **p: sorted(ids(page(server.url, **p)["events"]))  # noqa: E731
    assert q(provider="openai") == ["a", "c"]
    assert q(user_id="u2") == ["b", "c"]
    assert q(session_id="s1") == ["a", "b"]
    assert q(user_id="u1", kind="tool") == ["6f1c8a52-0f8e-4b39-9a56-2f2c1c1c0abc"]
    assert q(id="b") == ["b"]
    assert q(id="6f1c8a52-0f8e-4b39-9a56-2f2c1c1c0abc") == ["6f1c8a52-0f8e-4b39-9a56-2f2c1c1c0abc"]
    assert q(id="nope") == []
    # Search: case-insensitive substring; % and _ are plain characters.
    assert q(error_contains="ratelimit") == ["b"]
    assert q(error_contains="TIMED OUT") == ["c"]
    assert q(error_contains="Error") == ["b", "c"]
    assert q(error_contains="100%") == ["d"]
    assert q(error_contains="a_u") == ["d"]
    assert q(error_contains="%") == ["d"]
    assert q(error_contains="error", provider="openai") == ["c"]
    # Empty values mean no filter, as for the brief's filters.
    assert len(q(provider="", error_contains="")) == 5


def test_bad_paging_parameters_are_named(server: ServerProcess) -> None:
    assert post(server.url, [ev(id=f"x{i}") for i in range(3)]).status_code == 200
    cur = page(server.url, limit=1)["next_cursor"]
    assert cur
    cases = {
        "cursor": [
            {"cursor": "not-a-cursor"},
            {"cursor": base64.urlsafe_b64encode(b"[1]").decode()},
            {"cursor": cur, "sort": "cost"},
            {"cursor": cur, "order": "asc"},
        ],
        "offset": [{"cursor": cur, "offset": 2}],
        "sort": [{"sort": "name"}],
        "order": [{"order": "up"}],
    }
    for name, variants in cases.items():
        for params in variants:
            r = get(server.url, **params)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["detail"][0]["loc"] == ["query", name], r.text
    assert page(server.url, limit=1, cursor=cur)["events"]
    assert page(server.url, limit=2, offset=1)["events"]  # offset alone still pages


def test_custom_windows_for_previous_period_deltas(server: ServerProcess) -> None:
    # Known data: 3 calls in the last 24 h, 2 in the 24 h before, 1 older.
    at = [NOW - timedelta(hours=h) for h in (1, 2, 3, 25, 30, 60)]
    costs = [0.01, 0.02, 0.03, 0.1, 0.2, 5.0]
    evs = [
        ev(timestamp=t.isoformat(), cost_usd=c, latency_ms=100.0 * (i + 1))
        for i, (t, c) in enumerate(zip(at, costs, strict=True))
    ]
    assert post(server.url, evs).status_code == 200
    cur = get(server.url, "/api/metrics/summary", period="24h").json()
    assert "since" not in cur  # the brief's shape without a custom window
    prev = get(
        server.url,
        "/api/metrics/summary",
        period="24h",
        until=(NOW - timedelta(hours=24)).isoformat(),
    ).json()
    assert cur["total_requests"] == 3 and prev["total_requests"] == 2
    assert prev["total_cost"] == pytest.approx(0.3)
    assert prev["until"].startswith((NOW - timedelta(hours=24)).isoformat()[:19])
    both = get(
        server.url,
        "/api/metrics/summary",
        since=(NOW - timedelta(hours=48)).isoformat(),
        until=NOW.isoformat(),
    ).json()
    assert both["total_requests"] == 5 and both["total_cost"] == pytest.approx(0.36)
    assert both["period"] == "custom" and prev["period"] == "24h"  # until alone keeps the length
    # Timeseries over a zoomed window: buckets cover it exactly.
    ts = get(
        server.url,
        "/api/metrics/timeseries",
        bucket=60,
        since=(NOW - timedelta(hours=4)).isoformat(),
        until=NOW.isoformat(),
    ).json()
    assert sum(ts["requests"]) == 3 and len(ts["timestamps"]) in (4, 5)
    assert ts["since"] and ts["until"]
    bd = get(
        server.url, "/api/metrics/breakdown", since=(NOW - timedelta(days=4)).isoformat()
    ).json()
    assert bd[0]["requests"] == 6
    r = get(
        server.url,
        "/api/metrics/summary",
        since=NOW.isoformat(),
        until=(NOW - timedelta(hours=1)).isoformat(),
    )
    assert r.status_code == 422 and "since" in r.text


def test_breakdown_by_provider_user_and_session(server: ServerProcess) -> None:
    evs = [
        ev(provider="openai", user_id="ana", session_id="s1", cost_usd=0.5, latency_ms=100.0),
        ev(
            provider="openai",
            user_id="ana",
            session_id="s1",
            cost_usd=0.25,
            latency_ms=300.0,
            status="error",
            error_message="x",
        ),
        ev(provider="anthropic", user_id="ben", session_id="s2", cost_usd=1.0, latency_ms=1000.0),
        ev(provider=None, user_id=None, session_id=None, cost_usd=0.125, latency_ms=50.0),
        ev(kind="task", model="", provider="openai", user_id="ana", latency_ms=9999.0),
    ]
    assert post(server.url, evs).status_code == 200
    rows = get(server.url, "/api/metrics/breakdown", group_by="user_id").json()
    assert [r["name"] for r in rows] == ["ben", "ana", None]
    ana = rows[1]
    assert ana["requests"] == 2 and ana["errors"] == 1 and ana["error_rate"] == 50.0
    assert ana["total_cost"] == pytest.approx(0.75) and ana["avg_latency"] == 200.0
    assert ana["latency_p50"] == pytest.approx(100, rel=0.01)
    assert ana["latency_p95"] == pytest.approx(300, rel=0.01)
    assert rows[2]["latency_p50"] == pytest.approx(50, rel=0.01)
    prov = get(server.url, "/api/metrics/breakdown", group_by="provider", limit=1).json()
    assert [(r["name"], r["requests"]) for r in prov] == [("anthropic", 1)]
    sess = get(
        server.url, "/api/metrics/breakdown", group_by="session_id", model="gpt-4o", period="1h"
    ).json()
    assert {r["name"]: r["requests"] for r in sess} == {"s1": 2, "s2": 1, None: 1}
    assert (
        get(server.url, "/api/metrics/breakdown", group_by="user_id", agent_name="nobody").json()
        == []
    )
    # The brief's groups still answer from the rollups, limit applies there too.
    assert len(get(server.url, "/api/metrics/breakdown", group_by="model", limit=1).json()) == 1
    assert get(server.url, "/api/metrics/breakdown", group_by="status").status_code == 422


def _run_tree(root: str, t: datetime) -> list[dict[str, object]]:
    """A run with two calls, a tool call and a nested run holding one failed call."""

    def at(s: float) -> str:
        return (t + timedelta(seconds=s)).isoformat()

    return [
        ev(
            id=root,
            kind="task",
            model="",
            task_name="plan",
            timestamp=at(0),
            trace_id=root,
            session_id="sess-A",
            user_id="ana",
            latency_ms=9000.0,
        ),
        ev(
            id=f"{root}-1",
            timestamp=at(1),
            trace_id=root,
            parent_id=root,
            cost_usd=0.0151,
            input_tokens=100,
            output_tokens=10,
        ),
        ev(id=f"{root}-t", kind="tool", model="", timestamp=at(2), trace_id=root, parent_id=root),
        ev(
            id=f"{root}-sub",
            kind="task",
            model="",
            timestamp=at(3),
            trace_id=root,
            parent_id=root,
            latency_ms=2000.0,
        ),
        ev(
            id=f"{root}-sub-1",
            timestamp=at(4),
            trace_id=root,
            parent_id=f"{root}-sub",
            cost_usd=0.002,
            input_tokens=50,
            output_tokens=0,
            status="error",
            error_message="boom",
        ),
        ev(
            id=f"{root}-2",
            timestamp=at(6),
            trace_id=root,
            parent_id=root,
            cost_usd=0.0003,
            input_tokens=7,
            output_tokens=3,
        ),
    ]


def test_run_totals_walk_the_whole_subtree(server: ServerProcess) -> None:
    t = NOW - timedelta(hours=1)
    no_trace = [
        ev(id="solo", kind="task", model="", timestamp=t.isoformat()),
        ev(id="solo-1", parent_id="solo", cost_usd=0.5, input_tokens=1, output_tokens=2),
        ev(id="solo-sub", kind="task", model="", parent_id="solo"),
        ev(id="solo-sub-1", parent_id="solo-sub", cost_usd=0.25, input_tokens=3, output_tokens=4),
    ]
    assert post(server.url, _run_tree("r1", t) + no_trace).status_code == 200
    r = get(server.url, "/api/runs/totals", id=["r1", "r1-sub", "solo", "r1-1", "missing"])
    assert r.status_code == 200
    runs = r.json()["runs"]
    assert set(runs) == {"r1", "r1-sub", "solo"}  # r1-1 is a call, not a run
    assert runs["r1"] == {
        "cost_usd": pytest.approx(0.0174),
        "input_tokens": 157,
        "output_tokens": 13,
        "llm_calls": 3,
        "tool_calls": 1,
        "failed_steps": 1,
    }
    assert runs["r1-sub"]["cost_usd"] == pytest.approx(0.002) and runs["r1-sub"]["llm_calls"] == 1
    assert runs["solo"]["cost_usd"] == pytest.approx(0.75) and runs["solo"]["input_tokens"] == 4
    assert get(server.url, "/api/runs/totals").status_code == 422
    assert get(server.url, "/api/runs/totals", id=["x" * 129]).status_code == 422


def test_session_view_lists_runs_in_order_with_totals(server: ServerProcess) -> None:
    t = NOW - timedelta(hours=2)
    later = _run_tree("r2", t + timedelta(minutes=10))
    call = ev(
        id="standalone",
        session_id="sess-A",
        user_id="ana",
        cost_usd=0.1,
        timestamp=(t + timedelta(minutes=5)).isoformat(),
        input_tokens=1,
        output_tokens=1,
    )
    other = ev(id="elsewhere", session_id="sess-B")
    assert post(server.url, [*later, call, *_run_tree("r1", t), other]).status_code == 200
    r = get(server.url, "/api/sessions/sess-A")
    assert r.status_code == 200
    view = r.json()
    assert [i["event"]["id"] for i in view["items"]] == ["r1", "standalone", "r2"]
    assert view["items"][1]["totals"] is None
    assert view["items"][0]["totals"]["cost_usd"] == pytest.approx(0.0174)
    assert view["totals"]["cost_usd"] == pytest.approx(0.0174 * 2 + 0.1)
    assert view["totals"]["task_runs"] == 2 and view["totals"]["llm_calls"] == 7
    assert view["user_ids"] == ["ana"] and view["agents"] == ["research-bot"]
    assert view["first"] < view["last"] and view["truncated"] is False
    # Session ids are free text: slashes and spaces work when encoded.
    assert post(server.url, [ev(session_id="a/b c")]).status_code == 200
    assert get(server.url, "/api/sessions/a%2Fb%20c").json()["events"] == 1
    missing = get(server.url, "/api/sessions/none-such")
    assert missing.status_code == 404 and "none-such" in missing.json()["detail"]
