"""The run tree across export requests: children first, spans that are not stored in between.

An SDK exports a span when it ends, so a trace's children usually arrive in
earlier requests than their parents. Each case here sends the same trace
split differently and checks the parent links the waterfall will follow.
"""

from __future__ import annotations

from typing import Any

from build import agent, events, llm, new_span, new_trace, post, request, span

from agentwatch.otlp.mapping import event_id


def eid(trace: str, span_id: str) -> str:
    return event_id(bytes.fromhex(trace), bytes.fromhex(span_id))


def trace_of_four() -> tuple[str, dict[str, dict[str, Any]]]:
    """HTTP server span -> agent -> custom step -> LLM call, and a tool under the agent."""
    t = new_trace()
    ids = {k: new_span() for k in ("http", "agent", "step", "llm", "tool")}
    spans = {
        "http": span(t, ids["http"], name="POST /chat", start_ms=0, dur_ms=100),
        "agent": span(t, ids["agent"], ids["http"], "invoke_agent planner", agent(), 5, 90),
        "step": span(t, ids["step"], ids["agent"], "research", {"custom": 1}, 10, 50),
        "llm": span(t, ids["llm"], ids["step"], "chat gpt-4o", llm(), 15, 40),
        "tool": span(
            t,
            ids["tool"],
            ids["agent"],
            "execute_tool search",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
            70,
            10,
        ),
    }
    return t, spans


def send(server: Any, *spans: dict[str, Any]) -> None:
    r = post(server.url, request(*spans))
    assert r.status_code == 200 and r.json() == {}, r.text


def stored(server: Any, t: str) -> dict[str, dict[str, Any]]:
    return {e["metadata"]["otel.span_name"]: e for e in events(server.url, trace_id=t)}


def test_one_request_links_through_dropped_spans(server: Any) -> None:
    t, s = trace_of_four()
    send(server, *s.values())
    evs = stored(server, t)
    assert set(evs) == {"invoke_agent planner", "chat gpt-4o", "execute_tool search"}
    run = evs["invoke_agent planner"]
    assert run["parent_id"] is None  # its parent, the HTTP span, is not stored
    assert evs["chat gpt-4o"]["parent_id"] == run["id"]  # through the "research" step
    assert evs["execute_tool search"]["parent_id"] == run["id"]
    # Task name: the root span's name, agent inherited from the agent span.
    assert {e["task_name"] for e in evs.values()} == {"POST /chat"}
    assert {e["agent_name"] for e in evs.values()} == {"planner"}


def test_children_first_across_requests(server: Any) -> None:
    """As a BatchSpanProcessor sends a long run: each span in the request after it ended."""
    t, s = trace_of_four()
    send(server, s["llm"])
    send(server, s["step"])
    send(server, s["tool"], s["agent"])
    send(server, s["http"])
    evs = stored(server, t)
    run = evs["invoke_agent planner"]
    # The LLM call was stored linked to its parent, not seen yet. That parent
    # turned out to be a custom span: it was kept, as a step, so the link holds
    # and the run's waterfall still reaches the call.
    step = evs["research"]
    assert step["kind"] == "task" and step["metadata"]["otel.kept_for_tree"] is True
    assert evs["chat gpt-4o"]["parent_id"] == step["id"] == eid(t, s["step"]["spanId"])
    assert step["parent_id"] == run["id"]
    assert evs["execute_tool search"]["parent_id"] == run["id"]
    # The run's own link points at the HTTP span, which is never stored (a root).
    assert run["parent_id"] == eid(t, s["http"]["spanId"])
    assert "POST /chat" not in evs
    # Names inherited from ancestors that came later fall back: no root known
    # yet when the LLM call came, so its task is the service's name.
    assert evs["chat gpt-4o"]["task_name"] == "test-svc"
    assert evs["chat gpt-4o"]["agent_name"] == "test-svc"
    # Retried exports (all of them, in any order) change nothing.
    for part in ((s["http"],), (s["step"],), (s["llm"],), (s["tool"], s["agent"])):
        send(server, *part)
    assert stored(server, t) == evs


def test_parent_seen_before_a_late_child(server: Any) -> None:
    """A child that ends after its (dropped) parent links through what was remembered."""
    t, s = trace_of_four()
    send(server, s["step"], s["agent"], s["http"])
    send(server, s["llm"])
    evs = stored(server, t)
    assert "research" not in evs  # dropped, and remembered
    assert evs["chat gpt-4o"]["parent_id"] == evs["invoke_agent planner"]["id"]
    assert evs["chat gpt-4o"]["task_name"] == "POST /chat"
    assert evs["chat gpt-4o"]["agent_name"] == "planner"


def test_cycles_and_self_parents_do_not_hang(server: Any) -> None:
    t = new_trace()
    a, b, c = new_span(), new_span(), new_span()
    send(
        server,
        span(t, a, b, "a", llm()),
        span(t, b, a, "b", {"custom": 1}),  # a <-> b
        span(t, c, c, "c", llm()),  # its own parent: a root
    )
    evs = stored(server, t)
    assert evs["c"]["parent_id"] is None
    assert set(evs) == {"a", "c"}
