"""The AgentWatch client: configuration, manual events and @track runs.

One client owns one :class:`~agentwatch.sdk.sender.Sender`. ``agentwatch.init``
creates the process-wide client that auto-patched provider calls report to;
instances made directly are independent (and can opt into auto-patching).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from agentwatch._ids import new_id
from agentwatch.sdk.context import Run, current_run
from agentwatch.sdk.safety import internal_error, log, log_once
from agentwatch.sdk.sender import Event, Exporter, Sender

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SERVER_URL = "http://localhost:8787"
DEFAULT_NAME = "default"
# The server caps error messages at 16 KiB; trim so one huge message cannot
# get its whole batch refused.
MAX_ERROR_CHARS = 16_000


# -- environment -----------------------------------------------------------


def _env_str(name: str) -> str | None:
    v = os.environ.get(name)
    return v if v else None


def _env_bool(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    v = v.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    log.warning("agentwatch: ignoring %s=%r (expected 1/0/true/false)", name, v)
    return default


def _env_num(name: str, default: float, cast: Callable[[str], float]) -> float:
    v = os.environ.get(name)
    if not v:
        return default
    try:
        return cast(v)
    except ValueError:
        log.warning("agentwatch: ignoring %s=%r (not a number)", name, v)
        return default


def error_text(exc: BaseException) -> str:
    """The message stored for a failed call: the exception's own text, trimmed."""
    msg = str(exc) or type(exc).__name__
    return msg[:MAX_ERROR_CHARS]


class AgentWatch:
    """An AgentWatch client: sends events to one server in the background.

    Every argument left as None is read from its ``AGENTWATCH_*`` environment
    variable, then from the default.
    """

    def __init__(
        self,
        server_url: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        *,
        auto_patch: bool = False,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_queue: int | None = None,
        shutdown_timeout: float | None = None,
        disabled: bool | None = None,
        openai_include_usage: bool | None = None,
        exporter: Exporter | None = None,
    ) -> None:
        self.server_url = (
            server_url or _env_str("AGENTWATCH_SERVER_URL") or DEFAULT_SERVER_URL
        ).rstrip("/")
        self.agent = agent or _env_str("AGENTWATCH_AGENT") or DEFAULT_NAME
        self.task = task or _env_str("AGENTWATCH_TASK") or DEFAULT_NAME
        self.disabled = _env_bool("AGENTWATCH_DISABLED", False) if disabled is None else disabled
        self.openai_include_usage = (
            _env_bool("AGENTWATCH_OPENAI_INCLUDE_USAGE", True)
            if openai_include_usage is None
            else openai_include_usage
        )
        self._sender = Sender(
            self.server_url,
            batch_size=int(
                batch_size
                if batch_size is not None
                else _env_num("AGENTWATCH_BATCH_SIZE", 100, int)
            ),
            flush_interval=(
                flush_interval
                if flush_interval is not None
                else _env_num("AGENTWATCH_FLUSH_INTERVAL", 1.0, float)
            ),
            max_queue=int(
                max_queue
                if max_queue is not None
                else _env_num("AGENTWATCH_MAX_QUEUE", 10_000, int)
            ),
            shutdown_timeout=(
                shutdown_timeout
                if shutdown_timeout is not None
                else _env_num("AGENTWATCH_SHUTDOWN_TIMEOUT", 5.0, float)
            ),
            exporter=exporter,
        )
        self._patched = False
        if auto_patch and not self.disabled:
            from agentwatch.integrations import instrument

            instrument(self)
            self._patched = True

    def __repr__(self) -> str:
        return (
            f"AgentWatch(server_url={self.server_url!r}, agent={self.agent!r}, task={self.task!r})"
        )

    # -- events ---------------------------------------------------------------

    def log_event(
        self,
        task_name: str | None = None,
        agent_name: str | None = None,
        model: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        latency_ms: float = 0.0,
        status: str = "success",
        error_message: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        cost_usd: float | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        kind: str = "llm",
        provider: str | None = None,
        timestamp: Any = None,
        trace_id: str | None = None,
        parent_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        id: str | None = None,
    ) -> bool:
        """Queue one event; returns False if it was dropped (disabled or queue full).

        Inside a @track run, task and agent default to the run's, and the event
        carries the run's trace_id and parent_id. Never raises for telemetry reasons.
        """
        if self.disabled:
            return False
        run = current_run.get()
        if run is not None:
            task_name = task_name or run.task
            agent_name = agent_name or run.agent
            if trace_id is None:
                trace_id = run.trace_id
            if parent_id is None:
                parent_id = run.id
        # Plain dict, no validation beyond defaults: the server validates, and
        # the sender isolates a rejected event. Encoding happens off-thread.
        ev: Event = {
            "id": id,
            "task_name": task_name or self.task,
            "agent_name": agent_name or self.agent,
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
        return self._sender.enqueue(ev)

    def _emit(self, ev: Event) -> None:
        """Queue an event built by an integration (already complete)."""
        if not self.disabled:
            self._sender.enqueue(ev)

    # -- runs -------------------------------------------------------------------

    @overload
    def track(self, fn: F, /) -> F: ...

    @overload
    def track(
        self, fn: None = None, /, *, task: str | None = None, agent: str | None = None
    ) -> Callable[[F], F]: ...

    def track(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        task: str | None = None,
        agent: str | None = None,
    ) -> Any:
        """Decorator: each call of the function is one ``kind="task"`` run.

        Works on sync and async functions and on sync and async generators
        (the run lasts until the generator finishes or is closed). LLM calls
        made inside inherit the run's task and agent and nest under it.
        """
        return make_tracker(lambda: self, task, agent, fn)

    def _begin_run(self, task: str | None, agent: str | None, fn: Callable[..., Any]) -> Run:
        parent = current_run.get()
        run_id = new_id()
        return Run(
            id=run_id,
            trace_id=parent.trace_id if parent is not None else run_id,
            parent_id=parent.id if parent is not None else None,
            task=task or (parent.task if parent is not None else None) or fn.__name__ or self.task,
            agent=agent or (parent.agent if parent is not None else None) or self.agent,
        )

    def _end_run(
        self,
        run: Run,
        fn: Callable[..., Any],
        started_wall: float,
        started: float,
        exc: BaseException | None,
    ) -> None:
        meta: dict[str, Any] = {"function": getattr(fn, "__qualname__", repr(fn))}
        if exc is not None:
            meta["error_type"] = type(exc).__name__
        self._emit(
            {
                "id": run.id,
                "task_name": run.task,
                "agent_name": run.agent,
                "model": "",
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "latency_ms": (time.perf_counter() - started) * 1000.0,
                "cost_usd": None,
                "status": "error" if exc is not None else "success",
                "error_message": error_text(exc) if exc is not None else None,
                "timestamp": started_wall,
                "metadata": meta,
                "kind": "task",
                "trace_id": run.trace_id,
                "parent_id": run.parent_id,
                "provider": None,
                "user_id": None,
                "session_id": None,
            }
        )

    # -- lifecycle ---------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until queued events are sent (or `timeout` passes); True if all were."""
        return self._sender.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default AGENTWATCH_SHUTDOWN_TIMEOUT) and stop sending.

        Also removes auto-patching if this client installed it.
        """
        if self._patched:
            from agentwatch.integrations import active_client, uninstrument

            if active_client() is self:
                uninstrument()
            self._patched = False
        return self._sender.shutdown(timeout)

    def stats(self) -> dict[str, Any]:
        """Delivery counters: sent, queued, dropped (queue full, rejected, at shutdown), retries."""
        return self._sender.stats()


# -- the decorator ----------------------------------------------------------------


def make_tracker(
    get_client: Callable[[], AgentWatch | None],
    task: str | None,
    agent: str | None,
    fn: Callable[..., Any] | None,
) -> Any:
    """Build the @track decorator; the client is looked up per call, not at decoration.

    Looking it up per call lets module-level functions be decorated before
    ``agentwatch.init()`` runs, which is the usual order in an app.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(func):
            return _wrap_async_gen(func, get_client, task, agent)
        if inspect.isgeneratorfunction(func):
            return _wrap_gen(func, get_client, task, agent)
        if inspect.iscoroutinefunction(func):
            return _wrap_async(func, get_client, task, agent)
        return _wrap_sync(func, get_client, task, agent)

    if fn is not None:
        if not callable(fn):
            raise TypeError("track() takes a function, or task=/agent= keyword arguments")
        return decorate(fn)
    return decorate


def _start(
    get_client: Callable[[], AgentWatch | None],
    task: str | None,
    agent: str | None,
    fn: Callable[..., Any],
) -> tuple[AgentWatch, Run] | None:
    try:
        client = get_client()
        if client is None or client.disabled:
            return None
        return client, client._begin_run(task, agent, fn)
    except Exception as exc:
        internal_error("track.start", exc)
        return None


def _finish(
    started: tuple[AgentWatch, Run],
    fn: Callable[..., Any],
    wall: float,
    t0: float,
    exc: BaseException | None,
) -> None:
    try:
        started[0]._end_run(started[1], fn, wall, t0, exc)
    except Exception as e:
        internal_error("track.end", e)


def _wrap_sync(
    fn: Callable[..., Any],
    get_client: Callable[[], AgentWatch | None],
    task: str | None,
    agent: str | None,
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _start(get_client, task, agent, fn)
        if started is None:
            return fn(*args, **kwargs)
        wall, t0 = time.time(), time.perf_counter()
        token = current_run.set(started[1])
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            current_run.reset(token)
            _finish(started, fn, wall, t0, exc)
            raise
        current_run.reset(token)
        _finish(started, fn, wall, t0, None)
        return result

    return wrapper


def _wrap_async(
    fn: Callable[..., Any],
    get_client: Callable[[], AgentWatch | None],
    task: str | None,
    agent: str | None,
) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _start(get_client, task, agent, fn)
        if started is None:
            return await fn(*args, **kwargs)
        wall, t0 = time.time(), time.perf_counter()
        # A coroutine runs in one context from start to end, so set/reset
        # across awaits is safe; tasks spawned inside copy the run.
        token = current_run.set(started[1])
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            current_run.reset(token)
            _finish(started, fn, wall, t0, exc)
            raise
        current_run.reset(token)
        _finish(started, fn, wall, t0, None)
        return result

    return wrapper


def _wrap_gen(
    fn: Callable[..., Any],
    get_client: Callable[[], AgentWatch | None],
    task: str | None,
    agent: str | None,
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        started = _start(get_client, task, agent, fn)
        gen = fn(*args, **kwargs)
        if started is None:
            return (yield from gen)
        run = started[1]
        wall, t0 = time.time(), time.perf_counter()
        error: BaseException | None = None
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                # The run is current only while the generator body runs, never
                # in the consumer's code between two items.
                token = current_run.set(run)
                try:
                    if to_throw is not None:
                        thrown, to_throw = to_throw, None
                        item = gen.throw(thrown)
                    else:
                        item = gen.send(to_send)
                except StopIteration as stop:
                    return stop.value
                finally:
                    current_run.reset(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    # Consumer stopped early: not an error of the run.
                    gen.close()
                    raise
                except BaseException as exc:
                    to_throw = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish(started, fn, wall, t0, error)

    return wrapper


def _wrap_async_gen(
    fn: Callable[..., Any],
    get_client: Callable[[], AgentWatch | None],
    task: str | None,
    agent: str | None,
) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        started = _start(get_client, task, agent, fn)
        agen = fn(*args, **kwargs)
        if started is None:
            async for item in agen:
                yield item
            return
        run = started[1]
        wall, t0 = time.time(), time.perf_counter()
        error: BaseException | None = None
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = current_run.set(run)
                try:
                    if to_throw is not None:
                        thrown, to_throw = to_throw, None
                        item = await agen.athrow(thrown)
                    else:
                        item = await agen.asend(to_send)
                except StopAsyncIteration:
                    return
                finally:
                    current_run.reset(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    to_throw = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish(started, fn, wall, t0, error)

    return wrapper


# -- the process-wide client behind the module-level API -------------------------

_global: AgentWatch | None = None


def get_global() -> AgentWatch | None:
    return _global


def set_global(client: AgentWatch | None) -> None:
    global _global
    _global = client


def warn_not_initialized() -> None:
    log_once(
        "not_initialized",
        logging.WARNING,
        "agentwatch: event dropped because agentwatch.init() has not been called",
    )
