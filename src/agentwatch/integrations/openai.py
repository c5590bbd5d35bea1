"""OpenAI integration: chat completions, Responses API, embeddings.

Patched (sync and async, so also the Azure clients, which share the resources):

* ``chat.completions.create`` (the ``.stream()`` helper goes through it),
  ``chat.completions.parse`` (which does not);
* ``responses.create`` (``responses.stream()`` goes through it), ``responses.parse``;
* ``embeddings.create``.

Token semantics: ``prompt_tokens``/``input_tokens`` already include cached
tokens, so input is taken as reported; cached and cache-write counts come
from the details objects, reasoning tokens from the output details.

Chat streams only carry usage when asked (``stream_options.include_usage``).
We add it unless the caller set ``stream_options`` themselves or the client
was created with ``openai_include_usage=False``; the extra usage-only chunk
(``choices == []``) is then consumed by us and not shown to the caller, whose
code did not ask for it and may index ``choices[0]``.
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

SUPPORTED = "openai>=3,<4"


def installed_version() -> str:
    import openai

    return str(getattr(openai, "__version__", "0"))


def supported(version: str) -> bool:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return False
    return major == 3


def _int(v: Any) -> int:
    return v if isinstance(v, int) else 0


def _provider_of(resource: Any, azure_types: tuple[type, ...]) -> str:
    client = getattr(resource, "_client", None)
    return "azure" if azure_types and isinstance(client, azure_types) else "openai"


# -- usage extraction --------------------------------------------------------------


def _chat_usage(u: Any) -> Tokens:
    d = getattr(u, "prompt_tokens_details", None)
    od = getattr(u, "completion_tokens_details", None)
    return {
        "input_tokens": _int(getattr(u, "prompt_tokens", 0)),
        "output_tokens": _int(getattr(u, "completion_tokens", 0)),
        "cache_read_tokens": _int(getattr(d, "cached_tokens", 0)) if d is not None else 0,
        "cache_write_tokens": _int(getattr(d, "cache_write_tokens", 0)) if d is not None else 0,
        "reasoning_tokens": _int(getattr(od, "reasoning_tokens", 0)) if od is not None else 0,
    }


def _responses_usage(u: Any) -> Tokens:
    d = getattr(u, "input_tokens_details", None)
    od = getattr(u, "output_tokens_details", None)
    return {
        "input_tokens": _int(getattr(u, "input_tokens", 0)),
        "output_tokens": _int(getattr(u, "output_tokens", 0)),
        "cache_read_tokens": _int(getattr(d, "cached_tokens", 0)) if d is not None else 0,
        "cache_write_tokens": _int(getattr(d, "cache_write_tokens", 0)) if d is not None else 0,
        "reasoning_tokens": _int(getattr(od, "reasoning_tokens", 0)) if od is not None else 0,
    }


def _embeddings_usage(u: Any) -> Tokens:
    return {"input_tokens": _int(getattr(u, "prompt_tokens", 0))}


USAGE = {"chat": _chat_usage, "responses": _responses_usage, "embeddings": _embeddings_usage}


def _record_result(call: Call, api: str, result: Any) -> None:
    """Emit the event for a non-streamed result."""
    usage = getattr(result, "usage", None)
    fields = USAGE[api](usage) if usage is not None else {}
    if usage is None:
        call.meta["usage_missing"] = True
    error_message = None
    if api == "responses" and getattr(result, "status", None) == "failed":
        err = getattr(result, "error", None)
        error_message = str(getattr(err, "message", None) or "response failed")
    call.emit(
        "error" if error_message else "success",
        time.perf_counter(),
        model=getattr(result, "model", None),
        error_message=error_message,
        usage=fields,
    )


# -- stream states -----------------------------------------------------------------


class ChatStreamState(StreamUsage):
    __slots__ = ("hide_usage_chunk",)

    def __init__(self, hide_usage_chunk: bool) -> None:
        super().__init__()
        self.hide_usage_chunk = hide_usage_chunk

    def on_item(self, chunk: Any, now: float, call: Call) -> bool:
        if self.model is None:  # every chunk repeats it; read it once
            self.model = getattr(chunk, "model", None) or None
        choices = getattr(chunk, "choices", None)
        if call.ttft is None and choices:
            for c in choices:
                d = getattr(c, "delta", None)
                if d is not None and (
                    getattr(d, "content", None)
                    or getattr(d, "tool_calls", None)
                    or getattr(d, "refusal", None)
                ):
                    call.ttft = now
                    break
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._set(_chat_usage(usage))
            return self.hide_usage_chunk and not choices
        return False


_RESPONSE_END = {"response.completed", "response.incomplete", "response.failed"}


class ResponsesStreamState(StreamUsage):
    __slots__ = ()

    def on_item(self, event: Any, now: float, call: Call) -> bool:
        typ = getattr(event, "type", "")
        if call.ttft is None and typ.endswith(".delta"):
            call.ttft = now
        if typ in _RESPONSE_END or typ == "response.created":
            resp = getattr(event, "response", None)
            model = getattr(resp, "model", None)
            if model:
                self.model = model
            usage = getattr(resp, "usage", None)
            if usage is not None:
                self._set(_responses_usage(usage))
            if typ == "response.failed":
                err = getattr(resp, "error", None)
                self.error_message = str(getattr(err, "message", None) or "response failed")
        elif typ == "error":
            self.error_message = str(getattr(event, "message", None) or "stream error")
        return False


# -- wrappers ------------------------------------------------------------------------


def _is_given(v: Any) -> bool:
    # openai marks "not passed" with Omit/NotGiven sentinels, both falsy.
    return v is not None and type(v).__name__ not in ("Omit", "NotGiven")


def _begin(
    resource: Any, api: str, kwargs: dict[str, Any], azure: tuple[type, ...], client: Any
) -> tuple[Call, StreamUsage | None]:
    call = Call(client, _provider_of(resource, azure), kwargs.get("model"))
    if kwargs.get("stream") is not True:
        return call, None
    if api == "chat":
        hide = False
        if not _is_given(kwargs.get("stream_options")) and client.openai_include_usage:
            kwargs["stream_options"] = {"include_usage": True}
            hide = True
        return call, ChatStreamState(hide)
    return call, ResponsesStreamState()


def _make_sync(original: Any, api: str, azure: tuple[type, ...]) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = active_client()
        if client is None:
            return original(self, *args, **kwargs)
        try:
            call, state = _begin(self, api, kwargs, azure, client)
        except Exception as exc:
            internal_error("openai.begin", exc)
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            if state is not None and hasattr(result, "_iterator"):
                return wrap_sync_stream(result, StreamRecorder(call, state))
            _record_result(call, api, result)
        except Exception as exc:
            internal_error("openai.result", exc)
        return result

    return wrapper


def _make_async(original: Any, api: str, azure: tuple[type, ...]) -> Any:
    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = active_client()
        if client is None:
            return await original(self, *args, **kwargs)
        try:
            call, state = _begin(self, api, kwargs, azure, client)
        except Exception as exc:
            internal_error("openai.begin", exc)
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            if state is not None and hasattr(result, "_iterator"):
                return wrap_async_stream(result, StreamRecorder(call, state))
            _record_result(call, api, result)
        except Exception as exc:
            internal_error("openai.result", exc)
        return result

    return wrapper


def patch(patches: Patches) -> None:
    """Wrap the OpenAI resource methods (called once per instrument())."""
    from openai.resources import embeddings
    from openai.resources.chat.completions import completions
    from openai.resources.responses import responses

    try:
        from openai.lib.azure import AsyncAzureOpenAI, AzureOpenAI

        azure: tuple[type, ...] = (AzureOpenAI, AsyncAzureOpenAI)
    except ImportError:  # pragma: no cover - azure ships with openai
        azure = ()

    targets = [
        (completions.Completions, "create", "chat", False),
        (completions.Completions, "parse", "chat", False),
        (completions.AsyncCompletions, "create", "chat", True),
        (completions.AsyncCompletions, "parse", "chat", True),
        (responses.Responses, "create", "responses", False),
        (responses.Responses, "parse", "responses", False),
        (responses.AsyncResponses, "create", "responses", True),
        (responses.AsyncResponses, "parse", "responses", True),
        (embeddings.Embeddings, "create", "embeddings", False),
        (embeddings.AsyncEmbeddings, "create", "embeddings", True),
    ]
    for owner, name, api, is_async in targets:
        make = _make_async if is_async else _make_sync
        patches.wrap(
            owner,
            name,
            lambda orig, m=make, a=api: m(orig, a, azure),  # type: ignore[misc]
        )
