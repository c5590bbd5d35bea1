"""What agentwatch adds per call under each framework; the framework's own cost is the baseline.

Prints one JSON object. Run: ``python benchmarks/framework_overhead.py [--quick]``.

Each framework is driven as an app would (LangChain ``invoke``/``stream``,
Pydantic AI ``run``, the Agents SDK ``Runner.run``, LlamaIndex ``complete``,
LiteLLM ``completion``), its openai / anthropic client on an httpx2
MockTransport that answers from memory (tests/sdk/fakes.py), so a call is
pure framework + client work. Rounds alternate unpatched (``uninstrument``)
and patched (``instrument``), to cancel drift; the figure per framework is
the difference of the per-call medians, and the ratio to the unpatched one,
in wall time and in the caller thread's CPU time (which other processes on
a shared machine do not inflate), and the Python function calls the patch
adds per call, counted by cProfile (which no clock drift touches).
Events go to an exporter that discards them (no network).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sdk"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from _common import machine
from fakes import FakeProvider

import agentwatch

MSGS: list[Any] = [{"role": "user", "content": "hi"}]


def _openai(provider: FakeProvider, is_async: bool = False) -> Any:
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    http = provider.async_client() if is_async else provider.sync_client()
    return cls(api_key="sk-x", base_url="http://fake/v1", http_client=http, max_retries=0)


def cases(provider: FakeProvider, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Any]]:
    """One call per framework path, each returning the model's text."""
    import litellm
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI
    from llama_index.llms.openai import OpenAI as LlamaOpenAI
    from pydantic_ai import Agent as PydanticAgent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    lc = ChatOpenAI(
        model="gpt-4o",
        api_key="sk-x",
        base_url="http://fake/v1",
        http_client=provider.sync_client(),
        max_retries=0,
    )
    import anthropic

    lc_anthropic = ChatAnthropic(model="claude-sonnet-4-20250514", api_key="sk-x")
    lc_anthropic._client = anthropic.Anthropic(
        api_key="sk-x", base_url="http://fake", http_client=provider.sync_client(), max_retries=0
    )
    pai = PydanticAgent(
        OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=_openai(provider, True)))
    )
    agent = Agent(name="a", model=OpenAIResponsesModel("gpt-4o", _openai(provider, True)))
    no_tracing = RunConfig(tracing_disabled=True)
    llama = LlamaOpenAI(model="gpt-4o", api_key="sk-x", max_retries=0)
    llama._client = _openai(provider)  # the client it would build, on the in-memory transport
    lite_client = _openai(provider)

    def lc_stream() -> str:
        return "".join(str(c.content) for c in lc.stream("hi"))

    def litellm_call() -> str:
        r = litellm.completion(model="openai/gpt-4o", messages=MSGS, client=lite_client)
        return str(r.choices[0].message.content)

    return {
        "langchain_openai.invoke": lambda: lc.invoke("hi").content,
        "langchain_openai.stream": lc_stream,
        "langchain_anthropic.invoke": lambda: lc_anthropic.invoke("hi").content,
        "pydantic_ai.run": lambda: loop.run_until_complete(pai.run("hi")).output,
        "openai_agents.Runner.run": lambda: (
            loop.run_until_complete(Runner.run(agent, "hi", run_config=no_tracing)).final_output
        ),
        "llama_index.complete": lambda: llama.complete("hi").text,
        "litellm.completion": litellm_call,
    }


def per_call_us(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this thread per call, in microseconds.

    The CPU time (time.thread_time_ns) is what the caller's thread itself
    spends: other processes on a shared machine do not inflate it, and the
    sender thread's work is not in it (it is not on the caller's path).
    """
    wall, cpu = [], []
    for _ in range(n):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        fn()
        wall.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
    return statistics.median(wall) / 1000, statistics.median(cpu) / 1000


def python_calls(fn: Callable[[], Any], n: int) -> float:
    """Python function calls per call of `fn`, counted by cProfile (no clock in it)."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    return pstats.Stats(prof).total_calls / n  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few calls: checks the script runs")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--calls", type=int, default=100, help="calls per round")
    a = ap.parse_args()
    rounds, calls = (2, 10) if a.quick else (a.rounds, a.calls)

    recorded = [0]

    def count(events: list[Any]) -> None:
        recorded[0] += len(events)

    client = agentwatch.init(server_url="http://127.0.0.1:9", agent="bench", exporter=count)
    provider = FakeProvider()
    loop = asyncio.new_event_loop()
    results: dict[str, Any] = {}
    for name, fn in cases(provider, loop).items():
        recorded[0] = 0
        assert fn() == "Hello!", name  # warm (imports, caches) and check the answer
        plain: list[tuple[float, float]] = []
        patched: list[tuple[float, float]] = []
        for _ in range(rounds):
            agentwatch.uninstrument()
            plain.append(per_call_us(fn, calls))
            agentwatch.instrument(client)
            patched.append(per_call_us(fn, calls))
        # What the patch adds, counted rather than timed: wall and CPU time on a
        # shared machine drift by more than the difference being measured.
        agentwatch.uninstrument()
        calls_plain = python_calls(fn, calls)
        agentwatch.instrument(client)
        calls_patched = python_calls(fn, calls)
        client.flush(10)
        mu = statistics.median(w for w, _ in plain)
        mp = statistics.median(w for w, _ in patched)
        cu = statistics.median(c for _, c in plain)
        cp = statistics.median(c for _, c in patched)
        results[name] = {
            # one event per patched call, plus the warm-up call: none lost, none doubled
            "events": recorded[0] - 1,
            "patched_calls": rounds * calls + calls,
            "python_calls_unpatched": round(calls_plain, 1),
            "python_calls_added": round(calls_patched - calls_plain, 1),
            "unpatched_median_us": round(mu, 1),
            "patched_median_us": round(mp, 1),
            "added_us": round(mp - mu, 1),
            "added_pct": round(100 * (mp - mu) / mu, 2),
            "cpu_unpatched_median_us": round(cu, 1),
            "cpu_patched_median_us": round(cp, 1),
            "cpu_added_us": round(cp - cu, 1),
            "cpu_added_pct": round(100 * (cp - cu) / cu, 2),
        }
    loop.close()
    print(
        json.dumps(
            {
                "benchmark": "framework_overhead",
                "machine": machine(),
                "rounds": rounds,
                "calls_per_round": calls,
                "frameworks": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
