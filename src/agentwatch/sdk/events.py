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

    def emit(self, event: Event) -> bool:
        """Queue one complete event (made by build_event); False if it was dropped."""
        ...


def build_event(
    sink: Sink,
    run: Run | None,
    *,
    kind: str = "llm",
    model: str = "",
    task_name: str | None = None,
    agent_name: str | None = None,
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
    trace_id: str | None = None,
    parent_id: str | None = None,
    provider: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    id: str | None = None,
) -> Event:
    """The event dict in the wire contract's field order.

    Inside `run`, task and agent default to the run's, and the event nests
    under it (trace_id, parent_id). Outside a run they default to the sink's.
    A plain dict, validated no further: the server validates, and the sender
    isolates a refused event. Ids and ISO timestamps are added off-thread.
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
        # A copy, so the caller may reuse its dict. Anything but a mapping is
        # kept as given, for problem() to name.
        "metadata": (dict(metadata) if isinstance(metadata, Mapping) else metadata)
        if metadata
        else {},
        "kind": kind,
        "trace_id": trace_id,
        "parent_id": parent_id,
        "provider": provider,
        "user_id": user_id,
        "session_id": session_id,
    }


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


_COUNT = "an integer >= 0"
_OPT_TEXT = "a string, or None"

# (field, check, what the docs say it is), in the wire order.
RULES: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("id", _opt_text, _OPT_TEXT),
    ("task_name", _text, "a string"),
    ("agent_name", _text, "a string"),
    ("model", _text, "a string"),
    ("input_tokens", _count, _COUNT),
    ("output_tokens", _count, _COUNT),
    ("cache_read_tokens", _count, _COUNT),
    ("cache_write_tokens", _count, _COUNT),
    ("reasoning_tokens", _count, _COUNT),
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


def problem(event: Event) -> tuple[str, str] | None:
    """The first field of a caller's event that the SDK refuses: (field, what it must be).

    Types are checked as the docs state them (an integer is neither "5" nor
    True, a number is not "1"), and the values no server accepts: negative or
    non-finite numbers, an unknown status or kind, a timestamp no calendar
    holds. Limits a server sets (string lengths, the largest count, its time
    window, NUL characters) are its own: an event it refuses is isolated by
    the sender and dropped, with the server's reason logged once.
    """
    for name, ok, what in RULES:
        if not ok(event[name]):
            return name, what
    return None
