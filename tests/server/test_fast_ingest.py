"""The fast ingest path against the pydantic path, in-process (no server).

`fast_rows` must, for every body, either return exactly the rows and count of
`to_rows(parse_batch(body))` or return None (and let pydantic decide). These
tests compare the two on many generated valid events and on a long list of
invalid and unusual inputs; `batch_rows` (what the request handler calls) must
match the pydantic path in every case, rows or BatchError alike.

Rows are compared by type and repr as well as by value, so 5 vs 5.0, True vs 1
and -0.0 vs 0.0 count as differences. The only fields normalised are the ones
the server makes up: the id of an event sent without one and the timestamp of
an event sent without one (checked for shape and range instead).
"""

from __future__ import annotations

import calendar
import json
import random
import re
import string
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from agentwatch.pricing import PriceBook, Rates
from agentwatch.schema import (
    EVENT_FIELDS,
    MAX_COST,
    MAX_ERROR,
    MAX_ID,
    MAX_LATENCY,
    MAX_NAME,
    MAX_NAME_BYTES,
    MAX_TOKENS,
    Event,
)
from agentwatch.server.validate import BatchError, batch_rows, fast_rows, parse_batch, to_rows
from agentwatch.store.tables import INSERT_COLUMNS

MAX_EVENTS = 1000
# One model has user rates, so user pricing is compared as well as genai-prices
# and the fallback; a price book caches, so both paths share one.
PRICES = PriceBook({"house-model": Rates(1.25, 7.5, 0.125, 2.5, "user")})
MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-haiku-3-5-20241022",
    "claude-haiku-4-5",  # priced differently by one provider below
    "house-model",
    "no-such-model",
]
PROVIDERS = [None, "openai", "anthropic", "quicksilverpro", "", "nobody"]
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TS = INSERT_COLUMNS.index("ts")
US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- JSON text with the forms orjson.dumps cannot produce ---------------------


class Raw(str):
    """JSON text inserted verbatim (a number spelled a particular way, NaN, ...)."""


class Pairs(list[tuple[str, Any]]):
    """A JSON object written from (key, value) pairs, so keys may repeat."""


def encode(value: Any, ascii_only: bool = False) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs | dict):
        items = value if isinstance(value, Pairs) else value.items()
        return (
            "{"
            + ",".join(f"{encode(k, ascii_only)}:{encode(v, ascii_only)}" for k, v in items)
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(encode(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def body_of(events: Any, ascii_only: bool = False) -> bytes:
    return encode({"events": events}, ascii_only).encode()


# --- the two paths and a comparable outcome of each ---------------------------


def now_us() -> int:
    return (datetime.now(UTC) - EPOCH) // US


def typed(row: tuple[Any, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((type(v).__name__, repr(v)) for v in row)


def normalised(rows: list[tuple[Any, ...]], events: list[Event], t0: int, t1: int) -> list[Any]:
    """Rows with the server-made id and timestamp replaced by markers, after checking them."""
    kept, seen = [], set()
    for ev in events:  # the events that make a row: the first of each id
        if ev.id is not None:
            if ev.id in seen:
                continue
            seen.add(ev.id)
        kept.append(ev)
    assert len(rows) == len(kept)
    out = []
    for row, ev in zip(rows, kept, strict=True):
        row = list(row)
        if ev.id is None:
            assert UUID_RE.fullmatch(row[0]), row[0]
            row[0] = "<made by the server>"
        if ev.timestamp is None:
            assert t0 <= row[TS] <= t1
            row[TS] = "<time of arrival>"
        out.append(typed(tuple(row)))
    return out


def error(e: Exception) -> tuple[Any, ...]:
    if isinstance(e, BatchError):
        return ("BatchError", e.status, e.message, e.errors)
    # Not a rejection but a failure: a bug in whichever path raised.
    return ("raised", type(e).__name__, str(e))


def slow_outcome(body: bytes, max_events: int, now: int | None = None) -> tuple[Any, ...]:
    """The pydantic path: ("ok", events, rows, count), the BatchError, or what it raised."""
    try:
        events = parse_batch(body, max_events, now)
        return ("ok", events, to_rows(events, PRICES, now), len(events))
    except Exception as e:
        return error(e)


def compare(body: bytes, max_events: int = MAX_EVENTS, now: int | None = None) -> bool:
    """Assert both paths agree on `body`; True if the fast path took it.

    All three are given one arrival time (`now`, default the clock), as
    batch_rows gives its two: it bounds timestamps and stamps events sent
    without one.
    """
    now = now_us() if now is None else now
    t0 = t1 = now
    slow = slow_outcome(body, max_events, now)
    fast = fast_rows(body, max_events, PRICES, now)
    try:
        public: tuple[Any, ...] = ("ok", *batch_rows(body, max_events, PRICES, now))
    except Exception as e:
        public = error(e)
    if slow[0] != "ok":
        # Pydantic rejects it (or to_rows fails): the fast path must not take
        # it, and the public entry point must give exactly the same error.
        assert fast is None, f"fast path took a body the pydantic path refuses: {slow}"
        assert public == slow
        return False
    _, events, rows, count = slow
    expected = normalised(rows, events, t0, t1)
    if fast is not None:
        assert normalised(fast[0], events, t0, t1) == expected
        assert fast[1] == count
    assert public[0] == "ok", public
    assert normalised(public[1], events, t0, t1) == expected
    assert public[2] == count
    return fast is not None


# --- generated valid events ---------------------------------------------------

# No NUL: the event's own strings refuse it (metadata keeps it, see below).
NAME_CHARS = string.ascii_letters + string.digits + '-_ ./:é日\U0001f600\n"\\'


def text(rng: random.Random, lo: int, hi: int) -> str:
    """A string of lo..hi code points, lengths at the bounds often."""
    n = rng.choice([lo, hi, rng.randint(lo, hi), rng.randint(lo, min(hi, lo + 12))])
    return "".join(rng.choices(NAME_CHARS, k=n))


# The lower edge of the timestamp window, spelled as the fast path takes it.
WINDOW_EDGES = [
    "2000-01-01T00:00:00Z",
    "2000-01-01T00:00:00",
    "2000-01-01T00:00:00.000000+00:00",
    "1999-12-31T23:00:00-01:00",
    "2000-01-01T05:30:00+05:30",
    "1999-12-31T00:01:00-23:59",
]


def timestamp(rng: random.Random) -> str:
    """An RFC 3339 timestamp in one of the shapes the fast path takes, inside
    the window (2000-01-02 to the end of last year: a day away from either edge
    whatever the offset; the edges themselves have cases of their own)."""
    if rng.random() < 0.1:
        return rng.choice(WINDOW_EDGES)
    year = rng.choice([2000, 2001, 2024, datetime.now(UTC).year - 1, rng.randint(2000, 2025)])
    month = rng.randint(1, 12)
    day = rng.choice([1, calendar.monthrange(year, month)[1], rng.randint(1, 28)])
    if (year, month, day) == (2000, 1, 1):
        day = 2
    s = f"{year:04d}-{month:02d}-{day:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    s += f":{rng.choice([0, 59, rng.randint(0, 59)]):02d}"
    digits = rng.randint(0, 6)
    if digits:
        s += "." + "".join(rng.choice("0123456789") for _ in range(digits))
    tz = rng.choice(["naive", "Z", "+00:00", "-00:00", "offset"])
    if tz == "offset":
        h, m = rng.choice([(23, 59), (0, 30), (5, 30), (rng.randint(0, 23), rng.randint(0, 59))])
        s += f"{rng.choice('+-')}{h:02d}:{m:02d}"
    elif tz != "naive":
        s += tz
    return s


def number(rng: random.Random, hi: float) -> Any:
    """A value for a float field: a JSON float or int, bounds included."""
    return rng.choice(
        [
            0,
            0.0,
            Raw("-0.0"),
            Raw("-0"),
            0.01,  # the latency sketch's first bin edge
            0.010000000000000002,
            hi,
            int(hi),
            Raw(f"{hi:e}"),
            rng.randint(0, int(hi)),
            rng.uniform(0, hi),
            round(rng.uniform(0, 5000), 2),
            rng.lognormvariate(6.5, 2.0) % hi,
            Raw("1E3"),
            Raw("0.1000000000000000055511151231257827"),
            Raw(f"{rng.randint(0, 10**9)}.{rng.randint(0, 10**20)}"),
        ]
    )


def metadata(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: rng.choice(["", "x", "日本", "\U0001f600", "a\u0000b"]),
        lambda: rng.randint(-(2**63), 2**64 - 1),  # orjson and pydantic agree on these ints
        lambda: rng.choice([0, -1, 2**53 + 1, 2**63 - 1, 2**64 - 1, -(2**63)]),
        lambda: rng.choice([0.5, -0.0, 1e-300, 5e-324, 1e18, -9.2e18, rng.uniform(-1e6, 1e6)]),
        lambda: rng.choice([True, False, None]),
    ]
    if depth < 4:
        choices.append(lambda: [metadata(rng, depth + 1) for _ in range(rng.randint(0, 3))])
        choices.append(
            lambda: {text(rng, 0, 5): metadata(rng, depth + 1) for _ in range(rng.randint(0, 3))}
        )
    return rng.choice(choices)()


def meta_object(rng: random.Random) -> dict[str, Any]:
    return {text(rng, 0, 8): metadata(rng) for _ in range(rng.randint(1, 4))}


def event(rng: random.Random, ids: list[str]) -> Pairs:
    """One valid event in the plain form the fast path takes, as JSON pairs."""
    kind = rng.choice(["llm", "llm", "task", "tool", None])
    e: dict[str, Any] = {
        "task_name": text(rng, 1, MAX_NAME),
        "agent_name": text(rng, 1, MAX_NAME),
    }
    optional: dict[str, Callable[[], Any]] = {
        "id": lambda: rng.choice(ids),
        "model": lambda: rng.choice([*MODELS, text(rng, 1, MAX_NAME)]),
        "input_tokens": lambda: rng.choice([0, 1, MAX_TOKENS, rng.randint(0, 10**6)]),
        "output_tokens": lambda: rng.choice([0, MAX_TOKENS, rng.randint(0, 10**5)]),
        "cache_read_tokens": lambda: rng.choice([0, rng.randint(0, 10**6)]),
        "cache_write_tokens": lambda: rng.choice([0, rng.randint(0, 10**5)]),
        "reasoning_tokens": lambda: rng.randint(0, 10**4),
        "latency_ms": lambda: number(rng, MAX_LATENCY),
        "cost_usd": lambda: rng.choice([None, number(rng, MAX_COST)]),
        "status": lambda: rng.choice(["success", "error"]),
        "error_message": lambda: rng.choice([None, "", text(rng, 0, MAX_ERROR)]),
        "timestamp": lambda: rng.choice([None, timestamp(rng)]),
        "metadata": lambda: rng.choice([None, {}, {"run": 1}, meta_object(rng)]),
        "kind": lambda: kind,
        "trace_id": lambda: rng.choice([None, text(rng, 1, MAX_ID)]),
        "parent_id": lambda: rng.choice([None, text(rng, 1, MAX_ID)]),
        "provider": lambda: rng.choice(PROVIDERS),
        "user_id": lambda: rng.choice([None, text(rng, 0, MAX_NAME)]),
        "session_id": lambda: rng.choice([None, text(rng, 0, MAX_NAME)]),
    }
    for name, make in optional.items():
        if rng.random() < 0.6:
            e[name] = make()
    if e.get("kind") is None:
        e.pop("kind", None)
    if e.get("kind", "llm") == "llm" and not e.get("model"):
        e["model"] = rng.choice(MODELS)  # "llm" needs a model
    if e.get("id") is None and rng.random() < 0.3:
        e["id"] = None  # sent as null, which means "make one"
    pairs = Pairs(e.items())
    # Unknown top-level keys (kept under metadata), some named like metadata keys.
    for _ in range(rng.choice([0, 0, 0, 1, 3])):
        key = rng.choice(["run", "source", "sdk_version", "", "_x", "model_config", "Model"])
        pairs.append((key, metadata(rng)))
    rng.shuffle(pairs)
    if rng.random() < 0.1:  # a key sent twice: the last one counts
        k, v = rng.choice(pairs)
        pairs.insert(0, (k, rng.choice([v, "", -1, None])))
    return pairs


@pytest.mark.parametrize("seed", range(40))
def test_generated_valid_batches_give_the_same_rows(seed: int) -> None:
    rng = random.Random(seed)
    ids = [text(rng, 1, MAX_ID) for _ in range(rng.randint(1, 40))]
    for _ in range(25):
        events = [event(rng, ids) for _ in range(rng.choice([0, 1, 2, 7, 30, 100]))]
        body = body_of(events, ascii_only=rng.random() < 0.5)
        if rng.random() < 0.2:  # whitespace between tokens is allowed
            body = body.replace(b'{"events":', b' {\n\t"events" :  ', 1) + b" \n"
        took = compare(body)
        # A repeated key may have sent an invalid value first, and extras can
        # hold floats the fast path leaves to pydantic; otherwise it must take it.
        # A NUL anywhere (metadata keeps it) sends the batch to pydantic too.
        plain = b"\\u0000" not in body and not any(
            isinstance(v, float) and abs(v) >= 2**63 for v in _leaves(events)
        )
        if plain:
            assert took, body[:300]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, Pairs | dict):
        items = value if isinstance(value, Pairs) else list(value.items())
        return [x for _, v in items for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def test_realistic_batch_is_taken_by_the_fast_path() -> None:
    from benchmarks._common import make_events

    evs = make_events(500, 0.01, ordered=True)
    evs[3]["id"] = evs[2]["id"]  # a retried event inside the batch is stored once
    del evs[5]["id"], evs[6]["timestamp"]
    evs[7]["cost_usd"] = 0.5
    assert compare(orjson.dumps({"events": evs}))


def test_duplicate_ids_keep_the_first_event() -> None:
    first = {"id": "a", "task_name": "t", "agent_name": "x", "model": "gpt-4o", "input_tokens": 1}
    again = {**first, "input_tokens": 2}
    body = orjson.dumps({"events": [first, {**first, "id": "b"}, again]})
    assert compare(body)
    rows, count = fast_rows(body, MAX_EVENTS, PRICES) or ([], 0)
    assert count == 3
    assert [(r[0], r[4]) for r in rows] == [("a", 1), ("b", 1)]


def test_rates_are_looked_up_per_model_and_provider() -> None:
    one = {"task_name": "t", "agent_name": "a", "model": "claude-haiku-4-5", "input_tokens": 10**6}
    events = [one, {**one, "provider": "quicksilverpro"}, {**one, "provider": "anthropic"}, one]
    body = orjson.dumps({"events": events})
    assert compare(body)
    rows, _ = fast_rows(body, MAX_EVENTS, PRICES) or ([], 0)
    costs = [r[INSERT_COLUMNS.index("cost_usd")] for r in rows]
    assert costs[0] == costs[2] == costs[3] != costs[1]  # that provider's rates differ


# --- invalid and unusual inputs -----------------------------------------------

BASE: dict[str, Any] = {
    "id": "e1",
    "task_name": "summarize",
    "agent_name": "research-bot",
    "model": "gpt-4o",
    "input_tokens": 1000,
    "output_tokens": 200,
    "latency_ms": 2340.5,
    "status": "success",
    "timestamp": "2026-02-09T15:30:00.123456+00:00",
    "metadata": {"source": "batch_1"},
}


def deep(n: int) -> Raw:
    return Raw("[" * n + "]" * n)


# (field, value) pairs; a value of MISSING removes the field.
MISSING = object()
FIELD_CASES: list[tuple[str, Any]] = [
    # required names
    *[("task_name", v) for v in (MISSING, None, "", 5, [], {}, True, "x" * 257, "日" * 256)],
    *[("agent_name", v) for v in (MISSING, None, "", 1.5, "a" * 257, "\U0001f600" * 256)],
    # NUL in the event's strings; the UTF-8 size of names (768 bytes)
    *[
        (f, v)
        for f in ("task_name", "agent_name", "model", "provider", "user_id", "session_id")
        for v in (
            "\x00",
            "a\x00",
            "\x00" * 256,
            "\U0001f600" * (MAX_NAME_BYTES // 4),
            "\U0001f600" * (MAX_NAME_BYTES // 4) + "a",
            "\U0001f600" * (MAX_NAME_BYTES // 4 + 1),
            "\u65e5" * 256,
            "\u65e5" * 255 + "\U0001f600",
            "é" * 256,
            "a" * 193,
        )
    ],
    *[(f, "x\x00y") for f in ("id", "trace_id", "parent_id", "error_message")],
    ("metadata", {"k": "a\x00b"}),
    ("metadata", {"k\x00": 1}),
    ("extra_nul", "\x00"),
    # the model, and "llm needs a model"
    *[("model", v) for v in (MISSING, None, "", 5, "m" * 256, "m" * 257)],
    *[("kind", v) for v in ("task", "tool", "agent", "LLM", None, 1, ["llm"])],
    # token counts
    *[
        ("input_tokens", v)
        for v in ("12", True, False, 5.0, 5.5, -1, 2**53, 2**53 + 1, 2**64, None, Raw("1e3"))
    ],
    *[("reasoning_tokens", v) for v in ("0", -0.0, Raw("-0"), 10**30, [1])],
    *[
        (f"{part}_tokens", v)
        for part in ("input", "output", "cache_read", "cache_write", "reasoning")
        for v in (
            MAX_TOKENS,
            MAX_TOKENS + 1,
            float(MAX_TOKENS),
            Raw("1e9"),
            Raw("1.000000001e9"),
            Raw("1000000000.0"),
            2**53,
            2**63,
            "1",
            True,
        )
    ],
    # floats
    *[
        ("latency_ms", v)
        for v in (
            "1",
            True,
            -0.1,
            Raw("-0.0"),
            1e10,
            10**10,
            10**10 + 1,
            1e10 + 1e-3,
            None,
            Raw("1e400"),
            Raw("NaN"),
            Raw("Infinity"),
            Raw("-Infinity"),
            Raw("1" + "0" * 400),
        )
    ],
    *[
        ("cost_usd", v)
        for v in (
            "0.1",
            "1",
            False,
            True,
            -1,
            -1e-9,
            1e9,
            10**9,
            10**9 + 1,
            1e9 + 0.5,
            Raw("NaN"),
            0,
            None,
        )
    ],
    # literals
    *[("status", v) for v in ("ok", "Success", "error", None, 1, "")],
    # optional strings and ids
    *[("id", v) for v in ("", "i" * 128, "i" * 129, 5, None, MISSING)],
    *[("trace_id", v) for v in ("", "t" * 129, 0)],
    *[("parent_id", v) for v in ("", "p" * 128)],
    *[("provider", v) for v in ("", "p" * 257, True)],
    *[("user_id", v) for v in ("u" * 256, "u" * 257)],
    *[("session_id", v) for v in ([], "")],
    *[("error_message", v) for v in ("e" * MAX_ERROR, "e" * (MAX_ERROR + 1), 404)],
    # timestamps: what pydantic rejects, and what it takes that the fast path leaves to it
    *[
        ("timestamp", v)
        for v in (
            "2026-02-09",
            "2026-02-09T15:30",
            "2026-02-09 15:30:00",
            "2026-02-09t15:30:00",
            "2026-02-09T15:30:00z",
            "2026-02-09T15:30:00,5",
            "2026-02-09T15:30:00.",
            "2026-02-09T15:30:00.1234567",
            "2026-02-09T15:30:00.123456789Z",
            "2026-02-09T15:30:00+05:60",
            "2026-02-09T15:30:00+24:00",
            "2026-02-09T15:30:00+05",
            "2026-02-09T15:30:00+0530",
            "2026-02-09T15:30:00+05:30:15",
            "2026-02-09T15:30:00 +05:30",
            "2026-02-09T24:00:00",
            "2026-02-09T23:59:60",
            "2026-02-30T00:00:00",
            "2025-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "0000-01-01T00:00:00",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.999999-23:59",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "1900-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            *WINDOW_EDGES,
            "1999-12-31T23:59:59.999999Z",
            "1999-12-31T23:59:59.999999",
            "2000-01-01T00:00:00+00:01",
            "2000-01-01T00:59:59.999999+01:00",
            "2000-01-01",
            "2099-01-01T00:00:00Z",
            946_684_800,
            946_684_799,
            946_684_799.999999,
            946_684_800_000,
            "946684800",
            "\uff12\uff10\uff12\uff16-02-09T15:30:00",  # fullwidth digits
            "2026-02-09T15:30:00\n",
            " 2026-02-09T15:30:00",
            "2026-W06-1T15:30:00",
            "20260209T153000",
            "",
            "now",
            "1700000000",
            1700000000,
            1700000000.5,
            1700000000123,
            -1,
            True,
            [],
        )
    ],
    # metadata
    *[
        ("metadata", v)
        for v in (
            [],
            "x",
            5,
            {"a": Raw("NaN")},
            {"a": Raw("1e400")},
            {"a": 1e300},
            {"a": 2**63},
            {"a": 2**64 - 1},
            {"a": 2**64},
            {"a": -(2**63) - 1},
            {"a": 10**30},
            {"a": deep(60)},
            {"a": deep(70)},
            {"a": deep(195)},
            {"a": deep(250)},
            Pairs([("a", 1), ("b", 2), ("a", 3)]),
        )
    ],
    # unknown keys, kept under metadata
    *[
        (key, v)
        for key, v in (
            ("source", "extra beats nothing, metadata beats extra"),
            ("extra_nan", Raw("NaN")),
            ("extra_big", 10**30),
            ("extra_deep", deep(70)),
            ("__pydantic_extra__", 1),
            ("__class__", "x"),
            ("model_fields", {}),
            ("", None),
        )
    ],
]


def _case_id(case: tuple[str, Any]) -> str:
    field, value = case
    shown = "MISSING" if value is MISSING else repr(value)
    return f"{field}={shown[:40]}"


@pytest.mark.parametrize("case", FIELD_CASES, ids=[_case_id(c) for c in FIELD_CASES])
def test_one_unusual_field_gives_the_same_outcome(case: tuple[str, Any]) -> None:
    field, value = case
    bad = dict(BASE)
    if value is MISSING:
        bad.pop(field, None)
    else:
        bad[field] = value
    good = {**BASE, "id": "e0"}
    # The odd event second, after a plain one, so an error names index 1.
    compare(body_of([good, bad]))
    compare(body_of([bad]))


BODIES: list[bytes] = [
    b"",
    b" ",
    b"null",
    b"0",
    b'"events"',
    b"[]",
    b'[{"events": []}]',
    b"{}",
    b'{"events": null}',
    b'{"events": {}}',
    b'{"events": "[]"}',
    b'{"events": [1]}',
    b'{"events": [null]}',
    b'{"events": [[]]}',
    b'{"events": ["{}"]}',
    b'{"events": [{}]}',
    b'{"events": [], "x": 1}',
    b'{"x": 1, "events": []}',
    b'{"Events": []}',
    b'{"events": []}',
    b'{"events": [] }  \n',
    b'{"events": [], "events": []}',
    b'{"events": [}',
    b'{"events": []} x',
    b'{"events": [],}',
    b"\xef\xbb\xbf" + b'{"events": []}',
    b'{"events": [{"task_name": "\xff", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "\\ud800", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "\\ud83d\\ude00", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "a\tb", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "metadata": {"a": 01}}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "input_tokens": +1}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "latency_ms": .5}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "latency_ms": 5.}]}',
    # a repeated key: the last value counts, in both paths
    b'{"events": [{"task_name": "", "task_name": "t", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "t", "task_name": "", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m", "x": 1, "y": 2, "x": 3}]}',
    b'{"events": [], "events": [{"task_name": "t", "agent_name": "a", "model": "m"}]}',
    b'{"events": [{"task_name": "t", "agent_name": "a", "model": "m"}], "events": 1}',
]


@pytest.mark.parametrize("body", BODIES)
def test_unusual_bodies_give_the_same_outcome(body: bytes) -> None:
    compare(body)


# One arrival time for the upper edge of the window: a day after it.
ARRIVAL = datetime(2026, 2, 10, 12, 0, 0, 250_000, tzinfo=UTC)
LATEST = ARRIVAL + timedelta(days=1)


@pytest.mark.parametrize(
    "ts",
    [
        LATEST.isoformat(),
        LATEST.isoformat().replace("+00:00", "Z"),
        LATEST.replace(tzinfo=None).isoformat(),
        (LATEST + US).isoformat(),
        (LATEST - US).isoformat(),
        LATEST.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
        (LATEST + US).astimezone(timezone(timedelta(hours=-23, minutes=-59))).isoformat(),
        LATEST.replace(microsecond=0).isoformat(),
        (LATEST + timedelta(seconds=1)).replace(microsecond=0).isoformat(),
        ARRIVAL.isoformat(),
        LATEST.timestamp(),
        LATEST.timestamp() + 1,
        int(LATEST.timestamp()),
        MISSING,
    ],
)
def test_the_upper_edge_of_the_window_gives_the_same_outcome(ts: Any) -> None:
    now = (ARRIVAL - EPOCH) // US
    bad = dict(BASE)
    if ts is MISSING:
        del bad["timestamp"]
    else:
        bad["timestamp"] = ts
    compare(body_of([{**BASE, "id": "e0"}, bad]), now=now)
    outcome = slow_outcome(body_of([bad]), MAX_EVENTS, now)
    at = (
        ARRIVAL
        if ts is MISSING
        else datetime.fromisoformat(ts)
        if isinstance(ts, str)
        else datetime.fromtimestamp(ts, UTC)
    )
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    assert (outcome[0] == "ok") == (at <= LATEST), outcome


def test_too_many_events() -> None:
    ok = [{**BASE, "id": f"e{i}"} for i in range(4)]
    # 413 when the batch is valid but too big; pydantic's 422 first if it is not.
    assert slow_outcome(body_of(ok), 3)[1] == 413
    compare(body_of(ok), max_events=3)
    compare(body_of(ok), max_events=4)
    compare(body_of([*ok[:3], {**BASE, "input_tokens": -1}]), max_events=3)
    compare(body_of([*ok[:3], {**BASE, "model": ""}]), max_events=3)


def test_llm_events_without_a_model_are_all_named() -> None:
    events = [{**BASE, "id": f"e{i}", "model": ""} for i in range(3)]
    events[1]["kind"] = "task"
    assert not compare(body_of(events))
    outcome = slow_outcome(body_of(events), MAX_EVENTS)
    assert outcome[:2] == ("BatchError", 422)
    assert [e["index"] for e in outcome[3]] == [0, 2]


WEIRD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**53 + 1,
    10**30,
    0.5,
    -0.0,
    1e300,
    "",
    "12",
    "1.5",
    "true",
    "null",
    "x" * 300,
    "2026-02-09T15:30:00Z",
    [],
    [1],
    {},
    {"a": 1},
    Raw("NaN"),
    Raw("1e400"),
    Raw("1.0"),
    "success",
    "task",
]


@pytest.mark.parametrize("seed", range(10))
def test_random_mutations_give_the_same_outcome(seed: int) -> None:
    """Valid batches with one or two values swapped for odd ones, or keys dropped."""
    rng = random.Random(1000 + seed)
    ids = [f"id-{i}" for i in range(20)]
    fields = [*EVENT_FIELDS, "extra"]
    for _ in range(60):
        events: list[Any] = [dict(event(rng, ids)) for _ in range(rng.randint(1, 6))]
        for _ in range(rng.randint(1, 2)):
            target = rng.randrange(len(events))
            roll = rng.random()
            if not isinstance(events[target], dict):
                continue
            if roll < 0.05:
                events[target] = rng.choice(WEIRD)  # an event that is not an object
            elif roll < 0.15:
                events[target].pop(rng.choice(fields), None)
            else:
                events[target][rng.choice(fields)] = rng.choice(WEIRD)
        compare(body_of(events))


# --- the schema the fast path was written against -----------------------------


def _shown(m: Any) -> str:
    """A metadata item as text; a validator by its function's name."""
    func = getattr(m, "func", None)
    return f"{type(m).__name__}({func.__name__})" if func else repr(m)


def test_fast_path_matches_the_schema_it_was_written_for() -> None:
    """fast_rows spells out each field's type and bounds; a schema change must revisit it."""
    seen = {
        name: (str(f.annotation), [_shown(m) for m in f.metadata], repr(f.default))
        for name, f in Event.model_fields.items()
    }
    n, i, e = MAX_NAME, MAX_ID, MAX_ERROR
    # Names: no NUL, at most MAX_NAME_BYTES in UTF-8; ids and messages: no NUL.
    name_check, nul = "AfterValidator(_name)", "AfterValidator(_no_nul)"
    name = ["MinLen(min_length=1)", f"MaxLen(max_length={n})", name_check]
    opt_name = [f"MaxLen(max_length={n})", name_check]
    opt_id = ["MinLen(min_length=1)", f"MaxLen(max_length={i})", nul]
    # Tokens: an int or a whole float, never a string or a bool.
    tokens = ["Ge(ge=0)", f"Le(le={MAX_TOKENS})", "BeforeValidator(_json_integer)"]
    assert seen == {
        "id": ("str | None", opt_id, "None"),
        "task_name": ("<class 'str'>", name, "PydanticUndefined"),
        "agent_name": ("<class 'str'>", name, "PydanticUndefined"),
        "model": ("<class 'str'>", opt_name, "''"),
        "input_tokens": ("<class 'int'>", tokens, "0"),
        "output_tokens": ("<class 'int'>", tokens, "0"),
        "cache_read_tokens": ("<class 'int'>", tokens, "0"),
        "cache_write_tokens": ("<class 'int'>", tokens, "0"),
        "reasoning_tokens": ("<class 'int'>", tokens, "0"),
        "latency_ms": (
            "<class 'float'>",
            [
                "Strict(strict=True)",
                "Ge(ge=0)",
                "Le(le=10000000000.0)",
                "AllowInfNan(allow_inf_nan=False)",
            ],
            "0.0",
        ),
        "cost_usd": (
            "float | None",
            [
                "Strict(strict=True)",
                "Ge(ge=0)",
                "Le(le=1000000000.0)",
                "AllowInfNan(allow_inf_nan=False)",
            ],
            "None",
        ),
        "status": (str(typing.Literal["success", "error"]), [], "'success'"),
        "error_message": ("str | None", [f"MaxLen(max_length={e})", nul], "None"),
        "timestamp": ("datetime.datetime | None", ["AfterValidator(_in_window)"], "None"),
        "metadata": ("dict[str, typing.Any] | None", [], "None"),
        "kind": (str(typing.Literal["llm", "task", "tool"]), [], "'llm'"),
        "trace_id": ("str | None", opt_id, "None"),
        "parent_id": ("str | None", opt_id, "None"),
        "provider": ("str | None", opt_name, "None"),
        "user_id": ("str | None", opt_name, "None"),
        "session_id": ("str | None", opt_name, "None"),
    }
    assert Event.model_config.get("extra") == "allow"
    assert not Event.model_config.get("str_strip_whitespace")
