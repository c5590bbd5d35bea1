"""The other ways frameworks reach the clients: raw and streaming responses, parse, beta.

Each case runs against the real openai / anthropic client (sync and async)
and the fake provider, and must give exactly one event with the provider's
exact token counts: the paths LangChain (``with_raw_response`` + ``parse()``),
the OpenAI Agents SDK (``with_streaming_response``), LiteLLM and the beta
namespaces take.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fakes import ANTHROPIC_MODEL, OPENAI_MODEL, FakeProvider, Usage
from pydantic import BaseModel

from tests.sdk.conftest import Captured

MSGS: list[Any] = [{"role": "user", "content": "hi"}]


async def aw(x: Any) -> Any:
    return await x if inspect.isawaitable(x) else x


async def drain(stream: Any) -> list[Any]:
    if hasattr(stream, "__aiter__"):
        return [item async for item in stream]
    return list(stream)


async def streamed(cm: Any, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Enter a with_streaming_response manager (sync or async), run `body` on the response."""
    if hasattr(cm, "__aenter__"):
        async with cm as resp:
            return await body(resp)
    with cm as resp:
        return await body(resp)


class Answer(BaseModel):
    answer: int


# -- OpenAI -------------------------------------------------------------------------


async def chat_raw(c: Any) -> str:
    raw = await aw(c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS))
    assert raw.headers["content-type"].startswith("application/json")
    return str(raw.parse().choices[0].message.content)


async def chat_raw_stream(c: Any) -> str:
    raw = await aw(
        c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS, stream=True)
    )
    chunks = await drain(raw.parse())
    return "".join(ch.choices[0].delta.content or "" for ch in chunks)


async def chat_client_level_raw(c: Any) -> str:
    raw = await aw(c.with_raw_response.chat.completions.create(model="gpt-4o", messages=MSGS))
    return str(raw.parse().choices[0].message.content)


async def chat_streaming_response(c: Any) -> str:
    async def body(resp: Any) -> str:
        return str((await aw(resp.parse())).choices[0].message.content)

    return str(
        await streamed(
            c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSGS), body
        )
    )


async def chat_streaming_response_stream(c: Any) -> str:
    async def body(resp: Any) -> str:
        chunks = await drain(await aw(resp.parse()))
        return "".join(ch.choices[0].delta.content or "" for ch in chunks)

    cm = c.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSGS, stream=True
    )
    return str(await streamed(cm, body))


async def chat_raw_parse(c: Any) -> str:
    raw = await aw(
        c.chat.completions.with_raw_response.parse(
            model="gpt-4o", messages=MSGS, response_format=Answer
        )
    )
    parsed = raw.parse().choices[0].message.parsed
    assert parsed == Answer(answer=4)
    return "Hello!"


async def beta_chat_stream(c: Any) -> str:
    cm = c.beta.chat.completions.stream(model="gpt-4o", messages=MSGS)
    if hasattr(cm, "__aenter__"):
        async with cm as s:
            await drain(s)
            final = await s.get_final_completion()
    else:
        with cm as s:
            list(s)
            final = s.get_final_completion()
    return str(final.choices[0].message.content)


async def responses_raw(c: Any) -> str:
    raw = await aw(c.responses.with_raw_response.create(model="gpt-4o", input="hi"))
    return str(raw.parse().output_text)


async def responses_client_level_raw_stream(c: Any) -> str:
    # LangChain's ChatOpenAI(use_responses_api=True).stream()
    raw = await aw(c.with_raw_response.responses.create(model="gpt-4o", input="hi", stream=True))
    events = await drain(raw.parse())
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


async def responses_streaming_response_stream(c: Any) -> str:
    # The OpenAI Agents SDK's Runner.run_streamed
    async def body(resp: Any) -> str:
        events = await drain(await aw(resp.parse()))
        return "".join(e.delta for e in events if e.type == "response.output_text.delta")

    cm = c.responses.with_streaming_response.create(model="gpt-4o", input="hi", stream=True)
    return str(await streamed(cm, body))


async def beta_responses(c: Any) -> str:
    r = await aw(c.beta.responses.create(model="gpt-4o", input="hi"))
    return str(r.output[0].content[0].text)


async def embeddings_raw(c: Any) -> str:
    raw = await aw(c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x"))
    assert raw.parse().data[0].embedding == [0.25, 0.5]
    return "Hello!"


OPENAI_CASES = [
    chat_raw,
    chat_raw_stream,
    chat_client_level_raw,
    chat_streaming_response,
    chat_streaming_response_stream,
    chat_raw_parse,
    beta_chat_stream,
    responses_raw,
    responses_client_level_raw_stream,
    responses_streaming_response_stream,
    beta_responses,
    embeddings_raw,
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", OPENAI_CASES, ids=lambda f: f.__name__)
def test_openai_path(
    case: Any,
    mode: str,
    captured: Captured,
    openai_client: Any,
    async_openai_client: Any,
    provider: FakeProvider,
) -> None:
    provider.usage = Usage(input=1200, output=80, cached=1000, reasoning=30)
    client = openai_client if mode == "sync" else async_openai_client
    assert asyncio.run(case(client)) == "Hello!"
    ev = captured.one()
    assert ev["provider"] == "openai" and ev["status"] == "success"
    assert ev["task_name"] == "test-task"
    assert ev["input_tokens"] == 1200
    assert "usage_missing" not in ev["metadata"], ev["metadata"]
    if case is embeddings_raw:
        assert ev["model"] == "text-embedding-3-small" and ev["output_tokens"] == 0
        return
    assert ev["model"] == OPENAI_MODEL
    assert (ev["output_tokens"], ev["cache_read_tokens"], ev["reasoning_tokens"]) == (80, 1000, 30)
    assert "partial" not in ev["metadata"]
    if case.__name__.endswith("stream"):
        assert ev["metadata"]["time_to_first_token_ms"] > 0
    if case in (chat_raw_stream, chat_streaming_response_stream):
        # asked for on the caller's behalf, as with create(stream=True)
        assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_raw_parse_twice_is_one_event(captured: Captured, openai_client: Any) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    assert raw.parse() is raw.parse()  # the SDK caches the parsed object
    assert captured.one()["input_tokens"] == 100


def test_raw_never_parsed_still_counts_the_call(captured: Captured, openai_client: Any) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    assert raw.http_response.status_code == 200
    del raw
    gc.collect()
    ev = captured.one()
    assert ev["metadata"]["usage_missing"] is True and ev["metadata"]["raw_unparsed"] is True
    assert ev["input_tokens"] == 0  # unknown, flagged, never passed off as a count


def test_raw_error_is_one_error_event(
    captured: Captured, openai_client: Any, provider: FakeProvider
) -> None:
    provider.fail_status = 500
    with pytest.raises(Exception, match="fake provider failure"):
        openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    ev = captured.one()
    assert ev["status"] == "error" and ev["metadata"]["http_status"] == 500


# -- Anthropic ----------------------------------------------------------------------


def _text(msg: Any) -> str:
    return "".join(b.text for b in msg.content if b.type == "text")


async def _stream_text(stream: Any) -> str:
    events = await drain(stream)
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    return "".join(d.text for d in deltas if d.type == "text_delta")


async def messages_raw(c: Any) -> str:
    raw = await aw(c.messages.with_raw_response.create(model="claude", max_tokens=9, messages=MSGS))
    return _text(await aw(raw.parse()))


async def messages_raw_stream(c: Any) -> str:
    # LangChain's ChatAnthropic.stream()
    raw = await aw(
        c.messages.with_raw_response.create(
            model="claude", max_tokens=9, messages=MSGS, stream=True
        )
    )
    return await _stream_text(await aw(raw.parse()))


async def messages_streaming_response_stream(c: Any) -> str:
    async def body(resp: Any) -> str:
        return await _stream_text(await aw(resp.parse()))

    cm = c.messages.with_streaming_response.create(
        model="claude", max_tokens=9, messages=MSGS, stream=True
    )
    return str(await streamed(cm, body))


async def messages_parse(c: Any) -> str:
    return _text(await aw(c.messages.parse(model="claude", max_tokens=9, messages=MSGS)))


async def beta_messages_create(c: Any) -> str:
    return _text(await aw(c.beta.messages.create(model="claude", max_tokens=9, messages=MSGS)))


async def beta_messages_raw_stream(c: Any) -> str:
    raw = await aw(
        c.beta.messages.with_raw_response.create(
            model="claude", max_tokens=9, messages=MSGS, stream=True
        )
    )
    return await _stream_text(await aw(raw.parse()))


async def beta_messages_stream(c: Any) -> str:
    cm = c.beta.messages.stream(model="claude", max_tokens=9, messages=MSGS)
    if hasattr(cm, "__aenter__"):
        async with cm as s:
            return _text(await s.get_final_message())
    with cm as s:
        return _text(s.get_final_message())


ANTHROPIC_CASES = [
    messages_raw,
    messages_raw_stream,
    messages_streaming_response_stream,
    messages_parse,
    beta_messages_create,
    beta_messages_raw_stream,
    beta_messages_stream,
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", ANTHROPIC_CASES, ids=lambda f: f.__name__)
def test_anthropic_path(
    case: Any,
    mode: str,
    captured: Captured,
    anthropic_client: Any,
    async_anthropic_client: Any,
    provider: FakeProvider,
) -> None:
    provider.usage = Usage(input=300, output=40, cached=200, cache_write=100)
    client = anthropic_client if mode == "sync" else async_anthropic_client
    assert asyncio.run(case(client)) == "Hello!"
    ev = captured.one()
    assert ev["provider"] == "anthropic" and ev["status"] == "success"
    assert ev["model"] == ANTHROPIC_MODEL and ev["task_name"] == "test-task"
    # Anthropic's input_tokens exclude the cache; the event's input includes it.
    assert (ev["input_tokens"], ev["output_tokens"]) == (600, 40)
    assert (ev["cache_read_tokens"], ev["cache_write_tokens"]) == (200, 100)
    assert "usage_missing" not in ev["metadata"] and "partial" not in ev["metadata"]


# -- the client's own post, as LiteLLM calls it -------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai_client_post(
    mode: str,
    stream: bool,
    captured: Captured,
    openai_client: Any,
    async_openai_client: Any,
    provider: FakeProvider,
) -> None:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    body: dict[str, Any] = {"model": "gpt-4o", "messages": MSGS, "stream": stream}
    sent = dict(body)
    client = openai_client if mode == "sync" else async_openai_client
    stream_cls = openai.Stream if mode == "sync" else openai.AsyncStream

    async def go() -> str:
        r = await aw(
            client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                stream=stream,
                stream_cls=stream_cls[ChatCompletionChunk],
            )
        )
        if not stream:
            return str(r.choices[0].message.content)
        return "".join(ch.choices[0].delta.content or "" for ch in await drain(r))

    assert asyncio.run(go()) == "Hello!"
    assert body == sent  # the caller's body is not changed in place
    ev = captured.one()
    assert (ev["model"], ev["input_tokens"], ev["output_tokens"]) == (OPENAI_MODEL, 100, 20)
    assert "usage_missing" not in ev["metadata"]
    if stream:
        assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_resource_call_is_not_counted_again_by_post(captured: Captured, openai_client: Any) -> None:
    openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    openai_client.responses.create(model="gpt-4o", input="hi")
    assert [e["input_tokens"] for e in captured.llm()] == [100, 100]
