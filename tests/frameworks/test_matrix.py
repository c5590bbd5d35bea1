"""The compatibility matrix: each framework, driven as a user would, records exact usage.

Every case: one event per provider call (no duplicates), the provider's exact
token counts, the model the provider answered with, and the @track task
around it. The frameworks are in the dev extra; a missing one fails the
test (it is part of the suite, not optional there).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import ANTHROPIC_MODEL, OPENAI_MODEL, FakeProvider, HTTPFakeProvider, Usage

import agentwatch
from tests.sdk.conftest import Captured

OPENAI_USAGE = Usage(input=1200, output=80, cached=1000, reasoning=30)
ANTHROPIC_USAGE = Usage(input=300, output=40, cached=200, cache_write=100)


def check(captured: Captured, n: int, provider: str = "openai") -> list[dict[str, Any]]:
    """The n llm events, each exact, each inside the @track run "matrix"."""
    evs = captured.events()
    runs = [e for e in evs if e["kind"] == "task"]
    llms = [e for e in evs if e["kind"] == "llm"]
    assert len(llms) == n, llms
    assert len(runs) == 1 and runs[0]["task_name"] == "matrix"
    for ev in llms:
        assert ev["provider"] == provider and ev["status"] == "success"
        assert ev["task_name"] == "matrix" and ev["parent_id"] == runs[0]["id"]
        assert "usage_missing" not in ev["metadata"] and "partial" not in ev["metadata"]
        if provider == "openai":
            assert ev["model"] == OPENAI_MODEL
            assert (ev["input_tokens"], ev["output_tokens"]) == (1200, 80)
            assert (ev["cache_read_tokens"], ev["reasoning_tokens"]) == (1000, 30)
        else:
            assert ev["model"] == ANTHROPIC_MODEL
            assert (ev["input_tokens"], ev["output_tokens"]) == (600, 40)
            assert (ev["cache_read_tokens"], ev["cache_write_tokens"]) == (200, 100)
    return llms


@pytest.fixture(autouse=True)
def _usage(provider: FakeProvider) -> None:
    provider.usage = OPENAI_USAGE


# -- LangChain ------------------------------------------------------------------------


def _chat_openai(server: HTTPFakeProvider, **kw: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o", api_key="sk-test", base_url=server.url + "/v1", **kw)


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_langchain_openai(
    captured: Captured, server: HTTPFakeProvider, responses_api: bool
) -> None:
    llm = _chat_openai(server, use_responses_api=responses_api)

    @agentwatch.track(task="matrix")
    def run() -> list[str]:
        out = [llm.invoke("hi").text]
        out.append("".join(c.text for c in llm.stream("hi")))
        return out

    assert run() == ["Hello!", "Hello!"]
    streamed = check(captured, 2)[1]
    assert streamed["metadata"]["time_to_first_token_ms"] > 0


def test_langchain_openai_async_and_tools(captured: Captured, server: HTTPFakeProvider) -> None:
    from langchain_core.tools import tool

    @tool
    def double(x: int) -> int:
        """Double x."""
        return 2 * x

    llm = _chat_openai(server)
    with_tools = llm.bind_tools([double])

    @agentwatch.track(task="matrix")
    async def run() -> list[Any]:
        msg = await llm.ainvoke("hi")
        chunks = [c async for c in llm.astream("hi")]
        called = await with_tools.ainvoke("double 2")
        streamed_call = None
        async for c in with_tools.astream("double 2"):
            streamed_call = c if streamed_call is None else streamed_call + c
        return [msg.text, "".join(c.text for c in chunks), called, streamed_call]

    text, streamed, called, streamed_call = asyncio.run(run())
    assert text == streamed == "Hello!"
    assert called.tool_calls[0]["name"] == "double" and called.tool_calls[0]["args"] == {"x": 2}
    assert streamed_call.tool_calls[0]["args"] == {"x": 2}
    check(captured, 4)


def test_langchain_anthropic(captured: Captured, server: HTTPFakeProvider, provider: Any) -> None:
    from langchain_anthropic import ChatAnthropic

    provider.usage = ANTHROPIC_USAGE
    llm = ChatAnthropic(model="claude-sonnet-4-20250514", api_key="sk-test", base_url=server.url)

    @agentwatch.track(task="matrix")
    async def run() -> list[str]:
        out = [llm.invoke("hi").text, "".join(c.text for c in llm.stream("hi"))]
        out.append((await llm.ainvoke("hi")).text)
        out.append("".join([c.text async for c in llm.astream("hi")]))
        return out

    assert asyncio.run(run()) == ["Hello!"] * 4
    check(captured, 4, "anthropic")


# -- Pydantic AI ----------------------------------------------------------------------


def test_pydantic_ai(captured: Captured, server: HTTPFakeProvider) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(
        "gpt-4o", provider=OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test")
    )
    agent = Agent(model)

    @agentwatch.track(task="matrix")
    async def run() -> list[str]:
        out = [(await agent.run("hi")).output]
        async with agent.run_stream("hi") as result:
            out.append(await result.get_output())
        return out

    assert asyncio.run(run()) == ["Hello!", "Hello!"]
    assert check(captured, 2)[1]["metadata"]["time_to_first_token_ms"] > 0


# -- OpenAI Agents SDK ----------------------------------------------------------------


def test_openai_agents(captured: Captured, server: HTTPFakeProvider) -> None:
    import openai
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner

    @agentwatch.track(task="matrix")
    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test")
        agent = Agent(name="helper", model=OpenAIResponsesModel("gpt-4o", client))
        config = RunConfig(tracing_disabled=True)
        out = [(await Runner.run(agent, "hi", run_config=config)).final_output]
        streamed = Runner.run_streamed(agent, "hi", run_config=config)
        async for _ in streamed.stream_events():
            pass
        out.append(streamed.final_output)
        return out

    assert asyncio.run(run()) == ["Hello!", "Hello!"]
    assert check(captured, 2)[1]["metadata"]["time_to_first_token_ms"] > 0


# -- LlamaIndex -----------------------------------------------------------------------


def test_llama_index_openai(captured: Captured, server: HTTPFakeProvider) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI

    llm = OpenAI(model="gpt-4o", api_key="sk-test", api_base=server.url + "/v1")

    @agentwatch.track(task="matrix")
    async def run() -> list[str]:
        out = [llm.complete("hi").text]
        chunks = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
        out.append(str(chunks[-1].message.content))
        out.append((await llm.acomplete("hi")).text)
        return out

    assert asyncio.run(run()) == ["Hello!"] * 3
    check(captured, 3)


# -- LiteLLM --------------------------------------------------------------------------


def test_litellm_openai(captured: Captured, server: HTTPFakeProvider) -> None:
    import litellm

    kw: dict[str, Any] = {
        "model": "openai/gpt-4o",
        "api_base": server.url + "/v1",
        "api_key": "sk-test",
        "messages": [{"role": "user", "content": "hi"}],
    }

    @agentwatch.track(task="matrix")
    async def run() -> list[str]:
        out = [litellm.completion(**kw).choices[0].message.content]
        chunks = litellm.completion(stream=True, **kw)
        out.append("".join(c.choices[0].delta.content or "" for c in chunks))
        out.append((await litellm.acompletion(**kw)).choices[0].message.content)
        return out

    assert asyncio.run(run()) == ["Hello!"] * 3
    check(captured, 3)
