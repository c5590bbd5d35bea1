"""Issue 17, findings 1 to 3: nothing the server accepts can break it later.

Each test sends what a careless or hostile client would, against a real
server on each backend, and checks both halves of the rule: the bad event
gets a 422 naming its index and field (never a 200 that breaks reads later,
never a 503 that the SDK would retry for ever), and everything else keeps
working afterwards, with the values a user would see.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from agentwatch.schema import MAX_NAME, MAX_NAME_BYTES, MAX_TOKENS
from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post, stored

GETS = (
    "/api/events",
    "/api/metrics/summary",
    "/api/metrics/timeseries",
    "/api/metrics/breakdown",
)
STRING_FIELDS = (
    "id",
    "task_name",
    "agent_name",
    "model",
    "error_message",
    "trace_id",
    "parent_id",
    "provider",
    "user_id",
    "session_id",
)
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def refused(r: httpx.Response, index: int, field: str) -> str:
    """Assert a 422 for events[index].field; the message."""
    assert r.status_code == 422, (r.status_code, r.text)
    body = r.json()
    assert body["detail"].startswith(f"events[{index}].{field}: "), body
    assert {"index": index, "field": field} == {
        k: body["errors"][0][k] for k in ("index", "field")
    }, body
    return str(body["errors"][0]["message"])


def reads_work(url: str) -> None:
    """Every read the dashboard makes answers 200, for every period."""
    for period in ("1h", "24h", "7d", "30d", "all"):
        for path in GETS[1:]:
            r = httpx.get(url + path, params={"period": period}, timeout=30)
            assert r.status_code == 200, (path, period, r.text)
    r = httpx.get(url + "/api/events", params={"limit": 1000}, timeout=30)
    assert r.status_code == 200, r.text


def ingest_works(url: str, n: int = 40) -> None:
    """n fresh valid batches in a row are all acknowledged and stored."""
    ids = []
    with httpx.Client(timeout=30) as c:
        for _ in range(n):
            e = ev()
            r = c.post(url + "/api/events", json={"events": [e]})
            assert r.status_code == 200, r.text
            ids.append(e["id"])
    got = {e["id"] for e in stored(url)}
    assert set(ids) <= got


# --- finding 1: timestamps -----------------------------------------------------


OUTSIDE_THE_WINDOW = [
    "9999-12-31T23:59:59-01:00",  # year 10000 in UTC: GET /api/events answered 500
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    "1900-01-01T00:00:00Z",  # made period=all timeseries refuse every width
    "1999-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00Z",
    -1,  # Unix seconds
]


def test_finding1_timestamps_outside_the_window_are_refused(server: ServerProcess) -> None:
    for ts in OUTSIDE_THE_WINDOW:
        msg = refused(post(server.url, [ev(), ev(timestamp=ts)]), 1, "timestamp")
        assert "2000-01-01T00:00:00Z" in msg, ts
        assert stored(server.url) == [], ts  # no partial write
        # On SQLite each of those 500s left a read snapshot open, and the
        # next ingest commits failed with "database is locked".
        reads_work(server.url)
    ingest_works(server.url)


def test_finding1_the_window_edges_are_stored_and_read_back(server: ServerProcess) -> None:
    now = datetime.now(UTC)
    soon = (now + timedelta(hours=23)).replace(microsecond=0)
    too_soon = now + timedelta(days=1, minutes=10)
    first = ev(id="first", timestamp="2000-01-01T00:00:00Z")
    late = ev(id="late", timestamp=soon.isoformat())
    unix = ev(id="unix", timestamp=946_684_800)  # 2000-01-01 in Unix seconds
    assert post(server.url, [first, late, unix]).status_code == 200
    refused(post(server.url, [ev(timestamp=too_soon.isoformat())]), 0, "timestamp")
    got = {e["id"]: e["timestamp"] for e in stored(server.url)}
    assert got == {
        "first": "2000-01-01T00:00:00+00:00",
        "unix": "2000-01-01T00:00:00+00:00",
        "late": soon.isoformat(),
    }
    reads_work(server.url)
    # period=all starts at the first day with a call, 2000-01-01: the automatic
    # width and the widest explicit one both answer.
    for bucket in (None, 43_200):
        params = {"period": "all", **({"bucket": bucket} if bucket else {})}
        r = httpx.get(server.url + "/api/metrics/timeseries", params=params, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["timestamps"][0].startswith("1999-12") or body["timestamps"][0].startswith(
            "2000-01-01"
        )
        assert sum(body["requests"]) == 2  # the one in the future is not in any period yet
    ingest_works(server.url)


# --- finding 2: token counts and costs ------------------------------------------


def test_finding2_token_counts_above_the_bound_are_refused(server: ServerProcess) -> None:
    # Three batches at 2^53 used to fill a day's int64 totals on PostgreSQL
    # (then every LLM event got a 503 until midnight) and two made SQLite's
    # summary answer 503 "integer overflow" for every period.
    for field in TOKEN_FIELDS:
        for value in (MAX_TOKENS + 1, 2**53, 2**63):
            for _ in range(3):
                refused(post(server.url, [ev(), ev(**{field: value})]), 1, field)
    assert stored(server.url) == []
    reads_work(server.url)
    ingest_works(server.url, 5)


def test_finding2_sums_at_the_bound_stay_exact(server: ServerProcess) -> None:
    """Batches of events at the largest token counts and cost: every total exact."""
    n, batches = 500, 4
    now = datetime.now(UTC)
    for b in range(batches):
        events = [
            ev(
                id=f"max-{b}-{i}",
                **dict.fromkeys(TOKEN_FIELDS, MAX_TOKENS),
                cost_usd=1e9,
                timestamp=(now - timedelta(minutes=i % 3)).isoformat(),
            )
            for i in range(n)
        ]
        r = post(server.url, events)
        assert r.status_code == 200, r.text
    total = n * batches
    for period in ("1h", "all"):
        s = httpx.get(server.url + "/api/metrics/summary", params={"period": period}).json()
        assert s["total_requests"] == total
        assert s["input_tokens"] == s["output_tokens"] == total * MAX_TOKENS
        assert s["total_tokens"] == 2 * total * MAX_TOKENS
        assert s["total_cost"] == total * 1e9
        t = httpx.get(server.url + "/api/metrics/timeseries", params={"period": period}).json()
        assert sum(t["tokens"]) == 2 * total * MAX_TOKENS
        assert sum(t["requests"]) == total
        [row] = httpx.get(server.url + "/api/metrics/breakdown", params={"period": period}).json()
        assert row["input_tokens"] == total * MAX_TOKENS
    ingest_works(server.url)


# --- finding 3: NUL in strings, on the body and on every query parameter ------


def test_finding3_a_nul_in_any_string_field_is_a_422(server: ServerProcess) -> None:
    for field in STRING_FIELDS:
        for value in ("bad\x00value", "\x00"):
            msg = refused(post(server.url, [ev(), ev(**{field: value})]), 1, field)
            assert "NUL" in msg
    assert stored(server.url) == []
    # ...and the server is fine afterwards (on PostgreSQL this was a 503 that
    # the SDK retried for ever, failing everyone who shared the commit).
    ingest_works(server.url)


def test_finding3_a_nul_in_metadata_is_stored_as_json_escapes(server: ServerProcess) -> None:
    # Metadata is stored as JSON text, where a NUL is the escape \u0000: it is
    # harmless there on both backends, so it is kept as sent.
    e = ev(metadata={"k\x00": "v\x00w", "list": ["\x00"]}, extra_field="x\x00")
    assert post(server.url, [e]).status_code == 200
    [got] = stored(server.url)
    assert got["metadata"] == {"k\x00": "v\x00w", "list": ["\x00"], "extra_field": "x\x00"}


QUERY_STRINGS = {
    "/api/events": (
        "agent_name",
        "task_name",
        "model",
        "status",
        "kind",
        "trace_id",
        "parent_id",
        "since",
        "until",
        "limit",
        "offset",
    ),
    "/api/metrics/summary": ("period", "agent_name", "model", "task_name"),
    "/api/metrics/timeseries": ("period", "bucket", "agent_name", "model", "task_name"),
    "/api/metrics/breakdown": ("group_by", "period", "agent_name", "model", "task_name"),
}


def test_finding3_a_nul_in_any_query_parameter_is_a_422(server: ServerProcess) -> None:
    assert post(server.url, [ev()]).status_code == 200
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for path, names in {**QUERY_STRINGS, "/api/health": ("x",)}.items():
            for name in names:
                for raw in ("%00", "a%00", "%00b"):
                    r = c.get(f"{path}?{name}={raw}")
                    assert r.status_code == 422, (path, name, r.status_code, r.text)
                    [err] = r.json()["detail"]
                    assert err["loc"] == ["query", name], err
                    assert "NUL" in err["msg"]
    reads_work(server.url)
    ingest_works(server.url, 5)


# --- strict types, and the sizes the store's indexes can hold ------------------


NOT_NUMBERS: list[tuple[str, Any]] = [
    ("input_tokens", "5"),
    ("input_tokens", True),
    ("output_tokens", False),
    ("cache_read_tokens", "0"),
    ("reasoning_tokens", 5.5),
    ("cost_usd", "1"),
    ("cost_usd", True),
    ("latency_ms", "2340.5"),
    ("latency_ms", False),
    # ...and numbers out of their bounds
    ("cost_usd", 1e9 + 1),
    ("cost_usd", -0.01),
    ("latency_ms", 1e10 + 1),
    ("latency_ms", -1),
]


def test_numbers_are_json_numbers_within_bounds(server: ServerProcess) -> None:
    for field, value in NOT_NUMBERS:
        refused(post(server.url, [ev(**{field: value})]), 0, field)
    # JSON Schema's "integer" is any number without a fractional part; a
    # Python client that computed a count as a float sends 5.0.
    assert post(server.url, [ev(id="f", input_tokens=5.0, output_tokens=1e3)]).status_code == 200
    [got] = stored(server.url)
    assert (got["input_tokens"], got["output_tokens"]) == (5, 1000)
    assert type(got["input_tokens"]) is int


def test_names_the_store_could_not_index_are_refused(server: ServerProcess) -> None:
    # 256 four-byte characters in the agent, task and model names made a
    # rollup key PostgreSQL's index cannot hold (a 503 for the batch and for
    # everyone in its group commit). Names are bounded in UTF-8 bytes too.
    emoji = "\U0001f600" * MAX_NAME
    for field in ("task_name", "agent_name", "model", "provider", "user_id", "session_id"):
        msg = refused(post(server.url, [ev(**{field: emoji})]), 0, field)
        assert str(MAX_NAME_BYTES) in msg
    # The widest names that are allowed, in all three key columns at once.
    cjk = "\u65e5" * MAX_NAME  # 3 bytes each: 768, the byte bound
    wide = "\U0001f600" * (MAX_NAME_BYTES // 4)
    events = [
        ev(id="cjk", task_name=cjk, agent_name=cjk, model=cjk),
        ev(id="wide", task_name=wide, agent_name=wide, model=wide),
    ]
    r = post(server.url, events)
    assert r.status_code == 200, r.text
    got = {e["id"]: e for e in stored(server.url)}
    assert got["cjk"]["agent_name"] == cjk
    assert got["wide"]["model"] == wide
    rows = httpx.get(server.url + "/api/metrics/breakdown", params={"group_by": "model"}).json()
    assert {r["name"] for r in rows} == {cjk, wide}
    ingest_works(server.url, 5)


# --- query parameters out of range ---------------------------------------------


OUT_OF_RANGE = [
    ("/api/events", "offset=99999999999999999999999", "offset"),  # was a 500
    ("/api/events", "offset=9223372036854775808", "offset"),  # 2^63: was a 500
    ("/api/events", "offset=1000000000001", "offset"),
    ("/api/events", "offset=-1", "offset"),
    ("/api/events", "limit=99999999999999999999999", "limit"),
    ("/api/metrics/timeseries", "bucket=99999999999999999999999", "bucket"),
    ("/api/metrics/timeseries", "bucket=-99999999999999999999999", "bucket"),
    ("/api/events", "since=99999999999999999999999", "since"),
]


def test_out_of_range_integers_in_queries_are_a_422(server: ServerProcess) -> None:
    assert post(server.url, [ev(id="x")]).status_code == 200
    for path, query, name in OUT_OF_RANGE:
        r = httpx.get(f"{server.url}{path}?{query}", timeout=30)
        assert r.status_code == 422, (query, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", name]
    r = httpx.get(f"{server.url}/api/events?offset=1000000000000", timeout=30)
    assert r.status_code == 200
    assert r.json()["events"] == []
    reads_work(server.url)


EXTREME_TIMES = [
    "0001-01-01T00:00:00%2B01:00",
    "9999-12-31T23:59:59.999999-23:59",
    "1900-01-01",
    "-99999999999",
    "99999999999999",
]


def test_extreme_time_filters_are_answered(server: ServerProcess) -> None:
    """A range that reaches past what is stored simply matches what is there."""
    assert post(server.url, [ev(id="x")]).status_code == 200
    for value in EXTREME_TIMES:
        for name in ("since", "until"):
            r = httpx.get(f"{server.url}/api/events?{name}={value}", timeout=30)
            assert r.status_code == 200, (name, value, r.text)
            assert [x["id"] for x in r.json()["events"]] in ([], ["x"])
    ingest_works(server.url, 3)
