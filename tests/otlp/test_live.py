"""Real exporters to a real server: the OTel SDK's protobuf and JSON OTLP/HTTP exporters, the
real instrumentations of the real openai client (and anthropic 2.x's own spans), and a
script that is configured by OTEL_EXPORTER_OTLP_ENDPOINT alone, with and without
AgentWatch's auto-patch running in the same process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from build import events, wait_events
from test_golden import CHAT_COST_CACHED, CHAT_COST_NO_CACHE, EMBED_COST

APP = Path(__file__).parent / "app.py"


def tracer_provider(server: Any, encoding: str) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if encoding == "protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    tp = TracerProvider(resource=Resource.create({"service.name": "trip-service"}))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.url + "/v1/traces")))
    return tp


def llm_costs(evs: list[dict[str, Any]]) -> list[float]:
    return sorted(round(e["cost_usd"], 9) for e in evs if e["kind"] == "llm")


@pytest.mark.parametrize(
    ("convention", "encoding", "chat_cost"),
    [
        ("genai", "protobuf", CHAT_COST_NO_CACHE),
        ("genai", "json", CHAT_COST_NO_CACHE),
        ("openinference", "protobuf", CHAT_COST_CACHED),
        ("openinference", "json", CHAT_COST_CACHED),
    ],
)
def test_instrumented_openai_through_each_exporter(
    server: Any, convention: str, encoding: str, chat_cost: float
) -> None:
    import scenario

    tp = tracer_provider(server, encoding)
    scenario.run(convention, tp)
    tp.shutdown()  # flushes the batch: the export has been answered when this returns
    evs = events(server.url)
    assert sorted(e["kind"] for e in evs) == ["llm"] * 4 + ["task", "tool"]
    assert llm_costs(evs) == sorted(round(c, 9) for c in (0.0, EMBED_COST, chat_cost, chat_cost))
    run = next(e for e in evs if e["kind"] == "task")
    assert all(e["trace_id"] == run["trace_id"] for e in evs)
    assert {e["agent_name"] for e in evs} == {"planner"}
    assert {e["task_name"] for e in evs} == {"invoke_agent planner"}


def run_app(server: Any, *args: str, sdk: bool) -> None:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": server.url,
        "OTEL_SERVICE_NAME": "trip-service",
    }
    env.pop("AGENTWATCH_SERVER_URL", None)
    if sdk:
        env["AGENTWATCH_SERVER_URL"] = server.url
    out = subprocess.run(
        [sys.executable, str(APP), *args], env=env, capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize(
    ("convention", "sdk"),
    [("openinference", False), ("openinference", True), ("genai", True)],
    ids=["openinference-otel-only", "openinference-with-auto-patch", "genai-with-auto-patch"],
)
def test_new_user_script(server: Any, convention: str, sdk: bool) -> None:
    """Nothing but OTEL_EXPORTER_OTLP_ENDPOINT; with the auto-patch on too, still counted once."""
    run_app(server, convention, sdk=sdk)
    evs = wait_events(server.url, 6)
    assert len(evs) == 6, [(e["kind"], e["agent_name"]) for e in evs]
    assert all("otel.span_id" in e["metadata"] for e in evs)  # each one from a span
    assert {e["agent_name"] for e in evs} == {"planner"}
    chat = CHAT_COST_CACHED if convention == "openinference" else CHAT_COST_NO_CACHE
    assert llm_costs(evs) == sorted(round(c, 9) for c in (0.0, EMBED_COST, chat, chat))


def test_anthropic_own_spans_and_the_auto_patch_count_once(server: Any) -> None:
    run_app(server, "anthropic", sdk=True)
    evs = wait_events(server.url, 2)
    assert len(evs) == 2
    for e in evs:
        assert e["metadata"]["otel.scope"] == "com.anthropic.sdk.python"
        assert e["model"] == "claude-sonnet-4-20250514" and e["provider"] == "anthropic"
        # anthropic's spans count cached tokens inside the input, like the SDK does
        assert (e["input_tokens"], e["cache_read_tokens"]) == (1400, 200)
        assert e["agent_name"] == "trip-service"  # service.name: nothing else names an agent


def test_auto_patch_records_when_spans_go_elsewhere(server: Any) -> None:
    run_app(server, "anthropic", "memory", sdk=True)
    evs = wait_events(server.url, 2)
    assert len(evs) == 2
    for e in evs:
        assert "otel.span_id" not in e["metadata"]  # the SDK's own events
        assert e["agent_name"] == "sdk-agent" and e["task_name"] == "sdk-task"
        assert (e["input_tokens"], e["cache_read_tokens"]) == (1400, 200)
