"""The AgentWatch client: configuration, manual events, @track runs, delivery.

One client owns one :class:`~agentwatch.sdk.sender.Sender`. It knows nothing
of the provider integrations: they record into it through the
:class:`~agentwatch.sdk.events.Sink` interface, and the public facade
(``agentwatch/__init__.py``) is what patches providers and keeps the
process-wide client that ``agentwatch.init()`` makes.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import datetime
from typing import Any, Never, TypeVar, Unpack, overload

from agentwatch._ids import new_id
from agentwatch.sdk.config import Options, resolve
from agentwatch.sdk.context import Run, current_run, live_run
from agentwatch.sdk.events import Event, build_event, error_text, problem
from agentwatch.sdk.safety import internal_error, log_once, strict
from agentwatch.sdk.sender import Sender, Stats

F = TypeVar("F", bound=Callable[..., Any])


class Client:
    """An AgentWatch client: sends events to one server in the background.

    Every argument left as None is read from its ``AGENTWATCH_*`` environment
    variable, then from the default (see :mod:`agentwatch.sdk.config`).
    """

    def __init__(
        self,
        server_url: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        **options: Unpack[Options],
    ) -> None:
        config = resolve(server_url, agent, task, options)
        self.server_url = config.server_url
        self.agent = config.agent
        self.task = config.task
        self.disabled = config.disabled
        self.openai_include_usage = config.openai_include_usage
        self._sender = Sender(config)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(server_url={self.server_url!r}, agent={self.agent!r}, "
            f"task={self.task!r})"
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
        timestamp: float | datetime | str | None = None,
        trace_id: str | None = None,
        parent_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        id: str | None = None,
        **unknown: Never,
    ) -> bool:
        """Queue one event; False if it was dropped (invalid, disabled or queue full).

        Inside a @track run, task and agent default to the run's, and the event
        carries the run's trace_id and parent_id. Never raises: an argument of
        the wrong type or value, or of an unknown name, drops the event, which
        is counted in ``stats()["dropped_invalid"]`` and logged once per field
        (under ``AGENTWATCH_STRICT=1`` it raises TypeError instead).
        """
        if self.disabled:
            return False
        ev = build_event(  # by position, in the wire order: see build_event
            self,
            live_run(),
            id,
            task_name,
            agent_name,
            model,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            latency_ms,
            cost_usd,
            status,
            error_message,
            timestamp,
            metadata,
            kind,
            trace_id,
            parent_id,
            provider,
            user_id,
            session_id,
        )
        if unknown:
            name = next(iter(unknown))
            return self._refuse(name, f"{name} is not an argument of log_event")
        bad = problem(ev)
        if bad is not None:
            field, what = bad
            return self._refuse(field, f"{field} must be {what}, got {ev[field]!r:.80}")
        return self._sender.enqueue(ev)

    def _refuse(self, field: str, why: str) -> bool:
        msg = f"log_event: {why}"
        if strict():
            raise TypeError(msg)
        self._sender.count("dropped_invalid")
        log_once(
            "invalid:" + field,
            logging.WARNING,
            "agentwatch: event dropped, %s (counted in agentwatch.stats()['dropped_invalid'])",
            msg,
        )
        return False

    def emit(self, event: Event) -> bool:
        """Queue an event made by build_event (the Sink interface); False if dropped."""
        return False if self.disabled else self._sender.enqueue(event)

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
        parent = live_run()
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
        # The run's own event: its place in the tree is the run's, not that of
        # whatever run is current when it ends (a generator ends in its consumer).
        self.emit(
            build_event(
                self,
                None,
                kind="task",
                id=run.id,
                task_name=run.task,
                agent_name=run.agent,
                trace_id=run.trace_id,
                parent_id=run.parent_id,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                status="error" if exc is not None else "success",
                error_message=error_text(exc) if exc is not None else None,
                timestamp=started_wall,
                metadata=meta,
            )
        )

    # -- lifecycle ---------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until queued events are sent (or `timeout` passes); True if all were."""
        return self._sender.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default AGENTWATCH_SHUTDOWN_TIMEOUT) and stop sending."""
        return self._sender.shutdown(timeout)

    def stats(self) -> Stats:
        """Delivery counters: sent, queued, dropped (by reason), retries, last error."""
        return self._sender.stats()


# -- the decorator ----------------------------------------------------------------


def make_tracker(
    get_client: Callable[[], Client | None],
    task: object,
    agent: object,
    fn: object,
) -> Any:
    """Build the @track decorator; the client is looked up per call, not at decoration.

    Looking it up per call lets module-level functions be decorated before
    ``agentwatch.init()`` runs, which is the usual order in an app. Bad
    arguments never raise (outside ``AGENTWATCH_STRICT``): a task or agent
    that is not a string falls back to the default, and anything but a
    function is returned undecorated, so the app runs as written, untracked.
    """
    task_name = _name_argument("task", task)
    agent_name = _name_argument("agent", agent)

    def decorate(func: Any) -> Any:
        if not callable(func):
            _bad_track_argument(f"track() decorates functions, not {func!r:.80}")
            return func
        if inspect.isasyncgenfunction(func):
            return _wrap_async_gen(func, get_client, task_name, agent_name)
        if inspect.isgeneratorfunction(func):
            return _wrap_gen(func, get_client, task_name, agent_name)
        if inspect.iscoroutinefunction(func):
            return _wrap_async(func, get_client, task_name, agent_name)
        return _wrap_sync(func, get_client, task_name, agent_name)

    if fn is None:
        return decorate
    if not callable(fn):
        _bad_track_argument(
            f"track() takes a function, or task=/agent= keyword arguments; got {fn!r:.80}"
            " (the function runs untracked)"
        )
        return lambda func: func
    return decorate(fn)


def _name_argument(what: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    _bad_track_argument(f"track(): {what} must be a string, got {value!r:.80} (default used)")
    return None


def _bad_track_argument(msg: str) -> None:
    if strict():
        raise TypeError(msg)
    log_once("track:" + msg[:40], logging.WARNING, "agentwatch: %s", msg)


def _start(
    get_client: Callable[[], Client | None],
    task: str | None,
    agent: str | None,
    fn: Callable[..., Any],
) -> tuple[Client, Run] | None:
    try:
        client = get_client()
        if client is None or client.disabled:
            return None
        return client, client._begin_run(task, agent, fn)
    except Exception as exc:
        internal_error("track.start", exc)
        return None


def _finish(
    started: tuple[Client, Run],
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
    get_client: Callable[[], Client | None],
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
    get_client: Callable[[], Client | None],
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
    get_client: Callable[[], Client | None],
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
    get_client: Callable[[], Client | None],
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
