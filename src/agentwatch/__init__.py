"""AgentWatch SDK: track cost, tokens, latency and errors of LLM agents.

    import agentwatch
    agentwatch.init(server_url="http://localhost:8787", agent="research-bot")
    # OpenAI and Anthropic calls are now recorded; see docs/sdk.md.

Importing this package loads the SDK only (stdlib + its own modules); the
server, the store and their dependencies are never imported from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from agentwatch._version import __version__
from agentwatch.sdk.client import (
    AgentWatch,
    get_global,
    make_tracker,
    set_global,
    warn_not_initialized,
)
from agentwatch.sdk.sender import Exporter

__all__ = [
    "AgentWatch",
    "__version__",
    "flush",
    "init",
    "instrument",
    "log_event",
    "shutdown",
    "stats",
    "track",
    "uninstrument",
]

F = TypeVar("F", bound=Callable[..., Any])


def init(
    server_url: str | None = None,
    agent: str | None = None,
    task: str | None = None,
    auto_patch: bool | None = None,
    *,
    batch_size: int | None = None,
    flush_interval: float | None = None,
    max_queue: int | None = None,
    shutdown_timeout: float | None = None,
    disabled: bool | None = None,
    openai_include_usage: bool | None = None,
    exporter: Exporter | None = None,
) -> AgentWatch:
    """Create the process-wide client; with auto_patch, record OpenAI/Anthropic calls.

    Any argument left as None comes from its AGENTWATCH_* environment variable,
    then the default. Calling init() again replaces the previous client (which
    is flushed and shut down).
    """
    from agentwatch.sdk.client import _env_bool

    if auto_patch is None:
        auto_patch = _env_bool("AGENTWATCH_AUTO_PATCH", True)
    old = get_global()
    client = AgentWatch(
        server_url,
        agent,
        task,
        auto_patch=False,
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_queue=max_queue,
        shutdown_timeout=shutdown_timeout,
        disabled=disabled,
        openai_include_usage=openai_include_usage,
        exporter=exporter,
    )
    set_global(client)
    if old is not None:
        old.shutdown()
    if auto_patch and not client.disabled:
        instrument(client)
        client._patched = True
    return client


def log_event(
    task_name: str | None = None,
    agent_name: str | None = None,
    model: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    latency_ms: float = 0.0,
    status: str = "success",
    error_message: str | None = None,
    metadata: dict[str, Any] | None = None,
    **extra: Any,
) -> bool:
    """Record one event through the client made by init(); see AgentWatch.log_event.

    Before init() the event is dropped and one warning is logged.
    """
    client = get_global()
    if client is None:
        warn_not_initialized()
        return False
    return client.log_event(
        task_name,
        agent_name,
        model,
        input_tokens,
        output_tokens,
        latency_ms,
        status,
        error_message,
        metadata,
        **extra,
    )


@overload
def track(fn: F, /) -> F: ...


@overload
def track(
    fn: None = None, /, *, task: str | None = None, agent: str | None = None
) -> Callable[[F], F]: ...


def track(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    task: str | None = None,
    agent: str | None = None,
) -> Any:
    """Decorator: record each call as a ``kind="task"`` run (see AgentWatch.track).

    The client is looked up at call time, so decorating before init() is fine;
    calls made before init() simply run untracked.
    """
    return make_tracker(get_global, task, agent, fn)


def flush(timeout: float | None = 10.0) -> bool:
    """Send everything queued so far; True if it was all handled within `timeout`."""
    client = get_global()
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush (bounded by `timeout`), stop the sender and remove auto-patching."""
    client = get_global()
    if client is None:
        return True
    set_global(None)
    return client.shutdown(timeout)


def stats() -> dict[str, Any]:
    """Delivery counters of the init() client: sent, queued, dropped_*, retries."""
    client = get_global()
    if client is None:
        return {
            "queued": 0,
            "sent": 0,
            "batches": 0,
            "dropped_queue_full": 0,
            "dropped_rejected": 0,
            "dropped_shutdown": 0,
            "retries": 0,
            "last_error": None,
        }
    return client.stats()


def instrument(client: AgentWatch | None = None) -> None:
    """Patch the installed OpenAI/Anthropic SDKs to report to `client` (default: init()'s).

    Idempotent; SDKs imported later are patched on import.
    """
    from agentwatch.integrations import instrument as _instrument

    _instrument(client)


def uninstrument() -> None:
    """Restore the original OpenAI/Anthropic methods. Idempotent."""
    from agentwatch.integrations import uninstrument as _uninstrument

    _uninstrument()
