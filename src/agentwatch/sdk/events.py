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

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypedDict

from agentwatch.sdk.context import Run

Event = dict[str, Any]

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
        "metadata": dict(metadata) if metadata else {},
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
