"""The event as the SDK builds it: one builder, one sink interface, one argument check.

Every event the SDK sends is made by :func:`build_event`: a ``log_event`` call,
the end of a ``@track`` run and a patched provider call alike. It fills the
client's default task and agent, and inherits task, agent, trace and parent
from the run it belongs to.

Integrations never see the client class: they record into a :class:`Sink`
(anything with the attributes below and an ``emit`` method; ``AgentWatch`` is
one), so the SDK's modules do not import the integrations and the
integrations import only this module, the run context and the safety guard.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from agentwatch.sdk.context import Run

Event = dict[str, Any]

# The same values as agentwatch.schema.KINDS / STATUSES, which the SDK cannot
# import (pydantic); tests/sdk/test_arguments.py holds them equal.
KINDS = ("llm", "task", "tool")
STATUSES = ("success", "error")

# Epoch seconds that have a calendar date: the years 1 to 9999, in UTC.
MIN_EPOCH_S = -62_135_596_800.0
MAX_EPOCH_S = 253_402_300_800.0

# The server caps error messages at 16 KiB; the SDK trims the messages it
# writes itself (from exceptions) below that, so one huge message cannot get
# its event refused.
MAX_ERROR_CHARS = 16_000


class Tokens(TypedDict, total=False):
    """Token counts of one call, as an integration reads them from a response."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


class Sink(Protocol):
    """Where events are recorded: what an integration needs from a client."""

    task: str
    agent: str
    disabled: bool
    openai_include_usage: bool
    server_url: str  # where its events go (integrations/otel_overlap.py compares it)

    def emit(self, event: Event) -> bool:
        """Queue one complete event (made by build_event); False if it was dropped."""
        ...


def build_event(
    sink: Sink,
    run: Run | None,
    id: str | None = None,
    task_name: str | None = None,
    agent_name: str | None = None,
    model: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    latency_ms: float = 0.0,
    cost_usd: float | None = None,
    status: str = "success",
    error_message: str | None = None,
    timestamp: float | datetime | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    kind: str = "llm",
    trace_id: str | None = None,
    parent_id: str | None = None,
    provider: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
) -> Event:
    """The event dict in the wire contract's field order (the parameters' order).

    The two hot callers (log_event and a patched call) pass every field by
    position: a call with 21 keywords costs 0.7 us more, on the app's thread.

    Inside `run`, task and agent default to the run's, and the event nests
    under it (trace_id, parent_id). Outside a run they default to the sink's.
    Nothing is checked here: log_event checks what a caller gave (problem()),
    the server validates everything, and the sender isolates what it refuses.
    Ids and ISO timestamps are added off-thread, by the sender.
    """
    if run is not None:
        task_name = task_name or run.task
        agent_name = agent_name or run.agent
        if trace_id is None:
            trace_id = run.trace_id
        if parent_id is None:
            parent_id = run.id
    return {
        "id": id,
        "task_name": task_name or sink.task,
        "agent_name": agent_name or sink.agent,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "latency_ms": latency_ms,
        "cost_usd": cost_usd,
        "status": status,
        "error_message": error_message,
        "timestamp": time.time() if timestamp is None else timestamp,
        "metadata": _metadata(metadata),
        "kind": kind,
        "trace_id": trace_id,
        "parent_id": parent_id,
        "provider": provider,
        "user_id": user_id,
        "session_id": session_id,
    }


def _metadata(metadata: object) -> Any:
    # A copy, so the caller may reuse its dict. Anything but a mapping is kept
    # as given, for problem() to name. type() first: isinstance against an ABC
    # costs ten times more, and nearly every caller passes a plain dict.
    if type(metadata) is dict:
        return metadata.copy() if metadata else {}
    if not metadata:
        return {}
    return dict(metadata) if isinstance(metadata, Mapping) else metadata


def error_text(exc: BaseException) -> str:
    """The message stored for a failed call: the exception's own text, trimmed.

    NUL characters are removed: no backend stores them in text, so the
    server refuses them, and a message the SDK writes must not cost its event.
    """
    msg = str(exc) or type(exc).__name__
    return msg[:MAX_ERROR_CHARS].replace("\x00", "")


# -- what a caller may give ------------------------------------------------------


def _count(v: object) -> bool:
    if type(v) is int:  # the usual case, first and fastest
        return v >= 0
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0  # True is not a count


def _amount(v: object) -> bool:
    if type(v) is float or type(v) is int:
        return 0 <= v < math.inf
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < math.inf


def _opt_amount(v: object) -> bool:
    return v is None or _amount(v)


def _text(v: object) -> bool:
    return isinstance(v, str)


def _opt_text(v: object) -> bool:
    return v is None or isinstance(v, str)


def _mapping(v: object) -> bool:
    return isinstance(v, Mapping)


def _status(v: object) -> bool:
    return isinstance(v, str) and v in STATUSES


def _kind(v: object) -> bool:
    return isinstance(v, str) and v in KINDS


def _timestamp(v: object) -> bool:
    if isinstance(v, str):
        return True  # the server parses it, and names it if it cannot
    if isinstance(v, datetime):
        try:
            v.astimezone(UTC)  # what the sender will do with it
        except (OverflowError, ValueError):
            return False
        return True
    if isinstance(v, int | float) and not isinstance(v, bool):
        return MIN_EPOCH_S <= v < MAX_EPOCH_S  # NaN fails both comparisons
    return False


COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_COUNT = "an integer >= 0"
_OPT_TEXT = "a string, or None"

# (field, check, what the docs say it is), in the wire order.
RULES: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("id", _opt_text, _OPT_TEXT),
    ("task_name", _text, "a string"),
    ("agent_name", _text, "a string"),
    ("model", _text, "a string"),
    *((name, _count, _COUNT) for name in COUNT_FIELDS),
    ("latency_ms", _amount, "a finite number >= 0"),
    ("cost_usd", _opt_amount, "a finite number >= 0, or None"),
    ("status", _status, "'success' or 'error'"),
    ("error_message", _opt_text, _OPT_TEXT),
    ("timestamp", _timestamp, "a datetime, epoch seconds or an ISO string, in years 1-9999"),
    ("metadata", _mapping, "a dict, or None"),
    ("kind", _kind, "'llm', 'task' or 'tool'"),
    ("trace_id", _opt_text, _OPT_TEXT),
    ("parent_id", _opt_text, _OPT_TEXT),
    ("provider", _opt_text, _OPT_TEXT),
    ("user_id", _opt_text, _OPT_TEXT),
    ("session_id", _opt_text, _OPT_TEXT),
)


def _plainly_valid(e: Event) -> bool:
    """The common event in one expression: exact types, no call per field.

    A shortcut of RULES for the hot path (log_event runs on the caller's
    thread): True only for what RULES accepts too; False means "ask RULES",
    which also names the field (tests/sdk/test_arguments.py checks that they
    agree). The defaults (0, None, "success", "llm") are what most calls leave.
    """
    i, o = e["input_tokens"], e["output_tokens"]
    cr, cw, r = e["cache_read_tokens"], e["cache_write_tokens"], e["reasoning_tokens"]
    lat, cost, ts = e["latency_ms"], e["cost_usd"], e["timestamp"]
    return (
        type(i) is int
        and type(o) is int
        and type(cr) is int
        and type(cw) is int
        and type(r) is int
        and i >= 0
        and o >= 0
        and cr >= 0
        and cw >= 0
        and r >= 0
        and (type(lat) is float or type(lat) is int)
        and 0 <= lat < math.inf
        and (cost is None or ((type(cost) is float or type(cost) is int) and 0 <= cost < math.inf))
        and type(ts) is float
        and MIN_EPOCH_S <= ts < MAX_EPOCH_S
        and type(e["metadata"]) is dict
        and type(e["task_name"]) is str
        and type(e["agent_name"]) is str
        and type(e["model"]) is str
        and (e["status"] == "success" or e["status"] == "error")
        and (e["kind"] == "llm" or e["kind"] == "task" or e["kind"] == "tool")
        and type(e["status"]) is str
        and type(e["kind"]) is str
        and (e["id"] is None or type(e["id"]) is str)
        and (e["error_message"] is None or type(e["error_message"]) is str)
        and (e["trace_id"] is None or type(e["trace_id"]) is str)
        and (e["parent_id"] is None or type(e["parent_id"]) is str)
        and (e["provider"] is None or type(e["provider"]) is str)
        and (e["user_id"] is None or type(e["user_id"]) is str)
        and (e["session_id"] is None or type(e["session_id"]) is str)
    )


def problem(event: Event) -> tuple[str, str] | None:
    """The first field of a caller's event that the SDK refuses: (field, what it must be).

    Types are checked as the docs state them (an integer is neither "5" nor
    True, a number is not "1"), and the values no server accepts: negative or
    non-finite numbers, an unknown status or kind, a timestamp no calendar
    holds. Limits a server sets (string lengths, the largest count, its time
    window, NUL characters) are its own: an event it refuses is isolated by
    the sender and dropped, with the server's reason logged once.
    """
    if _plainly_valid(event):
        return None
    for name, ok, what in RULES:
        if not ok(event[name]):
            return name, what
    return None
