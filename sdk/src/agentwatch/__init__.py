"""AgentWatch SDK: track cost, tokens, latency and errors of LLM agents.

    import agentwatch
    agentwatch.init(server_url="http://localhost:8787", agent="research-bot")
    # OpenAI and Anthropic calls are now recorded; see docs/sdk.md.

Importing this package loads the SDK only (stdlib + its own modules); the
server, the store and their dependencies are never imported from here.

This package's files ship as the `agentwatch-client` distribution (sdk/ in
the repository). The server's distribution, `agentwatch`, depends on it and
adds `agentwatch.server`, `agentwatch.store`, `agentwatch.cli` and the rest
into the same package: installed, both land in one folder; in a development
checkout they are two source folders (sdk/src/ and src/), which the
`extend_path` below joins.
"""

from __future__ import annotations

import logging
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar, Unpack, overload

from agentwatch import integrations
from agentwatch._version import __version__
from agentwatch.sdk.client import Client, make_tracker
from agentwatch.sdk.config import Options, env_bool
from agentwatch.sdk.safety import log_once
from agentwatch.sdk.sender import Stats, empty_stats

# The server's modules, wherever their source folder is (see above).
__path__ = pkgutil.extend_path(__path__, __name__)

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


class AgentWatch(Client):
    """An AgentWatch client: sends events to one server in the background.

    Every argument left as None is read from its ``AGENTWATCH_*`` environment
    variable, then from the default. With ``auto_patch=True`` the OpenAI and
    Anthropic calls of the whole process report to this client, until it shuts
    down or another client asks for them.
    """

    def __init__(
        self,
        server_url: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        *,
        auto_patch: bool = False,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(server_url, agent, task, **options)
        self._patched = auto_patch and not self.disabled
        if self._patched:
            integrations.instrument(lambda: self)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default AGENTWATCH_SHUTDOWN_TIMEOUT) and stop sending.

        Also removes auto-patching if this client installed it and still has it.
        """
        if self._patched:
            if integrations.active_client() is self:
                integrations.uninstrument()
            self._patched = False
        return super().shutdown(timeout)


# The process-wide client made by init(): what the module-level functions use.
_client: AgentWatch | None = None


def _current() -> AgentWatch | None:
    return _client


def init(
    server_url: str | None = None,
    agent: str | None = None,
    task: str | None = None,
    auto_patch: bool | None = None,
    **options: Unpack[Options],
) -> AgentWatch:
    """Create the process-wide client; with auto_patch, record OpenAI/Anthropic calls.

    Any argument left as None comes from its AGENTWATCH_* environment variable,
    then the default (options: docs/sdk.md). Calling init() again replaces the
    previous client (which is flushed and shut down).
    """
    global _client
    if auto_patch is None:
        auto_patch = env_bool("AGENTWATCH_AUTO_PATCH", True)
    old = _client
    _client = AgentWatch(server_url, agent, task, auto_patch=auto_patch, **options)
    if old is not None:
        old.shutdown()
    return _client


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
    client = _client
    if client is None:
        log_once(
            "not_initialized",
            logging.WARNING,
            "agentwatch: event dropped because agentwatch.init() has not been called",
        )
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
    return make_tracker(_current, task, agent, fn)


def flush(timeout: float | None = 10.0) -> bool:
    """Send everything queued so far; True if it was all handled within `timeout`."""
    client = _client
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush (bounded by `timeout`), stop the sender and remove auto-patching."""
    global _client
    client, _client = _client, None
    return True if client is None else client.shutdown(timeout)


def stats() -> Stats:
    """Delivery counters of the init() client: sent, queued, dropped_*, retries."""
    client = _client
    return empty_stats() if client is None else client.stats()


def instrument(client: AgentWatch | None = None) -> None:
    """Patch the installed OpenAI/Anthropic SDKs to report to `client` (default: init()'s).

    Idempotent; SDKs imported later are patched on import. Without a client,
    calls report to whichever client init() made last, looked up per call.
    """
    integrations.instrument(_current if client is None else lambda: client)


def uninstrument() -> None:
    """Restore the original OpenAI/Anthropic methods. Idempotent."""
    integrations.uninstrument()
