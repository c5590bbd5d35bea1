"""The wire contract: one event as it travels from an SDK to the server.

The brief's fields keep their names and types; every field added since is
optional, so an event shaped exactly like the brief's example is always valid.
This module is server-side (it imports pydantic); the SDK builds plain dicts
with the same keys and never imports it, so `import agentwatch` stays light.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

# The two closed vocabularies, written once: the types for validation and
# their values for everything else.
Kind = Literal["llm", "task", "tool"]
Status = Literal["success", "error"]
KINDS: tuple[str, ...] = get_args(Kind)
STATUSES: tuple[str, ...] = get_args(Status)

# Bounds keep one hostile or buggy client from storing megabytes per field.
MAX_NAME = 256
MAX_ID = 128
MAX_ERROR = 16_384

# What the store and the queries can hold. Everything the server accepts must
# stay readable, summable and bucketable for ever after, on every backend; the
# reasons for each number are in docs/http-api.md ("The event").
#
# Names are also indexed, and PostgreSQL's B-tree refuses a key over 2,704
# bytes. The rollup key holds the agent, task and model names together: 256
# four-byte characters in each made 3 KiB and a 503 for the whole group
# commit. 768 bytes lets 256 characters of any script below U+10000 through
# (three bytes each at most) and keeps the three names under 2,304 bytes.
MAX_NAME_BYTES = 768
# A token count per field per event. The store keeps per-bucket int64 sums:
# 10^9 per event at 100,000 events a second for a whole day is 8.64e18,
# under 2^63 (9.22e18). No real call comes near (the largest context windows
# are a few million tokens).
MAX_TOKENS = 10**9
MAX_COST = 1e9  # US dollars per event; sums are floats, which cannot overflow
MAX_LATENCY = 1e10  # milliseconds: 115 days, longer than any run
# The timestamp window. The lower end is fixed, well before any LLM agent
# existed, so imports of old history fit, and an `all` period starting there
# still fits the widest timeseries buckets. The upper end follows the clock:
# a day of skew on a client's clock is tolerated; anything later is a bug
# (milliseconds sent as seconds, a wrong year) that would sit "in the
# future" and out of every period.
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
MIN_TIMESTAMP_US = (MIN_TIMESTAMP - _EPOCH) // _US
MAX_FUTURE_US = MAX_FUTURE // _US


def epoch_us(dt: datetime) -> int:
    """Exact microseconds since the epoch; a naive datetime is UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _US


NUL_MESSAGE = "must not contain a NUL character (\\u0000)"


def _no_nul(v: str | None) -> str | None:
    # PostgreSQL text cannot hold U+0000; refused on every backend alike
    # (server/guard.py does the same for query parameters).
    if v is not None and "\x00" in v:
        raise PydanticCustomError("string_nul", NUL_MESSAGE)
    return v


def _name(v: str | None) -> str | None:
    if v is None:
        return v
    _no_nul(v)
    # Only a name of more than MAX_NAME_BYTES / 4 characters can be too long.
    if len(v) > MAX_NAME_BYTES // 4 and (n := len(v.encode())) > MAX_NAME_BYTES:
        raise PydanticCustomError(
            "string_too_many_bytes",
            "must be at most {limit} bytes in UTF-8, got {n}",
            {"limit": MAX_NAME_BYTES, "n": n},
        )
    return v


def _json_integer(v: Any) -> Any:
    # A JSON integer, or a number with no fractional part (JSON Schema's
    # "integer": 5.0 and 1e3 are integers). Strings and booleans are not.
    if isinstance(v, str | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return v


def latest_timestamp_us(info: ValidationInfo | None = None) -> int:
    """The latest timestamp accepted now: the arrival time plus MAX_FUTURE.
    A validation context may fix the arrival time ({"now_us": ...}), so that
    a whole batch is judged against one clock reading."""
    ctx = info.context if info is not None else None
    now = ctx.get("now_us") if isinstance(ctx, dict) else None
    if now is None:
        now = time.time_ns() // 1000
    return int(now) + MAX_FUTURE_US


def _in_window(dt: datetime | None, info: ValidationInfo) -> datetime | None:
    if dt is None:
        return dt
    us = epoch_us(dt)
    latest = latest_timestamp_us(info)
    if not MIN_TIMESTAMP_US <= us <= latest:
        shown = (_EPOCH + latest * _US).isoformat().replace("+00:00", "Z")
        raise PydanticCustomError(
            "timestamp_range",
            "must be between 2000-01-01T00:00:00Z and one day after the server's clock "
            "({latest}), got {got}",
            {"latest": shown, "got": dt.isoformat()},
        )
    return dt


NoNul = AfterValidator(_no_nul)
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_name)]
OptName = Annotated[str | None, Field(default=None, max_length=MAX_NAME), AfterValidator(_name)]
OptId = Annotated[str | None, Field(default=None, min_length=1, max_length=MAX_ID), NoNul]
# The bounds first, so that the JSON schema shows them; the type check wraps them.
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS), BeforeValidator(_json_integer)]
Timestamp = Annotated[datetime | None, AfterValidator(_in_window)]


class Event(BaseModel):
    """One LLM call, task run or tool call."""

    # Unknown top-level keys are not an error (a newer SDK may send fields this
    # server does not know); they are kept, moved under `metadata`.
    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    id: OptId = None
    task_name: Name
    agent_name: Name
    model: Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_name)] = ""
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    latency_ms: Annotated[float, Strict(), Field(ge=0, le=MAX_LATENCY, allow_inf_nan=False)] = 0.0
    cost_usd: Annotated[float | None, Strict(), Field(ge=0, le=MAX_COST, allow_inf_nan=False)] = (
        None
    )
    status: Status = "success"
    error_message: Annotated[str | None, Field(max_length=MAX_ERROR), NoNul] = None
    timestamp: Timestamp = None
    metadata: dict[str, Any] | None = None
    kind: Kind = "llm"
    trace_id: OptId = None
    parent_id: OptId = None
    provider: OptName = None
    user_id: OptName = None
    session_id: OptName = None

    # Checks that need more than one field, and the defaults that need a clock
    # or a random source, are applied by the server at ingest
    # (server/validate.py), outside pydantic. They are: a "llm" event needs a
    # model; a naive timestamp means UTC; a missing id gets a UUID4 and a
    # missing timestamp the time of arrival.


class EventBatch(BaseModel):
    """Body of POST /api/events."""

    model_config = ConfigDict(extra="forbid")
    events: list[Event]


# The event's fields as the brief defined them, in its order.
BRIEF_FIELDS: tuple[str, ...] = (
    "id",
    "task_name",
    "agent_name",
    "model",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "cost_usd",
    "status",
    "error_message",
    "timestamp",
    "metadata",
)

# Columns of the stored/returned event, in the order the API returns them.
EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "task_name",
    "agent_name",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cost_usd",
    "status",
    "error_message",
    "timestamp",
    "metadata",
    "kind",
    "trace_id",
    "parent_id",
    "provider",
    "user_id",
    "session_id",
)
