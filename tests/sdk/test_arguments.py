"""Bad arguments to log_event and @track never raise in the caller (outside AGENTWATCH_STRICT).

The suite runs with AGENTWATCH_STRICT=1, so the production path is tested with
the variable removed (in-process) and in a plain subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import agentwatch
from agentwatch import schema
from agentwatch.sdk import events
from tests.sdk.conftest import Captured, run_py

# (keyword arguments, the field the warning must name)
BAD: list[tuple[dict[str, Any], str]] = [
    ({"metadata": [1, 2]}, "metadata"),
    ({"metadata": "abc"}, "metadata"),
    ({"metadata": 5}, "metadata"),
    ({"input_tokens": "5"}, "input_tokens"),
    ({"output_tokens": True}, "output_tokens"),
    ({"reasoning_tokens": -1}, "reasoning_tokens"),
    ({"cache_read_tokens": 1.5}, "cache_read_tokens"),
    ({"cost_usd": "1"}, "cost_usd"),
    ({"cost_usd": float("inf")}, "cost_usd"),
    ({"latency_ms": float("nan")}, "latency_ms"),
    ({"latency_ms": "12"}, "latency_ms"),
    ({"status": "ok"}, "status"),
    ({"kind": "span"}, "kind"),
    ({"task_name": 5}, "task_name"),
    ({"model": None}, "model"),
    ({"error_message": ValueError("x")}, "error_message"),
    ({"user_id": 42}, "user_id"),
    ({"timestamp": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}, "timestamp"),
    (
        {"timestamp": datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1)))},
        "timestamp",
    ),
    ({"timestamp": 1e20}, "timestamp"),
    ({"timestamp": [2026]}, "timestamp"),
    ({"no_such_argument": 1}, "no_such_argument"),
]


def test_kinds_and_statuses_match_the_contract() -> None:
    assert events.KINDS == schema.KINDS
    assert events.STATUSES == schema.STATUSES


@pytest.mark.parametrize(("kwargs", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_argument_raises_only_in_strict_mode(kwargs: dict[str, Any], field: str) -> None:
    sink: list[dict[str, Any]] = []
    agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink.extend, auto_patch=False)
    said = "is not an argument of log_event" if field == "no_such_argument" else "must be"
    with pytest.raises(TypeError, match=f"log_event: {field} {said}"):
        agentwatch.log_event(**{"model": "m", **kwargs})
    agentwatch.flush()
    assert sink == []


def test_bad_arguments_are_dropped_counted_and_logged_once(
    captured: Captured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AGENTWATCH_STRICT")
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        for kwargs, _ in BAD:
            assert agentwatch.log_event(**{"model": "m", "task_name": "bad", **kwargs}) is False
        for kwargs, _ in BAD:  # again: counted again, not logged again
            assert agentwatch.log_event(**{"model": "m", "task_name": "bad", **kwargs}) is False
        assert agentwatch.log_event(model="m", task_name="good", metadata={"k": 1})
    assert [e["task_name"] for e in captured.events()] == ["good"]
    st = agentwatch.stats()
    assert st["dropped_invalid"] == 2 * len(BAD)
    assert st["sent"] == 1 and st["dropped_rejected"] == 0
    warned = [r.getMessage() for r in caplog.records if "event dropped" in r.getMessage()]
    assert len(warned) == len({f for _, f in BAD})  # once per field
    (meta,) = [w for w in warned if "metadata must be" in w]
    assert "a dict, or None" in meta and "[1, 2]" in meta


def test_what_the_docs_allow_is_accepted(captured: Captured) -> None:
    ok = [
        {"timestamp": datetime(2026, 3, 1, 12, 0)},  # naive means UTC
        {"timestamp": datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))},
        {"timestamp": "2026-03-01T12:00:00Z"},
        {"timestamp": 1_772_366_400},
        {"timestamp": -86_400.5},  # 1969: before the epoch is a date too
        {"latency_ms": 5, "cost_usd": 0},
        {"metadata": {}},
        {"metadata": None, "error_message": None, "status": "error"},
        {"kind": "tool", "provider": "custom", "user_id": "u", "session_id": "s"},
    ]
    for kwargs in ok:
        assert agentwatch.log_event(**{"model": "m", **kwargs}), kwargs
    sent = captured.events()
    assert len(sent) == len(ok)
    stamps = [e["timestamp"] for e in sent[:5]]
    assert stamps == [
        "2026-03-01T12:00:00+00:00",
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00.000000+00:00",
        "1969-12-30T23:59:59.500000+00:00",
    ]
    assert datetime.fromisoformat(stamps[4]) == datetime.fromtimestamp(-86_400.5, UTC)


def test_track_bad_arguments(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="track"):
        agentwatch.track("not-a-function")  # type: ignore[call-overload]

    monkeypatch.delenv("AGENTWATCH_STRICT")

    @agentwatch.track("summarize")  # type: ignore[call-overload]
    def positional() -> int:
        return 1

    @agentwatch.track(task=5, agent=["x"])  # type: ignore[arg-type]
    def wrong_types() -> int:
        return 2

    assert positional() == 1  # runs, untracked
    assert wrong_types() == 2  # runs, tracked under the defaults
    assert agentwatch.track(task="t")(7) == 7  # type: ignore[type-var]
    (run,) = captured.events("task")
    assert run["task_name"] == "wrong_types" and run["agent_name"] == "test-agent"


def test_errors_the_sdk_writes_carry_no_nul(captured: Captured) -> None:
    @agentwatch.track(task="nul")
    def fails() -> None:
        raise ValueError("bad\x00byte")

    with pytest.raises(ValueError, match="bad\x00byte"):  # the caller's exception is untouched
        fails()
    (run,) = captured.events("task")
    assert run["error_message"] == "badbyte"


def test_a_program_with_bad_arguments_runs_to_the_end(server: Any) -> None:
    """As a user runs it: no AGENTWATCH_STRICT, a real server, bad calls among good ones."""
    code = f"""
        import json, agentwatch
        agentwatch.init(server_url="{server.url}", auto_patch=False)
        results = [
            agentwatch.log_event(model="m", task_name="t", metadata=[1, 2]),
            agentwatch.log_event(model="m", task_name="t", metadata="abc"),
            agentwatch.log_event(model="m", task_name="t", metadata=5),
            agentwatch.log_event(model="m", task_name="t", input_tokens="5"),
            agentwatch.log_event(model="m", task_name="t", output_tokens=True),
            agentwatch.log_event(model="m", task_name="t", cost_usd="1"),
            agentwatch.log_event(model="m", task_name="t", colour="red"),
        ]

        @agentwatch.track("oops")
        def job():
            agentwatch.log_event(model="m", task_name="t", input_tokens=3)
            return "done"

        assert job() == "done"
        assert agentwatch.flush(20)
        print(json.dumps({{"results": results, "stats": agentwatch.stats()}}))
        """
    r = run_py(code, strict=False, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["results"] == [False] * 7
    assert out["stats"]["dropped_invalid"] == 7 and out["stats"]["sent"] == 1
    assert "metadata must be a dict" in r.stderr and "Traceback" not in r.stderr
    import httpx

    stored = httpx.get(server.url + "/api/events", params={"task_name": "t"}).json()["events"]
    assert [e["input_tokens"] for e in stored] == [3]


def test_each_argument_lands_in_its_own_field(captured: Captured) -> None:
    """log_event hands its arguments on by position: every one must reach its field."""
    given: dict[str, Any] = {
        "id": "id-1",
        "task_name": "task-1",
        "agent_name": "agent-1",
        "model": "model-1",
        "input_tokens": 11,
        "output_tokens": 12,
        "cache_read_tokens": 13,
        "cache_write_tokens": 14,
        "reasoning_tokens": 15,
        "latency_ms": 16.5,
        "cost_usd": 17.5,
        "status": "error",
        "error_message": "message-1",
        "timestamp": "2026-03-01T12:00:00+00:00",
        "metadata": {"m": 1},
        "kind": "tool",
        "trace_id": "trace-1",
        "parent_id": "parent-1",
        "provider": "provider-1",
        "user_id": "user-1",
        "session_id": "session-1",
    }
    assert list(given) == list(schema.EVENT_FIELDS)
    assert agentwatch.log_event(**given)
    (ev,) = captured.events()
    assert ev == given


POOLS: dict[str, list[Any]] = {
    "count": [0, 7, 2**70, -1, True, False, "5", 1.5, None],
    "amount": [0, 0.0, 12, 1.5, -0.1, float("inf"), float("nan"), "1", True, None],
    "text": ["x", "", None, 5, b"x", ["x"]],
    "timestamp": [
        1.7e9,
        -1.0,
        1.7e9 + 0.5,
        1e20,
        float("nan"),
        "2026-03-01T12:00:00Z",
        datetime(2026, 3, 1),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        True,
        None,
    ],
    "metadata": [{}, {"a": 1}, [1, 2], "abc", 5, None],
    "status": ["success", "error", "ok", 5, None],
    "kind": ["llm", "task", "tool", "span", None],
}
POOL_OF = {
    **{f: "count" for f in events.COUNT_FIELDS},
    "latency_ms": "amount",
    "cost_usd": "amount",
    "timestamp": "timestamp",
    "metadata": "metadata",
    "status": "status",
    "kind": "kind",
}


def test_the_fast_check_agrees_with_the_rules() -> None:
    """problem() answers from a one-expression shortcut for the usual event; it must agree."""
    import random

    rng = random.Random(17)
    base = {name: None for name, _, _ in events.RULES}
    base.update(task_name="t", agent_name="a", model="m", latency_ms=1.0, timestamp=1.7e9)
    base.update({f: 0 for f in events.COUNT_FIELDS}, status="success", kind="llm", metadata={})
    assert events.problem(base) is None
    tried = 0
    for _ in range(5_000):
        ev = dict(base)
        for name in rng.sample(sorted(base), rng.randint(1, 3)):
            ev[name] = rng.choice(POOLS[POOL_OF.get(name, "text")])
        expected = next(((n, w) for n, ok, w in events.RULES if not ok(ev[n])), None)
        assert events.problem(ev) == expected, ev
        tried += expected is None
    assert 200 < tried < 4_800  # both kinds of case were tried
