"""Property-based: random sequences of batches and queries against a real server.

One `agentwatch serve` per backend (SQLite, PostgreSQL) for the module.
Hypothesis drives a state machine whose steps post valid batches (values
anywhere in their documented ranges, edges included), invalid ones (one bad
field in an otherwise valid batch), malformed bodies, and GETs with random
parameters. After every step it checks what a user relies on:

- every GET answers 200 or 422, never a 5xx; the dashboard's own reads (every
  endpoint over `all`) answer 200;
- a fresh valid batch is acknowledged;
- nothing acknowledged is missing and nothing refused was stored: the stored
  count is exactly the number of distinct events acknowledged.

At the end of the module, every acknowledged id is looked up, and the server
log must hold no traceback.

Run length: the `agentwatch` profile (tests/conftest.py) is the suite's
default; `--hypothesis-profile=long` or AGENTWATCH_HYPOTHESIS_EXAMPLES=N runs
longer. The counts of a run are printed at the end of the module (pytest -s).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from pydantic import TypeAdapter

from agentwatch.schema import (
    EVENT_FIELDS,
    MAX_COST,
    MAX_ERROR,
    MAX_ID,
    MAX_LATENCY,
    MAX_NAME,
    MAX_NAME_BYTES,
    MAX_TOKENS,
    MIN_TIMESTAMP,
)
from tests.conftest import BACKENDS, ServerProcess, backend_db
from tests.server.test_hardening import QUERY_STRINGS, TOKEN_FIELDS
from tests.server.test_ingest import ev

GET_PATHS = tuple(QUERY_STRINGS)
# What the dashboard asks for: each must answer 200 whatever was stored.
DASHBOARD_READS = [
    ("/api/events", {}),
    ("/api/metrics/summary", {"period": "all"}),
    ("/api/metrics/timeseries", {"period": "all"}),
    ("/api/metrics/breakdown", {"period": "all", "group_by": "model"}),
    ("/api/metrics/summary", {"period": "24h"}),
    ("/api/metrics/timeseries", {"period": "30d"}),
]


# --- the live server and what it acknowledged -----------------------------------


@dataclass
class Live:
    server: ServerProcess
    client: httpx.Client
    backend: str
    acked: set[str] = field(default_factory=set)  # ids the server acknowledged
    # An event is a repeat when its id and timestamp are both stored: the
    # distinct (id, instant) pairs acknowledged, an event without a timestamp
    # being new each time (it gets its arrival time).
    keys: set[Any] = field(default_factory=set)
    anonymous: int = 0  # acknowledged events sent without an id
    statuses: Counter[int] = field(default_factory=Counter)
    steps: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = self.client.request(method, path, **kw)
        self.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.failures.append(f"{method} {path} {kw} -> {r.status_code} {r.text[:300]}")
        return r

    @property
    def expected(self) -> int:
        return len(self.keys) + self.anonymous

    def acknowledge(self, events: list[Any]) -> None:
        seen: set[str] = set()  # one batch keeps the first event of an id
        for e in events:
            eid = e.get("id")
            if eid is None:
                self.anonymous += 1
            elif eid not in seen:
                seen.add(eid)
                self.acked.add(eid)
                ts = e.get("timestamp")
                self.keys.add((eid, object() if ts is None else _instant(ts)))


_DATETIME = TypeAdapter(datetime)


def _instant(ts: Any) -> int:
    """The instant the server reads a timestamp as (the contract's parsing),
    in microseconds; naive means UTC."""
    dt = _DATETIME.validate_python(ts)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"properties-{backend}")
    with backend_db(backend, tmp) as db:
        server = ServerProcess(db, log_dir=tmp).start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                state = Live(server, client, backend)
                yield state
                missing = state.acked - stored_ids(client)
                summary = {
                    "backend": backend,
                    "steps": dict(state.steps),
                    "cases": sum(state.steps.values()),
                    "requests": sum(state.statuses.values()),
                    "statuses": dict(sorted(state.statuses.items())),
                    "5xx": len(state.failures),
                    "stored": state.expected,
                    "missing": len(missing),
                }
                print(f"\nproperty suite: {json.dumps(summary)}")
                assert not missing, sorted(missing)[:20]
        finally:
            server.stop()
        log = server.log()
        assert "Traceback" not in log, log


def stored_ids(client: httpx.Client) -> set[str]:
    ids: set[str] = set()
    offset = 0
    while True:
        r = client.get("/api/events", params={"limit": 1000, "offset": offset})
        assert r.status_code == 200, r.text
        page = [e["id"] for e in r.json()["events"]]
        ids.update(page)
        if len(page) < 1000:
            return ids
        offset += 1000


# --- strategies: valid values, edges included ----------------------------------

NO_NUL = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))


def _fit(s: str, least: int) -> str:
    """Cut a name to the UTF-8 size names may have; `least` chars at least."""
    while len(s.encode()) > MAX_NAME_BYTES:
        s = s[:-1]
    return s if len(s) >= least else "x" * least


def names(least: int = 1) -> st.SearchStrategy[str]:
    edges = ["x" * MAX_NAME, "\u65e5" * MAX_NAME, "\U0001f600" * (MAX_NAME_BYTES // 4), "é" * 256]
    edges += [" ", "\n", "<script>alert(1)</script>", "a\tb", "'; DROP TABLE events; --"]
    return st.one_of(
        st.sampled_from(["research-bot", "summarize", "gpt-4o", "claude-haiku-4-5"]),
        st.sampled_from([e for e in edges if len(e) >= least]),
        st.text(NO_NUL, min_size=least, max_size=MAX_NAME).map(lambda s: _fit(s, least)),
    )


def ids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.uuids().map(str),
        st.text(NO_NUL, min_size=1, max_size=MAX_ID),
        st.just("i" * MAX_ID),
    )


def tokens() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(0, MAX_TOKENS),
        st.sampled_from([0, 1, MAX_TOKENS, MAX_TOKENS - 1]),
        st.integers(0, 2**24).map(float),  # a whole float is an integer
    )


def window_us() -> tuple[int, int]:
    """The timestamp window now, a minute inside its upper edge for latency."""
    lo = (MIN_TIMESTAMP - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    now = datetime.now(UTC)
    hi = (now + timedelta(days=1, minutes=-1) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    return lo, hi


SCALE = 2**40


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    # What is drawn must not depend on the clock (Hypothesis replays draws),
    # so a fixed-range number is mapped onto the window as it is now.
    lo, hi = window_us()
    point = draw(st.one_of(st.integers(0, SCALE), st.sampled_from([0, SCALE, -1])))
    us = hi - 86_400_000_000 if point < 0 else lo + (hi - lo) * point // SCALE
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    form = draw(st.sampled_from(["z", "utc", "offset", "naive", "unix", "unix_float", "date"]))
    if form == "z":
        return dt.isoformat().replace("+00:00", "Z")
    if form == "utc":
        return dt.isoformat()
    if form == "offset":
        minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
        local = dt.astimezone(timezone(timedelta(minutes=minutes)))
        return local.isoformat()
    if form == "naive":
        return dt.replace(tzinfo=None).isoformat()
    if form == "unix":
        return us // 1_000_000 + (1 if us % 1_000_000 else 0)  # rounded up: inside the window
    if form == "unix_float":
        return math.ceil(us / 1000) / 1000
    day = dt.date() + timedelta(days=1)  # a date is its midnight: the next one is inside
    return day.isoformat() if day <= (datetime.now(UTC) + timedelta(hours=23)).date() else None


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),  # NUL included: metadata keeps it, as a JSON escape
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def _fix(e: dict[str, Any]) -> dict[str, Any]:
    if e.get("kind", "llm") == "llm" and not e.get("model"):
        e["model"] = "gpt-4o"  # an LLM call needs a model
    return e


def valid_events() -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "id": st.one_of(st.none(), ids()),
        "model": names(0),
        **dict.fromkeys(TOKEN_FIELDS, tokens()),
        "latency_ms": st.one_of(
            st.floats(0, MAX_LATENCY), st.integers(0, int(MAX_LATENCY)), st.just(MAX_LATENCY)
        ),
        "cost_usd": st.one_of(
            st.none(), st.floats(0, MAX_COST), st.integers(0, int(MAX_COST)), st.just(MAX_COST)
        ),
        "status": st.sampled_from(["success", "error"]),
        "error_message": st.one_of(
            st.none(), st.text(NO_NUL, max_size=200), st.just("e" * MAX_ERROR)
        ),
        "timestamp": st.one_of(st.none(), timestamps()),
        "metadata": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4)
        ),
        "kind": st.sampled_from(["llm", "task", "tool"]),
        "trace_id": st.one_of(st.none(), ids()),
        "parent_id": st.one_of(st.none(), ids()),
        "provider": st.one_of(st.none(), st.sampled_from(["openai", "anthropic", ""]), names(0)),
        "user_id": st.one_of(st.none(), names(0)),
        "session_id": st.one_of(st.none(), names(0)),
    }
    base = st.fixed_dictionaries({"task_name": names(), "agent_name": names()}, optional=optional)
    extras = st.dictionaries(
        st.text(NO_NUL, min_size=1, max_size=10).filter(lambda k: k not in EVENT_FIELDS),
        JSON_VALUES,
        max_size=2,
    )
    return st.builds(lambda e, x: _fix({**x, **e}), base, extras)


SOON = object()  # one minute inside the window's upper edge, when drawn
EDGES: dict[str, list[Any]] = {
    **{
        n: ["x" * MAX_NAME, "\u65e5" * MAX_NAME, "\U0001f600" * (MAX_NAME_BYTES // 4)]
        for n in ("task_name", "agent_name", "model", "provider", "user_id", "session_id")
    },
    **{name: [0, MAX_TOKENS, float(MAX_TOKENS)] for name in TOKEN_FIELDS},
    "latency_ms": [0, 0.0, MAX_LATENCY, 0.01, 0.010000000000000002, 5e-324],
    "cost_usd": [0, MAX_COST, int(MAX_COST), 5e-324, None],
    "timestamp": [
        "2000-01-01T00:00:00Z",
        "1999-12-31T23:00:00-01:00",
        "2000-01-01T00:00:00",
        946_684_800,
        946_684_800_000,  # milliseconds
        SOON,
    ],
    "id": ["i" * MAX_ID, "\U0001f600" * MAX_ID],
    "trace_id": ["t" * MAX_ID],
    "parent_id": ["p" * MAX_ID],
    "error_message": ["e" * MAX_ERROR, "", "\U0001f600" * MAX_ERROR],
    "metadata": [{}, {"": None}, {"k": [[[[[]]]]]}, {"big": 2**70, "nan": math.nan}],
}


@st.composite
def edge_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with several fields at the edges of their ranges."""
    e = draw(valid_events())
    for name in draw(st.sets(st.sampled_from(sorted(EDGES)), min_size=1)):
        value = draw(st.sampled_from(EDGES[name]))
        if value is SOON:
            value = (datetime.now(UTC) + timedelta(days=1, minutes=-1)).isoformat()
        e[name] = value
    return _fix(e)


# --- strategies: invalid values --------------------------------------------------

LONG_EMOJI = "\U0001f600" * (MAX_NAME_BYTES // 4 + 1)
BAD_NAME = [None, "", 5, [], True, "x" * (MAX_NAME + 1), LONG_EMOJI, "a\x00", "\x00"]
BAD_OPT_NAME = [5, "p" * (MAX_NAME + 1), LONG_EMOJI, "\x00", "x\x00y", []]
BAD_ID = ["", "i" * (MAX_ID + 1), 5, "a\x00", {}]
BAD_TOKENS = [-1, MAX_TOKENS + 1, 2**53, 2**63, 2**64, "5", True, False, 5.5, None, [], "1e3"]
BAD_TIMESTAMPS = [
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "1900-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999999Z",
    "2000-01-01T00:00:00+00:01",
    "1970-01-01T00:00:00Z",
    "2999-01-01T00:00:00Z",
    -1,
    0,
    1e20,
    "now",
    "",
    True,
    [],
    "2026-02-30T00:00:00Z",
]
BAD_FIELDS: dict[str, list[Any]] = {
    "task_name": BAD_NAME,
    "agent_name": BAD_NAME,
    "model": [5, "m" * (MAX_NAME + 1), LONG_EMOJI, "a\x00", []],
    **dict.fromkeys(TOKEN_FIELDS, BAD_TOKENS),
    "latency_ms": [-0.1, MAX_LATENCY * 1.01, "1", True, None, [], "NaN"],
    "cost_usd": [-1, -1e-9, MAX_COST * 1.01, "1", True, [], "0.5"],
    "status": ["ok", None, 1, "", "SUCCESS"],
    "kind": ["agent", None, 1, "LLM", ""],
    "timestamp": BAD_TIMESTAMPS,
    "metadata": [[], "x", 5, True],
    "id": BAD_ID,
    "trace_id": BAD_ID,
    "parent_id": BAD_ID,
    "error_message": ["e" * (MAX_ERROR + 1), 5, "\x00", "bad\x00message"],
    "provider": BAD_OPT_NAME,
    "user_id": BAD_OPT_NAME,
    "session_id": BAD_OPT_NAME,
}


@st.composite
def invalid_event(draw: st.DrawFn) -> tuple[Any, str | None]:
    """An otherwise valid event with one bad field: (event, field)."""
    e = draw(valid_events())
    roll = draw(st.integers(0, 19))
    if roll == 0:
        return draw(st.sampled_from([5, "x", [], None, True])), None
    if roll == 1:
        e["kind"], e["model"] = "llm", ""
        return e, "model"
    name = draw(st.sampled_from(sorted(BAD_FIELDS)))
    e[name] = draw(st.sampled_from(BAD_FIELDS[name]))
    return e, name


BAD_BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'{"events": 5}',
    b'{"events": [], "x": 1}',
    b'{"evts": []}',
    b"\xff\xfe",
    b'{"events": [{"task_name": "\\ud800", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "a\x00", "agent_name": "a", "model": "m"}]}',
    b"[" * 5000 + b"]" * 5000,
    b'{"events": [' + b"[" * 300 + b"]" * 300 + b"]}",
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "input_tokens": 1e400}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "latency_ms": NaN}]}',
]


# --- strategies: query parameters -------------------------------------------------

# Every parameter of every GET route, and one that none of them knows.
PARAM_NAMES = [*sorted({n for names in QUERY_STRINGS.values() for n in names}), "x"]
ODD_VALUES = [
    "",
    "\x00",
    "a\x00b",
    "%00",
    "1h",
    "24h",
    "7d",
    "30d",
    "all",
    "2h",
    "llm",
    "task",
    "success",
    "error",
    "agent_name",
    "model",
    "task_name",
    "0",
    "1",
    "-1",
    "5000",
    "43200",
    "43201",
    "1000",
    "1001",
    "1000000000000",
    "1000000000001",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999",
    "-99999999999999999999999",
    "1e20",
    "NaN",
    "inf",
    "-0",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+05:30",
    "1900-01-01",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999-23:59",
    "-99999999999",
    "99999999999999",
    "x" * 300,
    "\U0001f600" * 100,
    "\ud7ff\ue000",
]
PARAM_VALUES = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.text(max_size=40),
    st.integers(-(2**80), 2**80).map(str),
    st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat()),
    st.floats().map(str),
)
RAW_QUERIES = [
    "%",
    "%ff",
    "%zz",
    "agent_name=%ff%fe",
    "agent_name=%ed%a0%80",
    "&&&",
    "=",
    "==",
    "limit=1&limit=2",
    "limit=",
    "period=all&period=1h",
    "since=%2B",
    "a=" + "b" * 8000,
]


# --- the state machine ---------------------------------------------------------------

JSON = {"content-type": "application/json"}


def body(events: list[Any]) -> bytes:
    # The standard library writes NaN and Infinity (in metadata), as many
    # clients do; the server keeps them as null.
    return json.dumps({"events": events}).encode()


def make_machine(state: Live) -> type[RuleBasedStateMachine]:
    class Traffic(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.reads = 0

        @rule(events=st.lists(valid_events(), max_size=12))
        def post_valid(self, events: list[dict[str, Any]]) -> None:
            state.steps["valid batch"] += 1
            r = state.request("POST", "/api/events", content=body(events), headers=JSON)
            assert r.status_code == 200, (r.text, events)
            assert r.json() == {"status": "ok", "count": len(events)}
            state.acknowledge(events)

        @rule(events=st.lists(edge_events(), min_size=1, max_size=6))
        def post_edges(self, events: list[dict[str, Any]]) -> None:
            state.steps["edge batch"] += 1
            r = state.request("POST", "/api/events", content=body(events), headers=JSON)
            assert r.status_code == 200, (r.text, events)
            assert r.json() == {"status": "ok", "count": len(events)}
            state.acknowledge(events)

        @rule(
            events=st.lists(valid_events(), max_size=4),
            bad=invalid_event(),
            where=st.integers(0, 4),
        )
        def post_invalid(self, events: list[Any], bad: tuple[Any, str | None], where: int) -> None:
            state.steps["invalid batch"] += 1
            event, name = bad
            index = min(where, len(events))
            events.insert(index, event)
            r = state.request("POST", "/api/events", content=body(events), headers=JSON)
            assert r.status_code == 422, (r.status_code, r.text, event)
            errors = r.json()["errors"]
            assert any(e["index"] == index for e in errors), (errors, index, event)
            if name is not None:
                assert any(e["index"] == index and e["field"] == name for e in errors), (
                    errors,
                    name,
                )

        @rule(body=st.sampled_from(BAD_BODIES) | st.binary(max_size=64))
        def post_malformed(self, body: bytes) -> None:
            state.steps["malformed body"] += 1
            r = state.request("POST", "/api/events", content=body, headers=JSON)
            if r.status_code == 200:  # random bytes that happen to be a valid batch
                assert json.loads(body)["events"] == []
                return
            assert r.status_code in (400, 413, 422), (r.status_code, r.text, body[:100])

        @rule(
            path=st.sampled_from([*GET_PATHS, "/api/health"]),
            params=st.lists(st.tuples(st.sampled_from(PARAM_NAMES), PARAM_VALUES), max_size=4),
        )
        def query(self, path: str, params: list[tuple[str, str]]) -> None:
            state.steps["query"] += 1
            r = state.request("GET", path, params=params)
            assert r.status_code in (200, 422), (path, params, r.status_code, r.text)
            r.json()

        @rule(path=st.sampled_from(GET_PATHS), raw=st.sampled_from(RAW_QUERIES))
        def raw_query(self, path: str, raw: str) -> None:
            state.steps["raw query"] += 1
            r = state.request("GET", f"{path}?{raw}")
            assert r.status_code in (200, 422), (path, raw, r.status_code, r.text)

        @invariant()
        def still_serving_everyone(self) -> None:
            fresh = ev(task_name="fresh", agent_name="checker")
            r = state.request("POST", "/api/events", json={"events": [fresh]})
            assert r.status_code == 200, r.text
            state.acknowledge([fresh])
            # One of the dashboard's reads after each step, all of them at the
            # end of each sequence (teardown).
            path, params = DASHBOARD_READS[self.reads % len(DASHBOARD_READS)]
            self.reads += 1
            self.dashboard_read(path, params)
            stored = state.request("GET", "/api/health").json()["events"]
            assert stored == state.expected, (stored, state.expected)

        def dashboard_read(self, path: str, params: dict[str, Any]) -> None:
            r = state.request("GET", path, params=params)
            assert r.status_code == 200, (path, params, r.text)

        def teardown(self) -> None:
            for path, params in DASHBOARD_READS:
                self.dashboard_read(path, params)

    return Traffic


def test_random_traffic_never_breaks_the_server(live: Live) -> None:
    examples = os.environ.get("AGENTWATCH_HYPOTHESIS_EXAMPLES")
    current = settings()
    run_state_machine_as_test(
        make_machine(live),
        settings=settings(
            current,
            max_examples=int(examples) if examples else current.max_examples,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        ),
    )
    assert not live.failures, live.failures[:5]


def test_the_suite_reached_the_edges(live: Live) -> None:
    """The run above went through every kind of step, and the server stored
    what it acknowledged (checked again in full at the end of the module)."""
    assert {"valid batch", "edge batch", "invalid batch", "query"} <= set(live.steps), live.steps
    assert live.statuses[422] > 0
    assert live.client.get("/api/health").json()["events"] == live.expected
