"""Auto-patched Anthropic calls, through the real anthropic client against the fake provider."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import pytest
from fakes import ANTHROPIC_MODEL, FakeProvider, Usage

from tests.sdk.conftest import Captured

MSGS: list[Any] = [{"role": "user", "content": "hi"}]
KW: dict[str, Any] = {"model": "claude-sonnet-4-0", "max_tokens": 100, "messages": MSGS}


@pytest.fixture
def usage(provider: FakeProvider) -> Usage:
    # Anthropic reports uncached input apart from the cache reads and writes.
    provider.usage = Usage(input=40, output=90, cached=1000, cache_write=200)
    return provider.usage


def assert_usage(ev: dict[str, Any], u: Usage) -> None:
    assert ev["input_tokens"] == u.input + u.cached + u.cache_write == 1240
    assert ev["cache_read_tokens"] == u.cached
    assert ev["cache_write_tokens"] == u.cache_write
    assert ev["output_tokens"] == u.output  # the last cumulative message_delta, not a sum
    assert ev["provider"] == "anthropic" and ev["model"] == ANTHROPIC_MODEL


def test_create(captured: Captured, anthropic_client: Any, usage: Usage) -> None:
    m = anthropic_client.messages.create(**KW)
    assert m.content[0].text == "Hello!"
    ev = captured.one()
    assert_usage(ev, usage)
    assert ev["status"] == "success" and "time_to_first_token_ms" not in ev["metadata"]


def test_create_stream_iteration(captured: Captured, anthropic_client: Any, usage: Usage) -> None:
    s = anthropic_client.messages.create(**KW, stream=True)
    assert isinstance(s, anthropic.Stream)
    types = [e.type for e in s]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    ev = captured.one()
    assert_usage(ev, usage)
    assert ev["metadata"]["time_to_first_token_ms"] > 0


def test_stream_text_stream(captured: Captured, anthropic_client: Any, usage: Usage) -> None:
    with anthropic_client.messages.stream(**KW) as s:
        assert "".join(s.text_stream) == "Hello!"
    assert_usage(captured.one(), usage)


def test_stream_get_final_message(captured: Captured, anthropic_client: Any, usage: Usage) -> None:
    with anthropic_client.messages.stream(**KW) as s:
        final = s.get_final_message()
    assert final.usage.output_tokens == usage.output
    assert_usage(captured.one(), usage)


def test_stream_until_done_and_iteration(
    captured: Captured, anthropic_client: Any, usage: Usage
) -> None:
    with anthropic_client.messages.stream(**KW) as s:
        s.until_done()
    with anthropic_client.messages.stream(**KW) as s:
        kinds = {e.type for e in s}
    assert "text" in kinds  # the helper's derived events still flow
    evs = captured.llm()
    assert len(evs) == 2
    for ev in evs:
        assert_usage(ev, usage)


def test_stream_closed_early_is_partial(captured: Captured, anthropic_client: Any) -> None:
    with anthropic_client.messages.stream(**KW) as s:
        for _ in s:
            break
    ev = captured.one()
    assert ev["metadata"]["partial"] is True
    # message_start was seen: input is known even though the stream was cut.
    assert ev["input_tokens"] > 0 and "usage_missing" not in ev["metadata"]


def test_stream_entered_then_abandoned(captured: Captured, anthropic_client: Any) -> None:
    manager = anthropic_client.messages.stream(**KW)
    s = manager.__enter__()
    del s, manager
    gc.collect()
    ev = captured.one()
    assert ev["metadata"]["partial"] is True and ev["metadata"]["usage_missing"] is True


def test_stream_not_entered_makes_no_request(
    captured: Captured, anthropic_client: Any, provider: FakeProvider
) -> None:
    anthropic_client.messages.stream(**KW)
    gc.collect()
    assert provider.requests == [] and captured.llm() == []


def test_errors(captured: Captured, anthropic_client: Any, provider: FakeProvider) -> None:
    provider.fail_status = 500
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client.messages.create(**KW)
    with pytest.raises(anthropic.InternalServerError), anthropic_client.messages.stream(**KW):
        pass
    provider.fail_status = None
    provider.timeout = True
    with pytest.raises(anthropic.APITimeoutError):
        anthropic_client.messages.create(**KW)
    evs = captured.llm()
    assert [e["status"] for e in evs] == ["error"] * 3
    assert [e["metadata"]["error_type"] for e in evs] == [
        "InternalServerError",
        "InternalServerError",
        "APITimeoutError",
    ]
    assert evs[0]["model"] == "claude-sonnet-4-0"  # requested model when no response came
    assert len(provider.requests) == 3


def test_async_create_and_streams(
    captured: Captured, async_anthropic_client: Any, usage: Usage
) -> None:
    async def main() -> None:
        await async_anthropic_client.messages.create(**KW)
        s = await async_anthropic_client.messages.create(**KW, stream=True)
        [e async for e in s]
        async with async_anthropic_client.messages.stream(**KW) as st:
            assert "".join([t async for t in st.text_stream]) == "Hello!"
        async with async_anthropic_client.messages.stream(**KW) as st:
            await st.get_final_message()
        async with async_anthropic_client.messages.stream(**KW) as st:
            await st.until_done()

    asyncio.run(main())
    evs = captured.llm()
    assert len(evs) == 5
    for ev in evs:
        assert_usage(ev, usage)


def test_async_stream_closed_early_and_error(
    captured: Captured, async_anthropic_client: Any, provider: FakeProvider
) -> None:
    async def main() -> None:
        async with async_anthropic_client.messages.stream(**KW) as st:
            async for _ in st:
                break
        provider.fail_status = 500
        with pytest.raises(anthropic.InternalServerError):
            async with async_anthropic_client.messages.stream(**KW):
                pass

    asyncio.run(main())
    evs = captured.llm()
    assert evs[0]["metadata"]["partial"] is True
    assert evs[1]["status"] == "error"
