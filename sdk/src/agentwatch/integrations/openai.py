"""OpenAI integration: chat completions, Responses API, embeddings.

Patched (sync and async, so also the Azure clients, which share the resources):

* ``chat.completions.create`` (the ``.stream()`` helper goes through it),
  ``chat.completions.parse`` (which does not);
* ``responses.create`` (``responses.stream()`` goes through it), ``responses.parse``;
* ``embeddings.create``;
* ``beta.responses.create`` / ``.parse`` (``beta.chat`` is the same resource
  as ``chat``);
* the client's ``post`` for those three paths, when no patched method above
  is measuring the call: LiteLLM posts to ``/chat/completions`` itself.

``with_raw_response`` and ``with_streaming_response`` (client-level or per
resource) call the patched method; the raw response they get back is
measured through its ``parse()`` (``_wrap.observe_raw``).

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

import time
from typing import Any

from agentwatch.integrations._call import Call, count
from agentwatch.integrations._patch import Integration, Patches
from agentwatch.integrations._stream import StreamState
from agentwatch.integrations._wrap import INSIDE, Endpoint, Started, wrap_call
from agentwatch.sdk.events import Sink, Tokens


def _provider_of(resource: Any, azure_types: tuple[type, ...]) -> str:
    client = getattr(resource, "_client", None)
    return "azure" if azure_types and isinstance(client, azure_types) else "openai"


# -- usage extraction --------------------------------------------------------------


def _usage(u: Any, names: tuple[str, str, str, str]) -> Tokens:
    inp, out, details, output_details = names
    d = getattr(u, details, None)
    od = getattr(u, output_details, None)
    return {
        "input_tokens": count(u, inp),
        "output_tokens": count(u, out),
        "cache_read_tokens": count(d, "cached_tokens"),
        "cache_write_tokens": count(d, "cache_write_tokens"),
        "reasoning_tokens": count(od, "reasoning_tokens"),
    }


# (input, output, input details, output details): each API's names for them.
_CHAT = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
_RESPONSES = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


def _chat_usage(u: Any) -> Tokens:
    return _usage(u, _CHAT)


def _responses_usage(u: Any) -> Tokens:
    return _usage(u, _RESPONSES)


def _embeddings_usage(u: Any) -> Tokens:
    return {"input_tokens": count(u, "prompt_tokens")}


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


class ChatStreamState(StreamState):
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
            self.set_usage(_chat_usage(usage))
            return self.hide_usage_chunk and not choices
        return False


_RESPONSE_END = {"response.completed", "response.incomplete", "response.failed"}


class ResponsesStreamState(StreamState):
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
                self.set_usage(_responses_usage(usage))
            if typ == "response.failed":
                err = getattr(resp, "error", None)
                self.error_message = str(getattr(err, "message", None) or "response failed")
        elif typ == "error":
            self.error_message = str(getattr(event, "message", None) or "stream error")
        return False


# -- the endpoints -------------------------------------------------------------------


def _is_given(v: Any) -> bool:
    # openai marks "not passed" with Omit/NotGiven sentinels, both falsy.
    return v is not None and type(v).__name__ not in ("Omit", "NotGiven")


def _start(sink: Sink, provider: str, api: str, params: dict[str, Any]) -> Started:
    """The call, and its stream state if a stream was asked for (may add to `params`)."""
    call = Call(sink, provider, params.get("model"))
    if params.get("stream") is not True:
        return call, None
    if api != "chat":
        return call, ResponsesStreamState()
    hide = False
    if not _is_given(params.get("stream_options")) and sink.openai_include_usage:
        params["stream_options"] = {"include_usage": True}
        hide = True
    return call, ChatStreamState(hide)


def endpoint(api: str, azure: tuple[type, ...]) -> Endpoint:
    def begin(sink: Sink, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Started:
        return _start(sink, _provider_of(args[0] if args else None, azure), api, kwargs)

    def record(call: Call, result: Any) -> None:
        _record_result(call, api, result)  # looked up per call: tests replace it

    return Endpoint("openai", begin, record)


# The client's own request method, as LiteLLM calls it (client.post("/chat/completions",
# body=...)) without the resources: measured only when no patched resource
# method is already measuring this call (INSIDE).
_POST_PATHS = {"/chat/completions": "chat", "/responses": "responses", "/embeddings": "embeddings"}
# A parsed result's `object` names its API.
_OBJECT_API: dict[Any, str] = {
    "chat.completion": "chat",
    "response": "responses",
    "list": "embeddings",
}


def post_endpoint(azure: tuple[type, ...]) -> Endpoint:
    def begin(sink: Sink, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Started | None:
        if INSIDE.get() or len(args) < 2:
            return None
        api = _POST_PATHS.get(args[1])
        body = kwargs.get("body")
        if api is None or not isinstance(body, dict):
            return None
        params = dict(body)  # the caller's body is never changed in place
        started = _start(sink, "azure" if isinstance(args[0], azure) else "openai", api, params)
        if "stream_options" in params and "stream_options" not in body:
            kwargs["body"] = params
        return started

    def record(call: Call, result: Any) -> None:
        _record_result(call, _OBJECT_API.get(getattr(result, "object", None), "chat"), result)

    return Endpoint("openai", begin, record)


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

    chat, resp, emb = (endpoint(api, azure) for api in ("chat", "responses", "embeddings"))
    targets = [
        (completions.Completions, "create", chat, False),
        (completions.Completions, "parse", chat, False),
        (completions.AsyncCompletions, "create", chat, True),
        (completions.AsyncCompletions, "parse", chat, True),
        (responses.Responses, "create", resp, False),
        (responses.Responses, "parse", resp, False),
        (responses.AsyncResponses, "create", resp, True),
        (responses.AsyncResponses, "parse", resp, True),
        (embeddings.Embeddings, "create", emb, False),
        (embeddings.AsyncEmbeddings, "create", emb, True),
    ]
    try:
        from openai.resources.beta.responses import responses as beta_responses
    except ImportError:  # older 3.x: no beta Responses
        pass
    else:
        for name in ("create", "parse"):
            targets.append((beta_responses.Responses, name, resp, False))
            targets.append((beta_responses.AsyncResponses, name, resp, True))
    from openai._base_client import AsyncAPIClient, SyncAPIClient

    post = post_endpoint(azure)
    targets.append((SyncAPIClient, "post", post, False))
    targets.append((AsyncAPIClient, "post", post, True))
    for owner, name, ep, is_async in targets:
        patches.wrap(
            owner,
            name,
            lambda orig, e=ep, a=is_async: wrap_call(orig, e, a),  # type: ignore[misc]
        )


INTEGRATION = Integration(module="openai", major=3, patch=patch)
