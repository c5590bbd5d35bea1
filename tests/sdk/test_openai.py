"""Auto-patched OpenAI calls, through the real openai client against the fake provider."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from fakes import OPENAI_MODEL, FakeProvider, SlowHTTPProvider, Usage
from pydantic import BaseModel

from tests.sdk.conftest import Captured

MSGS: list[Any] = [{"role": "user", "content": "hi"}]


def assert_usage(ev: dict[str, Any], u: Usage) -> None:
    assert ev["input_tokens"] == u.input  # OpenAI's prompt_tokens already include cached
    assert ev["output_tokens"] == u.output
    assert ev["cache_read_tokens"] == u.cached
    assert ev["cache_write_tokens"] == u.cache_write
    assert ev["reasoning_tokens"] == u.reasoning


@pytest.fixture
def usage(provider: FakeProvider) -> Usage:
    provider.usage = Usage(input=1200, output=80, cached=1000, cache_write=50, reasoning=30)
    return provider.usage


def test_chat_create(captured: Captured, openai_client: Any, usage: Usage) -> None:
    r = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert r.choices[0].message.content == "Hello!"
    ev = captured.one()
    assert ev["model"] == OPENAI_MODEL  # the response's model, not the alias asked for
    assert ev["provider"] == "openai"
    assert ev["kind"] == "llm" and ev["status"] == "success"
    assert ev["task_name"] == "test-task" and ev["agent_name"] == "test-agent"
    assert ev["latency_ms"] > 0 and ev["cost_usd"] is None
    assert ev["timestamp"].endswith("+00:00") and len(ev["id"]) == 36
    assert_usage(ev, usage)


def test_chat_stream_iteration_adds_and_hides_usage_chunk(
    captured: Captured, openai_client: Any, provider: FakeProvider, usage: Usage
) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    assert isinstance(stream, openai.Stream)  # same object type as unpatched
    chunks = list(stream)
    # The caller did not ask for usage: the usage-only chunk is not shown to them.
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello!"
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    ev = captured.one()
    assert_usage(ev, usage)
    assert ev["metadata"]["time_to_first_token_ms"] > 0
    assert "partial" not in ev["metadata"] and "usage_missing" not in ev["metadata"]


def test_chat_stream_caller_include_usage_is_respected(
    captured: Captured, openai_client: Any, provider: FakeProvider, usage: Usage
) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == usage.input
    assert_usage(captured.one(), usage)


def test_chat_stream_caller_opted_out_flags_missing_usage(
    captured: Captured, openai_client: Any, provider: FakeProvider
) -> None:
    list(
        openai_client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": False}
        )
    )
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": False}
    ev = captured.one()
    assert ev["metadata"]["usage_missing"] is True
    assert ev["input_tokens"] == 0 and ev["status"] == "success"


def test_include_usage_injection_opt_out(
    openai_client: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentwatch

    monkeypatch.setenv("AGENTWATCH_OPENAI_INCLUDE_USAGE", "0")
    sink: list[dict[str, Any]] = []
    agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink.extend)
    list(openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    assert "stream_options" not in provider.requests[-1]["body"]
    agentwatch.flush()
    assert sink[0]["metadata"]["usage_missing"] is True


def test_chat_stream_context_manager(captured: Captured, openai_client: Any, usage: Usage) -> None:
    with openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True) as s:
        for _ in s:
            pass
    assert_usage(captured.one(), usage)


def test_chat_stream_helper_get_final_completion(
    captured: Captured, openai_client: Any, usage: Usage
) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MSGS) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == "Hello!"
    ev = captured.one()  # .stream() goes through create: one event, not two
    assert_usage(ev, usage)


def test_chat_stream_helper_until_done(
    captured: Captured, openai_client: Any, usage: Usage
) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MSGS) as s:
        s.until_done()
    assert_usage(captured.one(), usage)


def test_chat_stream_closed_early_is_partial(captured: Captured, openai_client: Any) -> None:
    s = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    first = next(iter(s))
    assert first.choices
    s.close()
    ev = captured.one()
    assert ev["metadata"]["partial"] is True
    assert ev["metadata"]["usage_missing"] is True
    assert ev["status"] == "success"


def test_chat_stream_helper_exited_early_is_partial(captured: Captured, openai_client: Any) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MSGS) as s:
        for _event in s:
            break
    ev = captured.one()
    assert ev["metadata"]["partial"] is True


def test_chat_stream_abandoned_is_recorded(captured: Captured, openai_client: Any) -> None:
    s = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    next(iter(s))
    del s
    gc.collect()
    ev = captured.one()
    assert ev["metadata"]["partial"] is True

    # Abandoned before reading a single chunk: recorded too.
    s2 = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    del s2
    gc.collect()
    evs = captured.llm()
    assert len(evs) == 2 and evs[1]["metadata"]["partial"] is True


def test_provider_500_records_error_and_reraises(
    captured: Captured, openai_client: Any, provider: FakeProvider
) -> None:
    provider.fail_status = 500
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert info.value.status_code == 500
    # The traceback still reaches into the openai client, where it was raised.
    frames = [tb.tb_frame.f_code.co_filename for tb in _walk(info.value.__traceback__)]
    assert any("openai" in f and "_base_client" in f for f in frames)
    assert len(provider.requests) == 1  # max_retries=0 and we never call twice
    ev = captured.one()
    assert ev["status"] == "error"
    assert ev["model"] == "gpt-4o"  # no response: the requested model
    assert "fake provider failure" in ev["error_message"]
    assert ev["metadata"]["error_type"] == "InternalServerError"
    assert ev["metadata"]["http_status"] == 500


def _walk(tb: Any) -> Any:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_provider_timeout_mock(
    captured: Captured, openai_client: Any, provider: FakeProvider
) -> None:
    provider.timeout = True
    with pytest.raises(openai.APITimeoutError):
        openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    ev = captured.one()
    assert ev["status"] == "error" and ev["metadata"]["error_type"] == "APITimeoutError"


def test_provider_timeout_real_socket(captured: Captured) -> None:
    slow = SlowHTTPProvider(delay=2.0)
    try:
        client = openai.OpenAI(api_key="k", base_url=slow.url + "/v1", max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-4o", messages=MSGS)
    finally:
        slow.close()
    ev = captured.one()
    assert ev["status"] == "error" and ev["latency_ms"] >= 300


def test_responses_create(captured: Captured, openai_client: Any, usage: Usage) -> None:
    r = openai_client.responses.create(model="gpt-4o", input="hi")
    assert r.output_text == "Hello!"
    ev = captured.one()
    assert ev["model"] == OPENAI_MODEL
    assert_usage(ev, usage)


def test_responses_stream_raw_and_helper(
    captured: Captured, openai_client: Any, usage: Usage
) -> None:
    events = list(openai_client.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    with openai_client.responses.stream(model="gpt-4o", input="hi") as s:
        assert s.get_final_response().output_text == "Hello!"
    evs = captured.llm()
    assert len(evs) == 2
    for ev in evs:
        assert_usage(ev, usage)
        assert ev["metadata"]["time_to_first_token_ms"] > 0


def test_embeddings(captured: Captured, openai_client: Any, provider: FakeProvider) -> None:
    r = openai_client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert r.data[0].embedding == [0.25, 0.5]
    ev = captured.one()
    assert ev["model"] == "text-embedding-3-small"
    assert ev["input_tokens"] == provider.usage.input and ev["output_tokens"] == 0


class Answer(BaseModel):
    answer: int


def test_parse(captured: Captured, openai_client: Any, usage: Usage) -> None:
    r = openai_client.chat.completions.parse(model="gpt-4o", messages=MSGS, response_format=Answer)
    assert r.choices[0].message.parsed == Answer(answer=4)
    assert_usage(captured.one(), usage)  # parse() bypasses create(): still exactly one event


def test_azure_client(captured: Captured, provider: FakeProvider, usage: Usage) -> None:
    client = openai.AzureOpenAI(
        api_key="k",
        api_version="2024-10-21",
        azure_endpoint="http://fake-azure",
        http_client=provider.sync_client(),
        max_retries=0,
    )
    client.chat.completions.create(model="my-gpt4o-deployment", messages=MSGS)
    assert "/openai/deployments/my-gpt4o-deployment/" in provider.requests[-1]["path"]
    ev = captured.one()
    assert ev["provider"] == "azure"
    assert_usage(ev, usage)


def test_untouched_without_client(openai_client: Any, provider: FakeProvider) -> None:
    """Before init(), calls pass straight through and nothing is injected."""
    list(openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    assert "stream_options" not in provider.requests[-1]["body"]


# -- async --------------------------------------------------------------------------


def test_async_chat_create_and_stream(
    captured: Captured, async_openai_client: Any, usage: Usage
) -> None:
    async def main() -> None:
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
        s = await async_openai_client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stream=True
        )
        assert isinstance(s, openai.AsyncStream)
        chunks = [c async for c in s]
        assert all(c.choices for c in chunks)
        async with async_openai_client.chat.completions.stream(model="gpt-4o", messages=MSGS) as h:
            final = await h.get_final_completion()
            assert final.choices[0].message.content == "Hello!"

    asyncio.run(main())
    evs = captured.llm()
    assert len(evs) == 3
    for ev in evs:
        assert_usage(ev, usage)
    assert "time_to_first_token_ms" in evs[1]["metadata"]


def test_async_stream_closed_early(captured: Captured, async_openai_client: Any) -> None:
    async def main() -> None:
        s = await async_openai_client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stream=True
        )
        async for _ in s:
            break
        await s.close()

    asyncio.run(main())
    assert captured.one()["metadata"]["partial"] is True


def test_async_error(captured: Captured, async_openai_client: Any, provider: FakeProvider) -> None:
    provider.fail_status = 500

    async def main() -> None:
        with pytest.raises(openai.InternalServerError):
            await async_openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)

    asyncio.run(main())
    assert captured.one()["status"] == "error"


def test_async_responses_embeddings_parse(
    captured: Captured, async_openai_client: Any, usage: Usage
) -> None:
    async def main() -> None:
        await async_openai_client.responses.create(model="gpt-4o", input="hi")
        s = await async_openai_client.responses.create(model="gpt-4o", input="hi", stream=True)
        [e async for e in s]
        await async_openai_client.embeddings.create(model="text-embedding-3-small", input="x")
        r = await async_openai_client.chat.completions.parse(
            model="gpt-4o", messages=MSGS, response_format=Answer
        )
        assert r.choices[0].message.parsed == Answer(answer=4)

    asyncio.run(main())
    evs = captured.llm()
    assert [e["model"] for e in evs] == [
        OPENAI_MODEL,
        OPENAI_MODEL,
        "text-embedding-3-small",
        OPENAI_MODEL,
    ]
    assert_usage(evs[1], usage)
    assert_usage(evs[3], usage)
