"""POST /api/events against a real server: validation, pricing, idempotency, limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import ServerProcess


def ev(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "task_name": "summarize",
        "agent_name": "research-bot",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 200,
        "latency_ms": 2340.5,
        "status": "success",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    base.update(kw)
    return base


def post(url: str, events: list[dict[str, object]] | object) -> httpx.Response:
    return httpx.post(url + "/api/events", json={"events": events}, timeout=30)


def stored(url: str, **params: object) -> list[dict[str, object]]:
    r = httpx.get(url + "/api/events", params={"limit": 1000, **params}, timeout=30)
    r.raise_for_status()
    return r.json()["events"]  # type: ignore[no-any-return]


def test_brief_example_event_round_trips(server: ServerProcess) -> None:
    e = {
        "id": "7d0b9a52-0f8e-4b39-9a56-2f2c1c1c0001",
        "task_name": "summarize",
        "agent_name": "research-bot",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 200,
        "latency_ms": 2340.5,
        "cost_usd": 0.0085,
        "status": "success",
        "error_message": None,
        "timestamp": "2026-02-09T15:30:00+00:00",
        "metadata": {"source": "batch_1"},
    }
    r = post(server.url, [e])
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "count": 1}
    [got] = stored(server.url)
    for k, v in e.items():
        assert got[k] == v, k
    assert got["kind"] == "llm"
    assert got["cache_read_tokens"] == 0


def test_metadata_beyond_what_orjson_writes_is_stored(server: ServerProcess) -> None:
    # pydantic accepts integers past 64 bits and NaN in metadata; both used to
    # make the server fail with 500. They are stored as JSON readers can parse.
    body = (
        '{"events": [{"task_name": "t", "agent_name": "a", "model": "gpt-4o", '
        '"metadata": {"big": 1000000000000000000000000000000, "nan": NaN, "s": "x"}}]}'
    )
    r = httpx.post(
        server.url + "/api/events",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    [got] = stored(server.url)
    assert got["metadata"] == {"big": 1e30, "nan": None, "s": "x"}


def test_server_prices_events_without_cost(server: ServerProcess) -> None:
    # The brief's table, $ per million tokens (input, output).
    table = {
        "gpt-4o": (2.50, 10.00),
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-3.5-turbo": (0.50, 1.50),
        "claude-opus-4-20250514": (15.00, 75.00),
        "claude-sonnet-4-20250514": (3.00, 15.00),
        "claude-haiku-3-5-20241022": (0.80, 4.00),
        "some-unknown-model": (3.00, 15.00),  # the brief's fallback
    }
    events = [ev(model=m, input_tokens=1_000_000, output_tokens=100_000) for m in table]
    assert post(server.url, events).status_code == 200
    by_model = {e["model"]: e["cost_usd"] for e in stored(server.url)}
    for m, (pin, pout) in table.items():
        assert by_model[m] == pytest.approx(pin + pout / 10, rel=1e-9), m


def test_cached_tokens_priced_at_their_own_rate(server: ServerProcess) -> None:
    # gpt-4o: $2.50/M input, $1.25/M cached input. 1M input of which 600k cached.
    e = ev(model="gpt-4o", input_tokens=1_000_000, output_tokens=0, cache_read_tokens=600_000)
    assert post(server.url, [e]).status_code == 200
    [got] = stored(server.url)
    assert got["cost_usd"] == pytest.approx(0.4 * 2.50 + 0.6 * 1.25)


def test_given_cost_is_kept(server: ServerProcess) -> None:
    assert post(server.url, [ev(cost_usd=1.2345)]).status_code == 200
    assert stored(server.url)[0]["cost_usd"] == 1.2345


def test_retried_batch_is_stored_once(server: ServerProcess) -> None:
    batch = [ev() for _ in range(50)]
    for _ in range(3):
        r = post(server.url, batch)
        assert r.status_code == 200 and r.json()["count"] == 50
    # the same id twice in one batch counts once as well
    assert post(server.url, [batch[0], batch[0]]).status_code == 200
    assert len(stored(server.url)) == 50
    assert httpx.get(server.url + "/api/health").json()["events"] == 50


def test_defaults_filled_by_server(server: ServerProcess) -> None:
    before = datetime.now(UTC)
    r = post(server.url, [{"task_name": "t", "agent_name": "a", "model": "gpt-4o"}])
    assert r.status_code == 200
    [got] = stored(server.url)
    uuid.UUID(str(got["id"]))
    ts = datetime.fromisoformat(str(got["timestamp"]))
    assert before - timedelta(seconds=1) <= ts <= datetime.now(UTC) + timedelta(seconds=1)
    assert got["metadata"] == {}
    assert got["status"] == "success"


def test_naive_timestamp_means_utc_and_offsets_are_converted(server: ServerProcess) -> None:
    a = ev(timestamp="2026-03-01T12:00:00")
    b = ev(timestamp="2026-03-01T14:00:00+02:00")
    assert post(server.url, [a, b]).status_code == 200
    got = {e["id"]: e["timestamp"] for e in stored(server.url)}
    assert got[a["id"]] == "2026-03-01T12:00:00+00:00"
    assert got[b["id"]] == "2026-03-01T12:00:00+00:00"


def test_unknown_fields_are_kept_in_metadata(server: ServerProcess) -> None:
    assert post(server.url, [ev(metadata={"a": 1}, future_field="x")]).status_code == 200
    assert stored(server.url)[0]["metadata"] == {"a": 1, "future_field": "x"}


def test_sql_lookalike_strings_are_stored_verbatim(server: ServerProcess) -> None:
    nasty = "x'); DROP TABLE events; --"
    e = ev(
        task_name=nasty,
        agent_name='a" OR 1=1 --',
        model="gpt-4o",
        error_message=nasty,
        metadata={"q": "'; DELETE FROM events; --"},
    )
    assert post(server.url, [e]).status_code == 200
    [got] = stored(server.url, task_name=nasty)
    assert got["task_name"] == nasty and got["agent_name"] == 'a" OR 1=1 --'
    assert got["metadata"] == {"q": "'; DELETE FROM events; --"}
    bd = httpx.get(
        server.url + "/api/metrics/breakdown", params={"group_by": "task_name", "period": "1h"}
    ).json()
    assert [r["name"] for r in bd] == [nasty]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"task_name": None}, "task_name"),
        ({"agent_name": ""}, "agent_name"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"output_tokens": "many"}, "output_tokens"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"status": "meh"}, "status"),
        ({"timestamp": "yesterday-ish"}, "timestamp"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"kind": "banana"}, "kind"),
        ({"model": ""}, "model"),
        ({"cost_usd": -0.1}, "cost_usd"),
    ],
)
def test_bad_event_rejects_whole_batch(server: ServerProcess, bad: dict, field: str) -> None:
    events = [ev(), ev(), ev(**bad)]
    if bad.get("task_name", 0) is None:
        del events[2]["task_name"]
    r = post(server.url, events)
    assert r.status_code == 422
    body = r.json()
    assert body["errors"][0]["index"] == 2
    assert body["errors"][0]["field"] == field
    assert body["detail"].startswith(f"events[2].{field}")
    assert stored(server.url) == []  # nothing of the batch was written


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b'{"events": {"a": 1}}', b"[1, 2]", b'{"evnts": []}', b'{"events": [5]}'],
)
def test_malformed_bodies_get_422(server: ServerProcess, body: bytes) -> None:
    r = httpx.post(
        server.url + "/api/events", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"]
    assert stored(server.url) == []


def test_size_limits_give_413(server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--max-batch-events", "10", "--max-body-bytes", "20000").start()
    r = post(srv.url, [ev() for _ in range(11)])
    assert r.status_code == 413 and "limit is 10" in r.json()["detail"]
    r = post(srv.url, [ev(metadata={"blob": "x" * 30_000})])
    assert r.status_code == 413 and "20000" in r.json()["detail"]
    assert post(srv.url, [ev() for _ in range(10)]).status_code == 200
    assert len(stored(srv.url)) == 10
