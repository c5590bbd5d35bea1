"""Provider streams observed in place, finished exactly once however they end.

A :class:`StreamState` subclass per provider reads that provider's stream
items (model, token counts, errors). The :class:`StreamRecorder` joins a state
to its :class:`~agentwatch.integrations._call.Call` and emits the call's event
once: on exhaustion, on an error, on a close from outside, or when the stream
is dropped unread. :func:`wrap_stream` swaps the stream's own item iterator
for an observing one, so the caller keeps the same object and type.
"""

from __future__ import annotations

import abc
import time
import weakref
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from agentwatch.integrations._call import Call
from agentwatch.sdk.events import Tokens
from agentwatch.sdk.safety import internal_error

COMPLETE, PARTIAL, ERROR = "complete", "partial", "error"


class StreamState(abc.ABC):
    """What a stream has reported so far; each provider reads its own items."""

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

    def set_usage(self, tokens: Tokens) -> None:
        """Take the stream's totals. Assign, never add: a stream reports them once."""
        self.input_tokens = tokens.get("input_tokens", 0)
        self.output_tokens = tokens.get("output_tokens", 0)
        self.cache_read_tokens = tokens.get("cache_read_tokens", 0)
        self.cache_write_tokens = tokens.get("cache_write_tokens", 0)
        self.reasoning_tokens = tokens.get("reasoning_tokens", 0)
        self.have_usage = True

    def usage(self) -> Tokens:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @abc.abstractmethod
    def on_item(self, item: Any, now: float, call: Call) -> bool:
        """Take one stream item; True hides it from the caller."""


class StreamRecorder:
    """Collects a stream's usage and emits its event once, however the stream ends."""

    __slots__ = ("__weakref__", "call", "finalizer", "in_next", "state", "t_last")

    def __init__(self, call: Call, state: StreamState) -> None:
        self.call = call
        self.state = state
        # True while the stream is producing an item: a close seen then is the
        # stream ending itself, which the observing loop finishes.
        self.in_next = False
        # Until a byte of body arrives, the last byte is the response headers.
        self.t_last = time.perf_counter()
        self.finalizer: weakref.finalize[Any, Any] | None = None

    def keep(self, item: Any) -> bool:
        """Observe one item; False when the caller must not see it."""
        self.in_next = False
        now = time.perf_counter()
        self.t_last = now
        try:
            return not self.state.on_item(item, now, self.call)
        except Exception as exc:
            internal_error(f"{self.call.provider}.stream", exc)
            return True

    def ended(self, exc: BaseException) -> bool:
        """The stream raised `exc` for its next item: finish; True if it is the normal end."""
        self.in_next = False
        if isinstance(exc, StopIteration | StopAsyncIteration):
            self.finish(COMPLETE)
            return True
        self.finish(ERROR, exc)
        return False

    def closed(self) -> None:
        """The HTTP response was closed: from outside, that ends the stream early."""
        if not self.in_next:
            self.finish(PARTIAL)

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
                usage=st.usage(),
                error=exc,
                error_message=st.error_message,
            )
        except Exception as e:
            internal_error(f"{call.provider}.stream.finish", e)


def _observe(inner: Generator[Any, Any, Any], rec: StreamRecorder) -> Iterator[Any]:
    try:
        while True:
            rec.in_next = True
            try:
                item = next(inner)
            except BaseException as exc:
                if rec.ended(exc):
                    return
                raise
            if rec.keep(item):
                yield item
    except GeneratorExit:
        rec.finish(PARTIAL)
        inner.close()  # release the connection now, not at garbage collection
        raise


async def _aobserve(inner: AsyncIterator[Any], rec: StreamRecorder) -> AsyncIterator[Any]:
    try:
        while True:
            rec.in_next = True
            try:
                item = await anext(inner)
            except BaseException as exc:
                if rec.ended(exc):
                    return
                raise
            if rec.keep(item):
                yield item
    except GeneratorExit:
        # Awaiting here is not allowed when the event loop finalizes us, so
        # the inner stream is left to its own close or collection.
        rec.finish(PARTIAL)
        raise


def _hook_close(response: Any, rec: StreamRecorder, is_async: bool) -> None:
    # A weakref and the class's function, not the bound method: a hook that
    # pointed back at the response would make every response a reference
    # cycle, freed only by the cyclic GC.
    name = "aclose" if is_async else "close"
    close = getattr(type(response), name, None)
    if close is None:
        return
    response_ref = weakref.ref(response)

    def close_hook() -> None:
        try:
            r = response_ref()
            if r is not None:
                close(r)
        finally:
            rec.closed()

    async def aclose_hook() -> None:
        try:
            r = response_ref()
            if r is not None:
                await close(r)
        finally:
            rec.closed()

    setattr(response, name, aclose_hook if is_async else close_hook)


def wrap_stream(stream: Any, rec: StreamRecorder, is_async: bool) -> Any:
    """Observe a provider ``Stream`` / ``AsyncStream`` in place; returns the same object.

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
    stream._iterator = _aobserve(inner, rec) if is_async else _observe(inner, rec)
    _hook_close(getattr(stream, "response", None), rec, is_async)
    # Dropped without being read to the end: the only signal is the object
    # dying. The callback holds the recorder, which holds nothing that leads
    # back to the stream, so the finalizer does not keep the stream alive.
    try:
        fin = weakref.finalize(stream, rec.finish, PARTIAL)
        fin.atexit = False
        rec.finalizer = fin
    except TypeError:
        pass
    return stream
