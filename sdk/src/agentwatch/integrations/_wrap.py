"""The one wrapper factory behind every patched provider method, sync and async.

A provider describes each method it patches by an :class:`Endpoint`: two small
callbacks, ``begin`` (make the :class:`Call`, maybe adjust the request, and
say whether a stream comes back) and ``record`` (read a plain result). The
wrapper does the rest, the same for every provider:

* the user's call runs exactly once; its result or exception passes through
  unchanged (a stream comes back as the same object, observed in place);
* everything around it is guarded: a bug in our code is logged once (raised
  under ``AGENTWATCH_STRICT=1``) and never changes what the caller gets;
* when nothing is recording (not instrumented, or the client is disabled),
  the original runs with no work added beyond one lookup;
* a raw response (``with_raw_response`` / ``with_streaming_response``, the
  way LangChain, the OpenAI Agents SDK and LiteLLM call the clients) is
  measured through its ``parse()``: the parsed object is recorded, or the
  parsed stream observed, exactly as if the plain method had returned it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentwatch.integrations._call import Call
from agentwatch.integrations._patch import active_client
from agentwatch.integrations._stream import StreamRecorder, StreamState, wrap_stream
from agentwatch.sdk.events import Sink
from agentwatch.sdk.safety import internal_error

Started = tuple[Call, StreamState | None]

# True while a measured provider method runs: the lower-level request method
# it calls (openai's client.post, patched for the frameworks that call it
# directly, as LiteLLM does) must not count the same call again.
INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("agentwatch_inside", default=False)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a provider says about one patched method."""

    provider: str  # names the place in internal-error reports: "openai.result"
    # (sink, positional args incl. self, keyword args) -> the call, and the
    # state to observe the stream with when one is requested; None: this call
    # is not measured (runs as the original). May add to kwargs.
    begin: Callable[[Sink, tuple[Any, ...], dict[str, Any]], Started | None]
    # Emit the event of a result that is not a stream.
    record: Callable[[Call, Any], None]


# The SDKs' raw response classes (openai: LegacyAPIResponse for
# with_raw_response, APIResponse/AsyncAPIResponse for with_streaming_response;
# anthropic: APIResponse/AsyncAPIResponse for both). By name: a class check per
# result is cheaper than attribute probes on every pydantic result.
RAW_RESPONSES = frozenset({"LegacyAPIResponse", "APIResponse", "AsyncAPIResponse"})


def _unparsed(call: Call) -> None:
    """A raw response dropped without parse(): its usage was never read."""
    if not call.done:
        call.meta["usage_missing"] = True
        call.meta["raw_unparsed"] = True
        call.emit("success", time.perf_counter())


def observe_raw(raw: Any, started: Started, endpoint: Endpoint, is_async: bool) -> None:
    """Measure a raw response through its parse(): the instance's parse is replaced.

    The hook calls the class's parse with a weak reference to the response,
    so it adds no reference cycle; the first parse is the one observed (the
    SDKs cache the parsed object, so later calls return the same one).
    """
    call, state = started
    cls_parse = getattr(type(raw), "parse", None)
    if cls_parse is None:
        call.meta["usage_missing"] = True
        call.emit("success", time.perf_counter())
        return
    ref = weakref.ref(raw)
    fin = weakref.finalize(raw, _unparsed, call)
    fin.atexit = False

    def take(parsed: Any) -> None:
        if not fin.detach():
            return  # parsed before: already taken
        try:
            if state is not None and hasattr(parsed, "_iterator"):
                wrap_stream(parsed, StreamRecorder(call, state), is_async)
            else:
                endpoint.record(call, parsed)
        except Exception as exc:
            internal_error(f"{endpoint.provider}.raw", exc)

    def fetch() -> Any:
        r = ref()
        if r is None:  # pragma: no cover - the caller holds the response
            raise ReferenceError("response is gone")
        return r

    if inspect.iscoroutinefunction(cls_parse):

        async def aparse(*args: Any, **kwargs: Any) -> Any:
            try:
                parsed = await cls_parse(fetch(), *args, **kwargs)
            except BaseException as exc:
                if fin.detach():
                    call.fail(exc)
                raise
            take(parsed)
            return parsed

        raw.parse = aparse
    else:

        def parse(*args: Any, **kwargs: Any) -> Any:
            try:
                parsed = cls_parse(fetch(), *args, **kwargs)
            except BaseException as exc:
                if fin.detach():
                    call.fail(exc)
                raise
            take(parsed)
            return parsed

        raw.parse = parse


def wrap_call(original: Callable[..., Any], endpoint: Endpoint, is_async: bool) -> Any:
    """`original` measured: the patched method (a coroutine function when is_async)."""

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Started | None:
        sink = active_client()
        if sink is None:
            return None
        try:
            return endpoint.begin(sink, args, kwargs)
        except Exception as exc:
            internal_error(f"{endpoint.provider}.begin", exc)
            return None

    def done(started: Started, result: Any) -> Any:
        call, state = started
        try:
            if state is not None and hasattr(result, "_iterator"):
                return wrap_stream(result, StreamRecorder(call, state), is_async)
            if type(result).__name__ in RAW_RESPONSES:
                observe_raw(result, started, endpoint, is_async)
                return result
            endpoint.record(call, result)
        except Exception as exc:
            internal_error(f"{endpoint.provider}.result", exc)
        return result

    @functools.wraps(original)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        started = begin(args, kwargs)
        if started is None:
            return await original(*args, **kwargs)
        token = INSIDE.set(True)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            started[0].fail(exc)
            raise
        finally:
            INSIDE.reset(token)
        return done(started, result)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = begin(args, kwargs)
        if started is None:
            return original(*args, **kwargs)
        token = INSIDE.set(True)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            started[0].fail(exc)
            raise
        finally:
            INSIDE.reset(token)
        return done(started, result)

    return async_wrapper if is_async else wrapper
