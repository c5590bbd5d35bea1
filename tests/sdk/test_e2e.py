"""End to end: auto-patched provider calls -> SDK -> real server -> events and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import openai
import pytest
from fakes import ANTHROPIC_MODEL, OPENAI_MODEL, FakeProvider, Usage

import agentwatch

MSGS: list[Any] = [{"role": "user", "content": "hi"}]


def get(url: str, path: str, **params: Any) -> Any:
    r = httpx.get(url + path, params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def test_auto_patched_calls_reach_events_and_metrics(server: Any) -> None:
    fp = FakeProvider(usage=Usage(input=1000, output=100, cached=400))
    oc = openai.OpenAI(
        api_key="k", base_url="http://f/v1", http_client=fp.sync_client(), max_retries=0
    )
    ac = anthropic.Anthropic(
        api_key="k", base_url="http://f", http_client=fp.sync_client(), max_retries=0
    )
    aoc = openai.AsyncOpenAI(
        api_key="k", base_url="http://f/v1", http_client=fp.async_client(), max_retries=0
    )

    agentwatch.init(server_url=server.url, agent="research-bot", task="default-task")

    @agentwatch.track(task="summarize")
    def summarize() -> None:
        oc.chat.completions.create(model="gpt-4o", messages=MSGS)
        with ac.messages.stream(model="claude-sonnet-4-0", max_tokens=9, messages=MSGS) as s:
            s.get_final_message()

    @agentwatch.track(task="research", agent="deep-bot")
    async def research() -> None:
        s = await aoc.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
        async for _ in s:
            pass

    summarize()
    asyncio.run(research())
    oc.chat.completions.create(model="gpt-4o", messages=MSGS)  # outside any run
    fp.fail_status = 500
    with pytest.raises(openai.InternalServerError):
        oc.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert agentwatch.flush(30)

    llm = get(server.url, "/api/events", kind="llm", limit=100)["events"]
    tasks = get(server.url, "/api/events", kind="task", limit=100)["events"]
    assert len(llm) == 5 and len(tasks) == 2
    run = {t["task_name"]: t for t in tasks}
    assert run["summarize"]["agent_name"] == "research-bot"
    assert run["research"]["agent_name"] == "deep-bot"

    in_summarize = get(server.url, "/api/events", parent_id=run["summarize"]["id"])["events"]
    assert sorted(e["provider"] for e in in_summarize) == ["anthropic", "openai"]
    claude = next(e for e in in_summarize if e["provider"] == "anthropic")
    assert claude["model"] == ANTHROPIC_MODEL
    assert claude["input_tokens"] == 1000 + 400  # Anthropic's cache reads added to input
    assert claude["cache_read_tokens"] == 400 and claude["output_tokens"] == 100
    assert claude["metadata"]["time_to_first_token_ms"] > 0
    gpt = next(e for e in in_summarize if e["provider"] == "openai")
    assert gpt["model"] == OPENAI_MODEL and gpt["input_tokens"] == 1000
    assert gpt["cache_read_tokens"] == 400
    # The server priced it: 600 uncached + 400 cached input, 100 output at gpt-4o rates.
    assert gpt["cost_usd"] == pytest.approx((600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6)

    in_research = get(server.url, "/api/events", trace_id=run["research"]["id"], kind="llm")
    (streamed,) = in_research["events"]
    assert streamed["task_name"] == "research" and streamed["input_tokens"] == 1000
    assert "partial" not in streamed["metadata"]

    failed = get(server.url, "/api/events", status="error")["events"]
    assert len(failed) == 1 and failed[0]["task_name"] == "default-task"
    assert failed[0]["metadata"]["error_type"] == "InternalServerError"

    summary = get(server.url, "/api/metrics/summary", period="24h")
    assert summary["total_requests"] == 5  # LLM calls only, not the two task runs
    assert summary["input_tokens"] == 4 * 1000 + 400  # the failed call has no tokens
    assert summary["total_cost"] == pytest.approx(sum(e["cost_usd"] or 0 for e in llm))

    rows = {
        r["name"]: r
        for r in get(server.url, "/api/metrics/breakdown", group_by="task_name", period="24h")
    }
    assert rows["summarize"]["requests"] == 2
    assert rows["summarize"]["total_cost"] == pytest.approx(
        sum(e["cost_usd"] for e in in_summarize)
    )
    assert rows["research"]["requests"] == 1
    assert rows["default-task"]["requests"] == 2 and rows["default-task"]["error_rate"] > 0
