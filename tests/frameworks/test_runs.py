"""Framework runs as task runs: with no @track around, the framework's hooks group its calls.

agentwatch.init() registers the OpenAI Agents SDK trace processor and the
LangChain callback handler (integrations/agents_sdk.py, langchain.py) when
those packages are imported; nothing else is set up here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import HTTPFakeProvider

import agentwatch
from agentwatch.sdk.context import get_run
from tests.sdk.conftest import Captured


def grouped(captured: Captured) -> list[tuple[str, list[dict[str, Any]]]]:
    """(task run name, its llm events) for every run, in order; asserts nothing is loose."""
    evs = captured.events()
    runs = [e for e in evs if e["kind"] == "task"]
    llms = [e for e in evs if e["kind"] == "llm"]
    out = [(r["task_name"], [e for e in llms if e["parent_id"] == r["id"]]) for r in runs]
    for r, (_, calls) in zip(runs, out, strict=True):
        assert r["parent_id"] is None and r["status"] == "success"
        for c in calls:
            assert c["trace_id"] == r["id"] and c["task_name"] == r["task_name"]
    return out


@pytest.fixture
def agents_tracing(captured: Captured) -> Any:
    """The SDK's trace provider with only our processor (its default one exports to OpenAI)."""
    import agents  # imported after init(): the processor is registered on import
    from agents.tracing import set_trace_processors

    from agentwatch.integrations import agents_sdk

    assert agents_sdk._registered, "init() did not register the processor"
    set_trace_processors(list(agents_sdk._registered))
    return agents


def test_agents_runs_without_track(
    captured: Captured, server: HTTPFakeProvider, agents_tracing: Any
) -> None:
    import openai
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner

    async def app() -> None:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test")
        agent = Agent(name="helper", model=OpenAIResponsesModel("gpt-4o", client))
        config = RunConfig(workflow_name="triage")
        await Runner.run(agent, "hi", run_config=config)
        streamed = Runner.run_streamed(agent, "hi", run_config=config)
        async for _ in streamed.stream_events():
            pass
        assert get_run() is None  # nothing left current in the app's context

    asyncio.run(app())
    runs = grouped(captured)
    assert [(name, len(calls)) for name, calls in runs] == [("triage", 1), ("triage", 1)]
    assert all(calls[0]["input_tokens"] == 100 for _, calls in runs)


def test_agents_run_inside_track_opens_no_second_run(
    captured: Captured, server: HTTPFakeProvider, agents_tracing: Any
) -> None:
    import openai
    from agents import Agent, OpenAIResponsesModel, Runner

    @agentwatch.track(task="mine")
    async def app() -> None:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test")
        await Runner.run(Agent(name="a", model=OpenAIResponsesModel("gpt-4o", client)), "hi")

    asyncio.run(app())
    assert [(name, len(calls)) for name, calls in grouped(captured)] == [("mine", 1)]


def test_langchain_chains_without_track(captured: Captured, server: HTTPFakeProvider) -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o", api_key="sk-test", base_url=server.url + "/v1")
    chain = (ChatPromptTemplate.from_template("say {x}") | llm).with_config(run_name="greet")

    async def app() -> None:
        await chain.ainvoke({"x": "hi"})
        async for _ in chain.astream({"x": "hi"}):
            pass
        # The async chain ended in another context (LangChain ends it in a
        # shielded task): a call made after it is not put in the ended run.
        llm.invoke("alone")

    chain.invoke({"x": "hi"})
    asyncio.run(app())
    runs = grouped(captured)
    assert [(name, len(calls)) for name, calls in runs] == [("greet", 1)] * 3
    loose = [e for e in captured.llm() if e["parent_id"] is None]
    assert len(loose) == 1 and loose[0]["task_name"] == "test-task"  # the client's default


def test_langchain_chain_inside_track(captured: Captured, server: HTTPFakeProvider) -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o", api_key="sk-test", base_url=server.url + "/v1")
    chain = ChatPromptTemplate.from_template("say {x}") | llm

    @agentwatch.track(task="mine")
    def app() -> None:
        chain.invoke({"x": "hi"})
        chain.invoke({"x": "again"})

    app()
    assert [(name, len(calls)) for name, calls in grouped(captured)] == [("mine", 2)]


def test_init_imports_no_framework_and_registers_on_import() -> None:
    from tests.sdk.conftest import run_py

    p = run_py(
        """
        import sys
        import agentwatch
        agentwatch.init(server_url="http://127.0.0.1:9", exporter=lambda evs: None)
        assert not {"agents", "langchain_core", "openai", "anthropic"} & set(sys.modules)
        import agents, langchain_core.tracers.context as ctx
        from agentwatch.integrations import agents_sdk, langchain
        assert len(agents_sdk._registered) == 1 and len(langchain._registered) == 1
        assert any(var is langchain._registered[0] for var, *_ in ctx._configure_hooks)
        print("ok")
        """
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"
