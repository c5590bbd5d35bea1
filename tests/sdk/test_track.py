"""@track runs: sync/async functions and generators, nesting, attribution, errors."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest

import agentwatch
from tests.sdk.conftest import Captured

MSGS: list[Any] = [{"role": "user", "content": "hi"}]


def by_kind(evs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [e for e in evs if e["kind"] == "task"], [e for e in evs if e["kind"] == "llm"]


def test_sync_function_run_and_inherited_llm_call(captured: Captured, openai_client: Any) -> None:
    @agentwatch.track(task="summarize", agent="research-bot")
    def summarize(text: str) -> str:
        r = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
        return str(r.choices[0].message.content) + text

    assert summarize("!") == "Hello!!"
    assert summarize.__name__ == "summarize"
    tasks, llms = by_kind(captured.events())
    (run,) = tasks
    (call,) = llms
    assert run["task_name"] == "summarize" and run["agent_name"] == "research-bot"
    assert run["model"] == "" and run["status"] == "success" and run["latency_ms"] > 0
    assert run["trace_id"] == run["id"] and run["parent_id"] is None
    assert call["task_name"] == "summarize" and call["agent_name"] == "research-bot"
    assert call["trace_id"] == run["id"] and call["parent_id"] == run["id"]


def test_decorated_before_init_runs_untracked_then_tracked(openai_client: Any) -> None:
    @agentwatch.track(task="early")
    def f() -> int:
        return 1

    assert f() == 1  # no client yet: just runs
    sink: list[dict[str, Any]] = []
    agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink.extend)
    assert f() == 1
    agentwatch.flush()
    assert [e["task_name"] for e in sink] == ["early"]


def test_bare_decorator_uses_function_name(captured: Captured) -> None:
    @agentwatch.track
    def crunch() -> None:
        pass

    crunch()
    (run,) = captured.events("task")
    assert run["task_name"] == "crunch" and run["agent_name"] == "test-agent"


def test_error_is_recorded_and_reraised_unchanged(captured: Captured) -> None:
    class Boom(Exception):
        pass

    err = Boom("kaput")

    @agentwatch.track(task="fails")
    def fails() -> None:
        raise err

    with pytest.raises(Boom) as info:
        fails()
    assert info.value is err
    assert info.traceback[-1].name == "fails"  # traceback still ends where it was raised
    (run,) = captured.events("task")
    assert run["status"] == "error" and run["error_message"] == "kaput"
    assert run["metadata"]["error_type"] == "Boom"


def test_nested_runs_inherit_and_nest(captured: Captured, anthropic_client: Any) -> None:
    @agentwatch.track(task="inner")
    def inner() -> None:
        anthropic_client.messages.create(model="claude-sonnet-4-0", max_tokens=5, messages=MSGS)

    @agentwatch.track(task="outer", agent="boss")
    def outer() -> None:
        anthropic_client.messages.create(model="claude-sonnet-4-0", max_tokens=5, messages=MSGS)
        inner()

    outer()
    tasks, llms = by_kind(captured.events())
    t = {e["task_name"]: e for e in tasks}
    assert t["inner"]["parent_id"] == t["outer"]["id"]
    assert t["inner"]["trace_id"] == t["outer"]["id"] == t["outer"]["trace_id"]
    assert t["inner"]["agent_name"] == "boss"  # inherited from the enclosing run
    assert [c["parent_id"] for c in llms] == [t["outer"]["id"], t["inner"]["id"]]
    assert [c["task_name"] for c in llms] == ["outer", "inner"]
    assert {c["trace_id"] for c in llms} == {t["outer"]["id"]}


def test_async_run_across_await_and_tasks(captured: Captured, async_openai_client: Any) -> None:
    async def one() -> None:
        await asyncio.sleep(0)
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)

    @agentwatch.track(task="batch", agent="pipeline")
    async def process_batch() -> str:
        await asyncio.sleep(0.01)
        await asyncio.gather(*(one() for _ in range(3)))  # tasks created inside the run
        t = asyncio.create_task(one())
        await t
        return "done"

    async def main() -> None:
        # Two concurrent runs must not see each other's context.
        assert await asyncio.gather(process_batch(), process_batch()) == ["done", "done"]

    asyncio.run(main())
    tasks, llms = by_kind(captured.events())
    assert len(tasks) == 2 and len(llms) == 8
    run_ids = {t["id"] for t in tasks}
    for ids in run_ids:
        assert sum(1 for c in llms if c["parent_id"] == ids) == 4
    assert all(c["task_name"] == "batch" and c["agent_name"] == "pipeline" for c in llms)


def test_sync_generator_run(captured: Captured, openai_client: Any) -> None:
    seen_outside: list[Any] = []

    @agentwatch.track(task="gen")
    def gen(n: int) -> Generator[int, int | None, None]:
        for i in range(n):
            openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
            x = yield i
            if x is not None:
                yield x * 10

    g = gen(3)
    assert next(g) == 0
    # Between items the consumer's code is not inside the run.
    from agentwatch.sdk.context import get_run

    seen_outside.append(get_run())
    assert g.send(5) == 50
    assert list(g) == [1, 2]
    assert seen_outside == [None]
    tasks, llms = by_kind(captured.events())
    (run,) = tasks
    assert run["status"] == "success"
    assert len(llms) == 3 and all(c["parent_id"] == run["id"] for c in llms)


def test_sync_generator_closed_early_and_error(captured: Captured) -> None:
    @agentwatch.track(task="g1")
    def g1() -> Generator[int, None, None]:
        yield 1
        yield 2

    @agentwatch.track(task="g2")
    def g2() -> Iterator[int]:
        yield 1
        raise ValueError("bad item")

    it = g1()
    next(it)
    it.close()
    with pytest.raises(ValueError, match="bad item"):
        list(g2())
    runs = {e["task_name"]: e for e in captured.events("task")}
    assert runs["g1"]["status"] == "success"
    assert runs["g2"]["status"] == "error" and runs["g2"]["error_message"] == "bad item"


def test_async_generator_run(captured: Captured, async_anthropic_client: Any) -> None:
    @agentwatch.track(task="agen")
    async def agen() -> AsyncIterator[str]:
        for word in ("a", "b"):
            await async_anthropic_client.messages.create(
                model="claude-sonnet-4-0", max_tokens=5, messages=MSGS
            )
            yield word

    @agentwatch.track(task="agen-bad")
    async def agen_bad() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("stream broke")

    async def main() -> None:
        assert [w async for w in agen()] == ["a", "b"]
        with pytest.raises(RuntimeError):
            async for _ in agen_bad():
                pass

    asyncio.run(main())
    tasks, llms = by_kind(captured.events())
    runs = {t["task_name"]: t for t in tasks}
    assert runs["agen"]["status"] == "success" and runs["agen-bad"]["status"] == "error"
    assert [c["parent_id"] for c in llms] == [runs["agen"]["id"]] * 2


def test_threads_need_copied_context(captured: Captured) -> None:
    @agentwatch.track(task="threaded")
    def run() -> None:
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(agentwatch.log_event,), kwargs={"model": "m"})
        t.start()
        t.join()

    run()
    evs = captured.events()
    (task,) = [e for e in evs if e["kind"] == "task"]
    (llm,) = [e for e in evs if e["kind"] == "llm"]
    assert llm["parent_id"] == task["id"] and llm["task_name"] == "threaded"


def test_instance_track_and_log_event() -> None:
    sink: list[dict[str, Any]] = []
    watch = agentwatch.AgentWatch(
        server_url="http://127.0.0.1:9", agent="my-agent", task="my-task", exporter=sink.extend
    )

    @watch.track(task="analyze")
    def analyze(data: int) -> int:
        watch.log_event(model="gpt-4o", input_tokens=100, output_tokens=50, latency_ms=500.0)
        return data * 2

    assert analyze(2) == 4
    watch.log_event(task_name="query", model="gpt-4o", input_tokens=1, status="success")
    assert watch.flush(5)
    llm_in_run, run, query = sink
    assert run["kind"] == "task" and run["task_name"] == "analyze"
    assert llm_in_run["task_name"] == "analyze" and llm_in_run["parent_id"] == run["id"]
    assert query["task_name"] == "query" and query["agent_name"] == "my-agent"
    assert query["parent_id"] is None
    watch.shutdown()
