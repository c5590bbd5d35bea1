"""Metrics endpoints checked against numbers computed here from a known data set."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import httpx
import pytest

from tests.conftest import BACKENDS, ServerProcess, backend_db
from tests.server.test_ingest import post

NOW = datetime.now(UTC)


def nearest_rank(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


def make_dataset() -> list[dict]:
    rng = random.Random(1234)
    out: list[dict] = []

    def add(age: timedelta, **kw: object) -> None:
        e = {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "task_name": rng.choice(["search", "answer"]),
            "agent_name": rng.choice(["alpha", "beta"]),
            "model": rng.choice(["gpt-4o", "claude-sonnet-4-20250514"]),
            "input_tokens": rng.randint(10, 5000),
            "output_tokens": rng.randint(1, 800),
            "latency_ms": round(rng.lognormvariate(6.5, 0.8), 3),
            "status": "error" if rng.random() < 0.1 else "success",
            "cost_usd": round(rng.random() / 100, 6),
            "timestamp": (NOW - age).isoformat(),
        }
        e.update(kw)
        out.append(e)

    for _ in range(600):  # inside the last hour (keep 2 minutes clear of the edge)
        add(timedelta(seconds=rng.uniform(5, 58 * 60)))
    for _ in range(300):  # 1h..24h
        add(timedelta(hours=rng.uniform(1.05, 23.9)))
    for _ in range(200):  # 1d..7d
        add(timedelta(days=rng.uniform(1.01, 6.95)))
    for _ in range(100):  # 7d..30d
        add(timedelta(days=rng.uniform(7.05, 29.9)))
    for _ in range(50):  # older than 30 days
        add(timedelta(days=rng.uniform(31, 60)))
    # Task runs and tool calls must not count as requests or bend latency.
    for _ in range(40):
        add(
            timedelta(minutes=rng.uniform(1, 50)),
            kind="task",
            model="",
            latency_ms=900_000.0,
            cost_usd=5.0,
            agent_name="gamma",
        )
    for _ in range(10):
        add(
            timedelta(minutes=rng.uniform(1, 50)),
            kind="tool",
            model="calculator",
            latency_ms=1.0,
            status="error",
            agent_name="alpha",
        )
    return out


DATA = make_dataset()
PERIODS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": timedelta(days=10_000),
}


def in_period(e: dict, period: str, kind: str | None = "llm") -> bool:
    ts = datetime.fromisoformat(e["timestamp"])
    return ts >= NOW - PERIODS[period] and (kind is None or e.get("kind", "llm") == kind)


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # The data set is made relative to now when the server is loaded, not at
    # import: a long test session would otherwise push its events across the
    # edges of the periods (the server's "now" moves on; NOW would not).
    global NOW, DATA
    NOW = datetime.now(UTC)
    DATA = make_dataset()
    tmp = tmp_path_factory.mktemp("metrics")
    with backend_db(request.param, tmp) as db:
        s = ServerProcess(db, log_dir=tmp).start()
        for i in range(0, len(DATA), 500):
            assert post(s.url, DATA[i : i + 500]).status_code == 200
        yield s
        s.stop()


def get(url: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(url + path, params=params, timeout=30)


@pytest.mark.parametrize("period", list(PERIODS))
def test_summary_matches_exact_computation(srv: ServerProcess, period: str) -> None:
    llm = [e for e in DATA if in_period(e, period)]
    r = get(srv.url, "/api/metrics/summary", period=period)
    assert r.status_code == 200
    s = r.json()
    lat = [e["latency_ms"] for e in llm]
    errors = sum(e["status"] == "error" for e in llm)
    assert s["period"] == period
    assert s["total_requests"] == len(llm)
    assert s["errors"] == errors
    assert s["total_cost"] == pytest.approx(sum(e["cost_usd"] for e in llm), abs=1e-6)
    assert s["success_rate"] == pytest.approx(100 * (len(llm) - errors) / len(llm), abs=0.01)
    assert s["avg_latency_ms"] == pytest.approx(sum(lat) / len(lat), rel=1e-6)
    assert s["latency_p50"] == pytest.approx(nearest_rank(lat, 0.5), rel=0.01)
    assert s["latency_p95"] == pytest.approx(nearest_rank(lat, 0.95), rel=0.01)
    assert s["input_tokens"] == sum(e["input_tokens"] for e in llm)
    assert s["output_tokens"] == sum(e["output_tokens"] for e in llm)
    agents = sorted({e["agent_name"] for e in DATA if in_period(e, period, kind=None)})
    assert s["active_agents"] == agents
    runs = sum(1 for e in DATA if in_period(e, period, kind="task"))
    assert s["task_runs"] == runs


def test_summary_filters(srv: ServerProcess) -> None:
    llm = [
        e
        for e in DATA
        if in_period(e, "7d") and e["agent_name"] == "beta" and e["model"] == "gpt-4o"
    ]
    s = get(srv.url, "/api/metrics/summary", period="7d", agent_name="beta", model="gpt-4o").json()
    assert s["total_requests"] == len(llm)
    assert s["latency_p95"] == pytest.approx(
        nearest_rank([e["latency_ms"] for e in llm], 0.95), rel=0.01
    )
    assert s["active_agents"] == ["beta"]


def test_period_edges(server: ServerProcess) -> None:
    now = datetime.now(UTC)
    inside = {
        "id": "in",
        "task_name": "t",
        "agent_name": "a",
        "model": "gpt-4o",
        "latency_ms": 100,
        "timestamp": (now - timedelta(minutes=59, seconds=30)).isoformat(),
    }
    outside = {
        **inside,
        "id": "out",
        "latency_ms": 200,
        "timestamp": (now - timedelta(minutes=60, seconds=30)).isoformat(),
    }
    future = {**inside, "id": "future", "timestamp": (now + timedelta(minutes=5)).isoformat()}
    assert post(server.url, [inside, outside, future]).status_code == 200
    s = get(server.url, "/api/metrics/summary", period="1h").json()
    assert s["total_requests"] == 1 and s["latency_p50"] == pytest.approx(100, rel=0.01)
    assert get(server.url, "/api/metrics/summary", period="24h").json()["total_requests"] == 2


def test_empty_period_returns_zeros_and_nulls(server: ServerProcess) -> None:
    s = get(server.url, "/api/metrics/summary", period="24h").json()
    assert s == {
        "total_cost": 0.0,
        "total_requests": 0,
        "success_rate": None,
        "avg_latency_ms": None,
        "latency_p50": None,
        "latency_p95": None,
        "active_agents": [],
        "period": "24h",
        "errors": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "task_runs": 0,
    }
    ts = get(server.url, "/api/metrics/timeseries", period="1h").json()
    assert set(ts["requests"]) == {0} and set(ts["latency_p95"]) == {None}
    assert get(server.url, "/api/metrics/breakdown", period="1h").json() == []


@pytest.mark.parametrize(("period", "minutes"), [("1h", 1), ("24h", 10), ("7d", 60), ("30d", 240)])
def test_timeseries_auto_bucket_aligned_and_continuous(
    srv: ServerProcess, period: str, minutes: int
) -> None:
    t = get(srv.url, "/api/metrics/timeseries", period=period).json()
    assert t["bucket_minutes"] == minutes
    n = len(t["timestamps"])
    assert 24 <= n <= 201
    for k in ("cost", "tokens", "requests", "avg_latency", "latency_p50", "latency_p95", "errors"):
        assert len(t[k]) == n, k
    stamps = [datetime.fromisoformat(s) for s in t["timestamps"]]
    assert all(s.tzinfo is not None and s.utcoffset() == timedelta(0) for s in stamps)
    assert {b - a for a, b in pairwise(stamps)} == {timedelta(minutes=minutes)}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert all((s - epoch) % timedelta(minutes=minutes) == timedelta(0) for s in stamps)
    assert stamps[0] <= NOW - PERIODS[period] + timedelta(seconds=30)
    # Every LLM call of the period lands in exactly one bucket, with the right numbers.
    llm = [e for e in DATA if in_period(e, period)]
    assert sum(t["requests"]) == len(llm)
    assert sum(t["errors"]) == sum(e["status"] == "error" for e in llm)
    assert sum(t["cost"]) == pytest.approx(sum(e["cost_usd"] for e in llm), abs=1e-5)
    assert sum(t["tokens"]) == sum(e["input_tokens"] + e["output_tokens"] for e in llm)
    width = timedelta(minutes=minutes)
    for i, s in enumerate(stamps):
        inb = [e for e in llm if s <= datetime.fromisoformat(e["timestamp"]) < s + width]
        assert t["requests"][i] == len(inb)
        if not inb:  # a gap is present, with zero counts and null latencies
            assert t["avg_latency"][i] is None and t["latency_p50"][i] is None
            continue
        lat = [e["latency_ms"] for e in inb]
        assert t["latency_p95"][i] == pytest.approx(nearest_rank(lat, 0.95), rel=0.01)
        assert t["avg_latency"][i] == pytest.approx(sum(lat) / len(lat), rel=1e-3)


def test_timeseries_explicit_bucket_and_all(srv: ServerProcess) -> None:
    t = get(srv.url, "/api/metrics/timeseries", period="24h", bucket=60).json()
    assert t["bucket_minutes"] == 60 and len(t["timestamps"]) in (24, 25)
    assert all(s.endswith(":00:00+00:00") for s in t["timestamps"])
    a = get(srv.url, "/api/metrics/timeseries", period="all").json()
    assert sum(a["requests"]) == sum(1 for e in DATA if e.get("kind", "llm") == "llm")
    assert 24 <= len(a["timestamps"]) <= 201
    r = get(srv.url, "/api/metrics/timeseries", period="30d", bucket=1)
    assert r.status_code == 422 and "limit" in r.json()["detail"]


@pytest.mark.parametrize("group_by", ["agent_name", "model", "task_name"])
def test_breakdown_matches(srv: ServerProcess, group_by: str) -> None:
    rows = get(srv.url, "/api/metrics/breakdown", group_by=group_by, period="7d").json()
    llm = [e for e in DATA if in_period(e, "7d")]
    names = sorted({e[group_by] for e in llm})
    assert sorted(r["name"] for r in rows) == names
    assert [r["total_cost"] for r in rows] == sorted((r["total_cost"] for r in rows), reverse=True)
    for r in rows:
        grp = [e for e in llm if e[group_by] == r["name"]]
        lat = [e["latency_ms"] for e in grp]
        assert r["requests"] == len(grp)
        assert r["total_cost"] == pytest.approx(sum(e["cost_usd"] for e in grp), abs=1e-6)
        assert r["avg_latency"] == pytest.approx(sum(lat) / len(lat), rel=1e-6)
        errs = sum(e["status"] == "error" for e in grp)
        assert r["error_rate"] == pytest.approx(100 * errs / len(grp), abs=0.001)
        assert r["latency_p50"] == pytest.approx(nearest_rank(lat, 0.5), rel=0.01)


def test_breakdown_excludes_task_runs(srv: ServerProcess) -> None:
    rows = get(srv.url, "/api/metrics/breakdown", group_by="agent_name", period="1h").json()
    assert "gamma" not in [r["name"] for r in rows]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/metrics/breakdown", {"group_by": "status"}),
        ("/api/metrics/breakdown", {"group_by": "agent_name; DROP TABLE events"}),
        ("/api/metrics/summary", {"period": "2d"}),
        ("/api/metrics/timeseries", {"period": "1w"}),
        ("/api/metrics/timeseries", {"bucket": 0}),
        ("/api/metrics/timeseries", {"bucket": "ten"}),
    ],
)
def test_bad_parameters_422(srv: ServerProcess, path: str, params: dict) -> None:
    r = get(srv.url, path, **params)
    assert r.status_code == 422
    assert r.json()["detail"]
