"""Shared machinery for provider integrations.

* :class:`Patches`: wrap a class attribute once, remember the original,
  restore it on uninstrument (idempotent both ways).
* :class:`ImportHook`: patch a provider SDK that is imported after ``init()``.
* :class:`Call`: one LLM call being measured; builds the event dict.
* :func:`wrap_sync_stream` / :func:`wrap_async_stream`: observe a provider
  stream in place, through every way of consuming it, and finish exactly once
  on exhaustion, error, close or abandonment.

The user's call always runs exactly once and its result or exception passes
through unchanged; everything else here is guarded by the safety module.
"""

from __future__ import annotations

import abc
import importlib.abc
import importlib.machinery
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Protocol

from agentwatch.sdk.context import current_run
from agentwatch.sdk.events import Sink, Tokens, build_event, error_text
from agentwatch.sdk.safety import internal_error

# -- where the patched methods record ------------------------------------------

Target = Callable[[], Sink | None]

_target: Target | None = None


def set_target(target: Target | None) -> None:
    """Report patched calls to whatever `target()` returns at call time; None: stop."""
    global _target
    _target = target


def active_client() -> Sink | None:
    """The sink patched calls record into, or None (then the call is not measured)."""
    target = _target
    if target is None:
        return None
    sink = target()
    if sink is None or sink.disabled:
        return None
    return sink


# -- patch registry ----------------------------------------------------------------

_MARK = "__agentwatch_original__"


class Patches:
    """Wrapped (owner, name) pairs and their originals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[type, str], Any] = {}

    def wrap(self, owner: type, name: str, factory: Callable[[Any], Any]) -> None:
        with self._lock:
            if (owner, name) in self._done:
                return
            original = owner.__dict__.get(name)
            if original is None:
                return  # method absent in this version: nothing to wrap
            if getattr(original, _MARK, None) is not None:
                return  # already ours (e.g. a second registry after reload)
            wrapper = factory(original)
            setattr(wrapper, _MARK, original)
            setattr(owner, name, wrapper)
            self._done[(owner, name)] = original

    def restore_all(self) -> None:
        with self._lock:
            for (owner, name), original in self._done.items():
                current = owner.__dict__.get(name)
                if current is not None and getattr(current, _MARK, None) is original:
                    setattr(owner, name, original)
                # If someone wrapped on top of us, leave their wrapper in place;
                # ours is inert once disabled (active_client() returns None).
            self._done.clear()

    def count(self) -> int:
        return len(self._done)


# -- post-import hook ----------------------------------------------------------------


class ImportHook(importlib.abc.MetaPathFinder):
    """Runs a callback right after a watched top-level module finishes importing."""

    def __init__(self) -> None:
        self.pending: dict[str, Callable[[], None]] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: Any = None,
    ) -> importlib.machinery.ModuleSpec | None:
        callback = self.pending.get(fullname)
        if callback is None:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)
            if self.pending.pop(fullname, None) is not None:
                try:
                    callback()
                except Exception as exc:
                    internal_error(f"patch-on-import:{fullname}", exc)

        # Per-spec loader instance: overriding its method touches nothing else.
        loader.exec_module = exec_module
        return spec


# -- one measured call -----------------------------------------------------------------


class Call:
    """Timing and attribution of one provider call; emits exactly one event."""

    __slots__ = ("client", "done", "meta", "model", "provider", "run", "t0", "ttft", "wall")

    def __init__(self, client: Sink, provider: str, model: Any) -> None:
        self.client = client
        self.provider = provider
        self.model = model if isinstance(model, str) else ("" if model is None else str(model))
        self.run = current_run.get()
        self.meta: dict[str, Any] = {}
        self.ttft: float | None = None
        self.done = False
        self.wall = time.time()
        self.t0 = time.perf_counter()

    def emit(
        self,
        status: str,
        t_end: float,
        *,
        model: Any = None,
        error: BaseException | None = None,
        error_message: str | None = None,
        usage: Tokens | None = None,
    ) -> None:
        """Queue the event; `usage` maps input/output/cache_read/cache_write/reasoning_tokens."""
        tokens: Tokens = usage or {}
        if self.done:
            return
        self.done = True
        run = self.run
        client = self.client
        meta = self.meta
        if self.ttft is not None:
            meta["time_to_first_token_ms"] = (self.ttft - self.t0) * 1000.0
        if error is not None:
            meta["error_type"] = type(error).__name__
            code = getattr(error, "status_code", None)
            if isinstance(code, int):
                meta["http_status"] = code
            error_message = error_text(error)
        client.emit(
            build_event(
                client,
                run,
                model=(model if isinstance(model, str) and model else self.model) or "unknown",
                latency_ms=max(0.0, (t_end - self.t0) * 1000.0),
                status=status,
                error_message=error_message,
                timestamp=self.wall,
                metadata=meta,
                provider=self.provider,
                **tokens,
            )
        )

    def fail(self, exc: BaseException) -> None:
        """The provider call raised: record it (guarded; the caller re-raises)."""
        try:
            self.emit("error", time.perf_counter(), error=exc)
        except Exception as e:
            internal_error(f"{self.provider}.error", e)


class Usage(Protocol):
    """What a stream state reports when the stream ends."""

    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    have_usage: bool
    error_message: str | None

    def on_item(self, item: Any, now: float, call: Call) -> bool:
        """Update from one stream item; True to hide the item from the user."""
        ...


COMPLETE, PARTIAL, ERROR = "complete", "partial", "error"


class StreamUsage(abc.ABC):
    """What a stream has reported so far; each provider reads its own events."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "error_message",
        "have_usage",
        "input_tokens",
        "model",
        "output_tokens",
        "reasoning_tokens",
    )

    def __init__(self) -> None:
        self.model: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.have_usage = False
        self.error_message: str | None = None

    def _set(self, fields: Tokens) -> None:
        # Assign, never add: a stream reports its totals once.
        self.input_tokens = fields.get("input_tokens", 0)
        self.output_tokens = fields.get("output_tokens", 0)
        self.cache_read_tokens = fields.get("cache_read_tokens", 0)
        self.cache_write_tokens = fields.get("cache_write_tokens", 0)
        self.reasoning_tokens = fields.get("reasoning_tokens", 0)
        self.have_usage = True

    @abc.abstractmethod
    def on_item(self, item: Any, now: float, call: Call) -> bool:
        """Take one stream item; True hides it from the caller."""


class StreamRecorder:
    """Collects a stream's usage and emits its event once, however the stream ends."""

    __slots__ = ("__weakref__", "call", "finalizer", "in_next", "state", "t_last")

    def __init__(self, call: Call, state: Usage) -> None:
        self.call = call
        self.state = state
        self.in_next = False
        # Until a byte of body arrives, the last byte is the response headers.
        self.t_last = time.perf_counter()
        self.finalizer: weakref.finalize[Any, Any] | None = None

    def observe(self, item: Any) -> bool:
        now = time.perf_counter()
        self.t_last = now
        try:
            return self.state.on_item(item, now, self.call)
        except Exception as exc:
            internal_error(f"{self.call.provider}.stream", exc)
            return False

    def finish(self, outcome: str, exc: BaseException | None = None) -> None:
        call = self.call
        if call.done:
            return
        try:
            fin = self.finalizer
            if fin is not None:
                fin.detach()
            st = self.state
            meta = call.meta
            if outcome != COMPLETE:
                meta["partial"] = True
            if not st.have_usage:
                # Never pass an unknown count off as zero tokens.
                meta["usage_missing"] = True
            status = "error" if (exc is not None or st.error_message) else "success"
            call.emit(
                status,
                time.perf_counter() if outcome == COMPLETE else self.t_last,
                model=st.model,
                usage={
                    "input_tokens": st.input_tokens,
                    "output_tokens": st.output_tokens,
                    "cache_read_tokens": st.cache_read_tokens,
                    "cache_write_tokens": st.cache_write_tokens,
                    "reasoning_tokens": st.reasoning_tokens,
                },
                error=exc,
                error_message=st.error_message,
            )
        except Exception as e:
            internal_error(f"{call.provider}.stream.finish", e)


def _watch_lifetime(stream: Any, rec: StreamRecorder) -> None:
    # Abandoned without being iterated: the only signal is the object dying.
    # The callback holds the recorder, which holds nothing that leads back to
    # the stream, so the finalizer does not keep the stream alive.
    try:
        fin = weakref.finalize(stream, rec.finish, PARTIAL)
        fin.atexit = False
        rec.finalizer = fin
    except TypeError:
        pass


def wrap_sync_stream(stream: Any, rec: StreamRecorder) -> Any:
    """Observe a provider ``Stream`` in place; returns the same object.

    Swapping the stream's own item iterator (rather than returning a proxy)
    keeps its type, so isinstance checks and the SDKs' stream helpers
    (``text_stream``, ``get_final_message``, ``until_done``...) all see items
    through us. A close from outside (user close, context-manager exit, the
    helpers' close) is seen through the HTTP response's close.
    """
    inner = getattr(stream, "_iterator", None)
    if inner is None:
        rec.call.meta["stream_not_observed"] = True
        rec.finish(PARTIAL)
        return stream

    def observed() -> Iterator[Any]:
        try:
            while True:
                rec.in_next = True
                try:
                    item = next(inner)
                except StopIteration:
                    rec.in_next = False
                    rec.finish(COMPLETE)
                    return
                except BaseException as exc:
                    rec.in_next = False
                    rec.finish(ERROR, exc)
                    raise
                rec.in_next = False
                if rec.observe(item):
                    continue
                yield item
        except GeneratorExit:
            rec.finish(PARTIAL)
            inner.close()  # release the connection now, not at garbage collection
            raise

    stream._iterator = observed()
    response = getattr(stream, "response", None)
    close = getattr(type(response), "close", None)
    if close is not None:
        # A weakref and the class's function, not the bound method: a hook that
        # pointed back at the response would make every response a reference
        # cycle, freed only by the cyclic GC.
        response_ref = weakref.ref(response)

        def close_hook() -> None:
            try:
                r = response_ref()
                if r is not None:
                    close(r)
            finally:
                # Closed by the stream itself while we are pulling an item means
                # it is ending normally or failing; we finish that from the loop.
                if not rec.in_next:
                    rec.finish(PARTIAL)

        response.close = close_hook  # type: ignore[union-attr]
    _watch_lifetime(stream, rec)
    return stream


def wrap_async_stream(stream: Any, rec: StreamRecorder) -> Any:
    """The async twin of :func:`wrap_sync_stream`."""
    inner = getattr(stream, "_iterator", None)
    if inner is None:
        rec.call.meta["stream_not_observed"] = True
        rec.finish(PARTIAL)
        return stream

    async def observed() -> AsyncIterator[Any]:
        try:
            while True:
                rec.in_next = True
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    rec.in_next = False
                    rec.finish(COMPLETE)
                    return
                except BaseException as exc:
                    rec.in_next = False
                    rec.finish(ERROR, exc)
                    raise
                rec.in_next = False
                if rec.observe(item):
                    continue
                yield item
        except GeneratorExit:
            # Awaiting here is not allowed when the event loop finalizes us,
            # so the inner stream is left to its own close or collection.
            rec.finish(PARTIAL)
            raise

    stream._iterator = observed()
    response = getattr(stream, "response", None)
    aclose = getattr(type(response), "aclose", None)
    if aclose is not None:
        response_ref = weakref.ref(response)

        async def aclose_hook() -> None:
            try:
                r = response_ref()
                if r is not None:
                    await aclose(r)
            finally:
                if not rec.in_next:
                    rec.finish(PARTIAL)

        response.aclose = aclose_hook  # type: ignore[union-attr]
    _watch_lifetime(stream, rec)
    return stream
