"""Anthropic integration: ``messages.create``, ``.parse`` and ``.stream``, sync and async.

The same three on ``beta.messages``. ``with_raw_response`` and
``with_streaming_response`` call ``create``; their raw response is measured
through its ``parse()`` (``_wrap.observe_raw``).

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

from agentwatch.integrations._call import Call, as_int, count
from agentwatch.integrations._patch import Integration, Patches, active_client
from agentwatch.integrations._stream import StreamState
from agentwatch.integrations._wrap import Endpoint, Started, wrap_call
from agentwatch.sdk.events import Sink, Tokens
from agentwatch.sdk.safety import internal_error

PROVIDER = "anthropic"


def _thinking(u: Any) -> int:
    return count(getattr(u, "output_tokens_details", None), "thinking_tokens")


def _message_usage(u: Any) -> Tokens:
    cache_read = count(u, "cache_read_input_tokens")
    cache_write = count(u, "cache_creation_input_tokens")
    return {
        "input_tokens": count(u, "input_tokens") + cache_read + cache_write,
        "output_tokens": count(u, "output_tokens"),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": _thinking(u),
    }


def _record_message(call: Call, result: Any) -> None:
    usage = getattr(result, "usage", None)
    if usage is None:
        call.meta["usage_missing"] = True
    fields = _message_usage(usage) if usage is not None else {}
    call.emit("success", time.perf_counter(), model=getattr(result, "model", None), usage=fields)


# Anthropic's stream usage fields -> ours (input_tokens excludes the cache here).
_INPUT_SIDE = (
    ("base_input", "input_tokens"),
    ("cache_read_tokens", "cache_read_input_tokens"),
    ("cache_write_tokens", "cache_creation_input_tokens"),
)


class AnthropicStreamState(StreamState):
    __slots__ = ("base_input",)  # input_tokens without the cache tokens

    def __init__(self) -> None:
        super().__init__()
        self.base_input = 0

    def _take(self, u: Any, start: bool) -> None:
        # Counts are cumulative: assign, never add. message_start carries the
        # input side; in message_delta those fields are optional (kept when
        # absent) and the output count is the running total.
        self.output_tokens = count(u, "output_tokens")
        for ours, theirs in _INPUT_SIDE:
            v = getattr(u, theirs, None)
            if start or isinstance(v, int):
                setattr(self, ours, as_int(v))
        if not start:
            self.reasoning_tokens = _thinking(u)
        self.input_tokens = self.base_input + self.cache_read_tokens + self.cache_write_tokens
        self.have_usage = True

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
                self._take(u, start=True)
        elif typ == "message_delta":
            u = getattr(event, "usage", None)
            if u is not None:
                self._take(u, start=False)
        return False


# -- the endpoints ------------------------------------------------------------------


def _begin_create(sink: Sink, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Started:
    call = Call(sink, PROVIDER, kwargs.get("model"))
    return call, AnthropicStreamState() if kwargs.get("stream") is True else None


CREATE = Endpoint(PROVIDER, _begin_create, _record_message)


def _stream_endpoint(model: Any) -> Endpoint:
    def begin(sink: Sink, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Started:
        return Call(sink, PROVIDER, model), AnthropicStreamState()

    return Endpoint(PROVIDER, begin, _record_message)


# The stream managers keep their request in a name-mangled attribute
# (`_<manager class>__api_request`); the wrapper leaves a manager alone if absent.
_SYNC_REQ = "_MessageStreamManager__api_request"
_ASYNC_REQ = "_AsyncMessageStreamManager__api_request"
_BETA_SYNC_REQ = "_BetaMessageStreamManager__api_request"
_BETA_ASYNC_REQ = "_BetaAsyncMessageStreamManager__api_request"


def _wrap_stream(original: Any, is_async: bool, attr: str) -> Any:
    """``messages.stream()``: the request runs when the manager is entered; measure that."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        if active_client() is None:
            return manager
        try:
            request = getattr(manager, attr, None)
            if request is None:
                internal_error("anthropic.stream: manager has no request attribute")
                return manager
            endpoint = _stream_endpoint(kwargs.get("model"))
            if is_async:
                # The async manager awaits its request (a coroutine) once.
                setattr(manager, attr, wrap_call(lambda: request, endpoint, True)())
            else:
                setattr(manager, attr, wrap_call(request, endpoint, False))
        except Exception as exc:
            internal_error("anthropic.stream", exc)
        return manager

    return wrapper


def _patch_resource(patches: Patches, sync: type, asyn: type, reqs: tuple[str, str]) -> None:
    # create (also behind with_raw_response / with_streaming_response, which
    # call it), parse (its own request), stream (its own lazy request).
    for owner, is_async in ((sync, False), (asyn, True)):
        for name in ("create", "parse"):
            patches.wrap(owner, name, lambda o, a=is_async: wrap_call(o, CREATE, a))  # type: ignore[misc]
        attr = reqs[1] if is_async else reqs[0]
        patches.wrap(owner, "stream", lambda o, a=is_async, r=attr: _wrap_stream(o, a, r))  # type: ignore[misc]


def patch(patches: Patches) -> None:
    """Wrap the Anthropic Messages resources, GA and beta (called once per instrument())."""
    from anthropic.resources.messages import messages

    _patch_resource(patches, messages.Messages, messages.AsyncMessages, (_SYNC_REQ, _ASYNC_REQ))
    try:  # beta.messages: what LangChain calls when betas or newer features are asked for
        from anthropic.resources.beta.messages import messages as beta
    except ImportError:  # pragma: no cover - every tested 2.x has it
        return
    _patch_resource(patches, beta.Messages, beta.AsyncMessages, (_BETA_SYNC_REQ, _BETA_ASYNC_REQ))


INTEGRATION = Integration(module="anthropic", major=2, patch=patch)
