"""Anthropic integration: ``messages.create`` and ``messages.stream``, sync and async.

``messages.stream()`` does not go through ``create``: it builds its request
lazily and sends it when the stream manager is entered, so we wrap that
request and observe the raw event stream underneath ``MessageStream``. Every
way of consuming it (iteration, ``text_stream``, ``get_final_message``,
``until_done``, the context manager) reads that raw stream.

Token semantics: Anthropic's ``input_tokens`` excludes cached tokens, so the
event's input is ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens``. In a stream, ``message_start`` carries the
input side and ``message_delta`` the output count, which is cumulative: it is
assigned, never added.

anthropic 2.x can also emit its own OpenTelemetry spans; we do not read them,
so a call is never counted twice.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from agentwatch.integrations._patch import (
    Call,
    Patches,
    StreamRecorder,
    StreamUsage,
    active_client,
    wrap_async_stream,
    wrap_sync_stream,
)
from agentwatch.sdk.events import Tokens
from agentwatch.sdk.safety import internal_error

SUPPORTED = "anthropic>=2,<3"
PROVIDER = "anthropic"


def installed_version() -> str:
    import anthropic

    return str(getattr(anthropic, "__version__", "0"))


def supported(version: str) -> bool:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return False
    return major == 2


def _int(v: Any) -> int:
    return v if isinstance(v, int) else 0


def _thinking(u: Any) -> int:
    d = getattr(u, "output_tokens_details", None)
    return _int(getattr(d, "thinking_tokens", 0)) if d is not None else 0


def _message_usage(u: Any) -> Tokens:
    cache_read = _int(getattr(u, "cache_read_input_tokens", 0))
    cache_write = _int(getattr(u, "cache_creation_input_tokens", 0))
    return {
        "input_tokens": _int(getattr(u, "input_tokens", 0)) + cache_read + cache_write,
        "output_tokens": _int(getattr(u, "output_tokens", 0)),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": _thinking(u),
    }


def _record_message(call: Call, result: Any) -> None:
    usage = getattr(result, "usage", None)
    if usage is None:
        call.meta["usage_missing"] = True
        fields: Tokens = {}
    else:
        fields = _message_usage(usage)
    call.emit("success", time.perf_counter(), model=getattr(result, "model", None), usage=fields)


class AnthropicStreamState(StreamUsage):
    __slots__ = ("base_input",)  # input_tokens without the cache tokens

    def __init__(self) -> None:
        super().__init__()
        self.base_input = 0

    def _total_input(self) -> None:
        self.input_tokens = self.base_input + self.cache_read_tokens + self.cache_write_tokens

    def on_item(self, event: Any, now: float, call: Call) -> bool:
        typ = getattr(event, "type", None)
        if typ == "content_block_delta":
            if call.ttft is None:
                call.ttft = now
        elif typ == "message_start":
            msg = getattr(event, "message", None)
            model = getattr(msg, "model", None)
            if model:
                self.model = model
            u = getattr(msg, "usage", None)
            if u is not None:
                self.base_input = _int(getattr(u, "input_tokens", 0))
                self.cache_read_tokens = _int(getattr(u, "cache_read_input_tokens", 0))
                self.cache_write_tokens = _int(getattr(u, "cache_creation_input_tokens", 0))
                self.output_tokens = _int(getattr(u, "output_tokens", 0))
                self._total_input()
                self.have_usage = True
        elif typ == "message_delta":
            u = getattr(event, "usage", None)
            if u is not None:
                # Cumulative counts: assign. Input-side fields are optional here
                # and, when present, also cumulative.
                self.output_tokens = _int(getattr(u, "output_tokens", 0))
                v = getattr(u, "input_tokens", None)
                if isinstance(v, int):
                    self.base_input = v
                v = getattr(u, "cache_read_input_tokens", None)
                if isinstance(v, int):
                    self.cache_read_tokens = v
                v = getattr(u, "cache_creation_input_tokens", None)
                if isinstance(v, int):
                    self.cache_write_tokens = v
                self.reasoning_tokens = _thinking(u)
                self._total_input()
                self.have_usage = True
        return False


# -- wrappers --------------------------------------------------------------------------


def _wrap_create(original: Any) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = active_client()
        if client is None:
            return original(self, *args, **kwargs)
        try:
            call = Call(client, PROVIDER, kwargs.get("model"))
        except Exception as exc:
            internal_error("anthropic.begin", exc)
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            if kwargs.get("stream") is True and hasattr(result, "_iterator"):
                return wrap_sync_stream(result, StreamRecorder(call, AnthropicStreamState()))
            _record_message(call, result)
        except Exception as exc:
            internal_error("anthropic.result", exc)
        return result

    return wrapper


def _wrap_acreate(original: Any) -> Any:
    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = active_client()
        if client is None:
            return await original(self, *args, **kwargs)
        try:
            call = Call(client, PROVIDER, kwargs.get("model"))
        except Exception as exc:
            internal_error("anthropic.begin", exc)
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            if kwargs.get("stream") is True and hasattr(result, "_iterator"):
                return wrap_async_stream(result, StreamRecorder(call, AnthropicStreamState()))
            _record_message(call, result)
        except Exception as exc:
            internal_error("anthropic.result", exc)
        return result

    return wrapper


# The stream managers keep their request in a name-mangled attribute; both are
# checked at patch time and the wrapper leaves the manager alone if absent.
_SYNC_REQ = "_MessageStreamManager__api_request"
_ASYNC_REQ = "_AsyncMessageStreamManager__api_request"


def _wrap_stream(original: Any) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        client = active_client()
        if client is None:
            return manager
        try:
            request = getattr(manager, _SYNC_REQ, None)
            if request is None:
                internal_error("anthropic.stream: manager has no request attribute")
                return manager
            model = kwargs.get("model")

            def observed_request() -> Any:
                # The HTTP request happens here, when the manager is entered.
                call = Call(client, PROVIDER, model)
                try:
                    raw = request()
                except BaseException as exc:
                    call.fail(exc)
                    raise
                try:
                    return wrap_sync_stream(raw, StreamRecorder(call, AnthropicStreamState()))
                except Exception as exc:
                    internal_error("anthropic.stream", exc)
                    return raw

            setattr(manager, _SYNC_REQ, observed_request)
        except Exception as exc:
            internal_error("anthropic.stream", exc)
        return manager

    return wrapper


def _wrap_astream(original: Any) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        client = active_client()
        if client is None:
            return manager
        try:
            request = getattr(manager, _ASYNC_REQ, None)
            if request is None:
                internal_error("anthropic.stream: manager has no request attribute")
                return manager
            model = kwargs.get("model")

            async def observed_request() -> Any:
                call = Call(client, PROVIDER, model)
                try:
                    raw = await request
                except BaseException as exc:
                    call.fail(exc)
                    raise
                try:
                    return wrap_async_stream(raw, StreamRecorder(call, AnthropicStreamState()))
                except Exception as exc:
                    internal_error("anthropic.stream", exc)
                    return raw

            setattr(manager, _ASYNC_REQ, observed_request())
        except Exception as exc:
            internal_error("anthropic.stream", exc)
        return manager

    return wrapper


def patch(patches: Patches) -> None:
    """Wrap the Anthropic Messages resource methods (called once per instrument())."""
    from anthropic.resources.messages import messages

    patches.wrap(messages.Messages, "create", _wrap_create)
    patches.wrap(messages.AsyncMessages, "create", _wrap_acreate)
    patches.wrap(messages.Messages, "stream", _wrap_stream)
    patches.wrap(messages.AsyncMessages, "stream", _wrap_astream)
