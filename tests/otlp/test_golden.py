"""Golden mapping tests: spans captured from the real instrumentations, mapped by the real server.

tests/otlp/data/{genai,openinference}.json were captured by
``python tests/otlp/scenario.py``: opentelemetry-instrumentation-openai-v2 and
openinference-instrumentation-openai wrapping the real openai client against
the fake provider (1200 input tokens of which 200 cached, 300 output, 50
reasoning), inside hand-made agent and tool spans. Each is sent to a real
server as OTLP JSON, then again as protobuf, and the stored events are checked
field by field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from build import PROTOBUF, events, post
from scenario import DATA, to_protobuf

from agentwatch.otlp.decode import decode_json, decode_protobuf
from agentwatch.otlp.mapping import event_id

# gpt-4o-2024-08-06 in the price book: $2.50 / M input, $1.25 / M cached input,
# $10 / M output; text-embedding-3-small: $0.02 / M.
CHAT_COST_NO_CACHE = (1200 * 2.5 + 300 * 10) / 1e6
CHAT_COST_CACHED = (1000 * 2.5 + 200 * 1.25 + 300 * 10) / 1e6
EMBED_COST = 1200 * 0.02 / 1e6


def load(convention: str) -> dict[str, Any]:
    return json.loads((DATA / f"{convention}.json").read_text())


def spans_by_name(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                out.setdefault(s["name"], []).append(s)
    return out


def eid(s: dict[str, Any]) -> str:
    return event_id(bytes.fromhex(s["traceId"]), bytes.fromhex(s["spanId"]))


def latency(s: dict[str, Any]) -> float:
    return (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6


def stored(server: Any, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    r = post(server.url, doc)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {}  # full success: no partialSuccess
    trace = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    return {e["id"]: e for e in events(server.url, trace_id=trace)}


def check_common(evs: dict[str, dict[str, Any]], spans: dict[str, list[dict[str, Any]]]) -> None:
    agent_span = spans["invoke_agent planner"][0]
    tool_span = spans["execute_tool search_flights"][0]
    assert "plan" in spans and eid(spans["plan"][0]) not in evs  # custom span: not stored
    assert len(evs) == 6

    run = evs[eid(agent_span)]
    assert run["kind"] == "task" and run["parent_id"] is None
    assert run["agent_name"] == "planner" and run["task_name"] == "invoke_agent planner"
    assert run["latency_ms"] == pytest.approx(latency(agent_span))
    assert run["session_id"] == "conv-1" and run["user_id"] == "u-42"
    assert run["trace_id"] == agent_span["traceId"]

    tool = evs[eid(tool_span)]
    assert tool["kind"] == "tool" and tool["parent_id"] == run["id"]
    assert tool["metadata"]["tool"] == "search_flights"
    assert tool["agent_name"] == "planner" and tool["task_name"] == "invoke_agent planner"

    for e in evs.values():
        assert e["trace_id"] == agent_span["traceId"]
        assert e["timestamp"].endswith("+00:00")
        if e["kind"] == "llm":
            assert e["agent_name"] == "planner"
            assert e["task_name"] == "invoke_agent planner"
            assert e["session_id"] == "conv-1" and e["user_id"] == "u-42"
            assert e["provider"] == "openai"


def check_chats(
    evs: dict[str, dict[str, Any]],
    spans: dict[str, list[dict[str, Any]]],
    name: str,
    cache_read: int,
    reasoning: int,
    cost: float,
) -> tuple[dict[str, Any], ...]:
    """The three chat calls: under the custom step, streamed in the tool, failed."""
    chats = spans[name]
    plain, streamed, failed = (evs[eid(s)] for s in chats)
    # the call under the custom "plan" span links to the agent run, through it
    assert plain["parent_id"] == eid(spans["invoke_agent planner"][0])
    assert streamed["parent_id"] == eid(spans["execute_tool search_flights"][0])
    for e, s in ((plain, chats[0]), (streamed, chats[1])):
        assert e["kind"] == "llm" and e["status"] == "success"
        assert e["model"] == "gpt-4o-2024-08-06"  # the response's model over the request's
        # input counts include the cached tokens in both conventions: never added again
        assert (e["input_tokens"], e["output_tokens"]) == (1200, 300)
        assert (e["cache_read_tokens"], e["cache_write_tokens"]) == (cache_read, 0)
        assert e["reasoning_tokens"] == reasoning
        assert e["cost_usd"] == pytest.approx(cost)
        assert e["latency_ms"] == pytest.approx(latency(s))
    assert failed["status"] == "error"
    assert failed["parent_id"] == plain["parent_id"]
    assert failed["model"] == "gpt-4o" and failed["cost_usd"] == 0.0
    return plain, streamed, failed


@pytest.mark.parametrize("convention", ["genai", "openinference"])
def test_protobuf_and_json_decode_alike(convention: str) -> None:
    doc = load(convention)
    from_json = decode_json(json.dumps(doc).encode())
    from_pb = decode_protobuf(to_protobuf(doc))
    assert from_json == from_pb
    assert len(from_json) == 7 and all(r.problem is None for r in from_json)


def test_genai_golden(server: Any) -> None:
    doc = load("genai")
    spans = spans_by_name(doc)
    evs = stored(server, doc)
    check_common(evs, spans)
    run_id = eid(spans["invoke_agent planner"][0])
    # openai-v2 2.4b0 reports neither cached nor reasoning tokens
    plain, _, failed = check_chats(evs, spans, "chat gpt-4o", 0, 0, CHAT_COST_NO_CACHE)
    assert plain["metadata"]["gen_ai.response.id"] == "chatcmpl-1"
    assert failed["error_message"] == "Error code: 500 - fake provider failure"
    # error.type as openai-v2 2.4b0 writes it
    assert failed["metadata"]["error_type"] == "<class 'openai.InternalServerError'>"

    emb = evs[eid(spans["embeddings text-embedding-3-small"][0])]
    assert emb["kind"] == "llm" and emb["model"] == "text-embedding-3-small"
    assert (emb["input_tokens"], emb["output_tokens"]) == (1200, 0)
    assert emb["cost_usd"] == pytest.approx(EMBED_COST)
    assert emb["parent_id"] == run_id

    # The same spans again, as protobuf: the export is idempotent per span.
    r = post(server.url, to_protobuf(doc), PROTOBUF)
    assert r.status_code == 200 and r.headers["content-type"] == PROTOBUF
    assert r.content == b""  # an empty ExportTraceServiceResponse
    assert len(events(server.url)) == 6


def test_openinference_golden(server: Any) -> None:
    doc = load("openinference")
    spans = spans_by_name(doc)
    evs = stored(server, doc)
    check_common(evs, spans)
    chats = spans["ChatCompletion"]
    plain, streamed, failed = check_chats(evs, spans, "ChatCompletion", 200, 50, CHAT_COST_CACHED)
    first_token = next(ev for ev in chats[1]["events"] if ev["name"] == "First Token Stream Event")
    ttft = (int(first_token["timeUnixNano"]) - int(chats[1]["startTimeUnixNano"])) / 1e6
    assert streamed["metadata"]["time_to_first_token_ms"] == pytest.approx(ttft)
    assert plain["metadata"]["llm.input_messages.0.message.content"] == "Plan a trip to Lisbon"

    assert failed["error_message"] == "InternalServerError: Error code: 500 - fake provider failure"
    assert "llm.model_name" not in {a["key"] for a in chats[2]["attributes"]}  # so: from parameters

    emb = evs[eid(spans["CreateEmbeddings"][0])]
    assert emb["model"] == "text-embedding-3-small"  # embedding.model_name
    assert (emb["input_tokens"], emb["output_tokens"]) == (1200, 0)
    assert emb["cost_usd"] == pytest.approx(EMBED_COST)

    r = post(server.url, to_protobuf(doc), PROTOBUF)
    assert r.status_code == 200
    assert len(events(server.url)) == 6
