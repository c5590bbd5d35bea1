"""One agent run made by real OpenTelemetry instrumentations of the real openai client.

``run(convention, tracer_provider, provider)`` instruments the openai client
with ``opentelemetry-instrumentation-openai-v2`` ("genai") or
``openinference-instrumentation-openai`` ("openinference"), and makes, inside
an agent span, a chat call under a custom (not stored) span, a streamed chat
call inside a tool span, an embeddings call and a chat call that fails. The
agent and tool spans are made by hand with each convention's attributes, as
agent frameworks do. The provider is tests/sdk/fakes.py's fake.

``python tests/otlp/scenario.py`` captures both runs into tests/otlp/data/
(OTLP JSON), the input of the golden mapping tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "sdk"))

from fakes import FakeProvider, Usage  # noqa: E402

DATA = HERE / "data"
USAGE = Usage(input=1200, output=300, cached=200, reasoning=50)

AGENT_ATTRS = {
    "genai": {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        "gen_ai.conversation.id": "conv-1",
        "user.id": "u-42",
    },
    "openinference": {
        "openinference.span.kind": "AGENT",
        "agent.name": "planner",
        "session.id": "conv-1",
        "user.id": "u-42",
    },
}
TOOL_ATTRS = {
    "genai": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_flights"},
    "openinference": {"openinference.span.kind": "TOOL", "tool.name": "search_flights"},
}


def instrumentor(convention: str) -> Any:
    if convention == "genai":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor
    return OpenAIInstrumentor()


def run(convention: str, tracer_provider: Any, provider: FakeProvider | None = None) -> None:
    import openai

    provider = provider or FakeProvider(usage=USAGE)
    inst = instrumentor(convention)
    inst.instrument(tracer_provider=tracer_provider)
    try:
        client = openai.OpenAI(
            api_key="sk-test",
            base_url="http://fake/v1",
            http_client=provider.sync_client(),
            max_retries=0,
        )
        tracer = tracer_provider.get_tracer("trip-planner")
        msgs = [{"role": "user", "content": "Plan a trip to Lisbon"}]
        with tracer.start_as_current_span(
            "invoke_agent planner", attributes=AGENT_ATTRS[convention]
        ):
            with tracer.start_as_current_span("plan"):  # a custom span: not stored
                client.chat.completions.create(model="gpt-4o", messages=msgs)
            with tracer.start_as_current_span(
                "execute_tool search_flights", attributes=TOOL_ATTRS[convention]
            ):
                stream = client.chat.completions.create(
                    model="gpt-4o",
                    messages=msgs,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _ in stream:
                    pass
            client.embeddings.create(model="text-embedding-3-small", input="Lisbon")
            provider.fail_status = 500
            with contextlib.suppress(openai.APIStatusError):
                client.chat.completions.create(model="gpt-4o", messages=msgs)
            provider.fail_status = None
    finally:
        inst.uninstrument()


def to_otlp_json(spans: Any) -> dict[str, Any]:
    """Finished SDK spans -> an OTLP JSON ExportTraceServiceRequest (hex ids)."""
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    doc = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        s[k] = base64.b64decode(s[k]).hex()
    return doc


def to_protobuf(doc: dict[str, Any]) -> bytes:
    """An OTLP JSON document -> the same request as protobuf bytes."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    doc = json.loads(json.dumps(doc))
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if s.get(k):
                        s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()


def capture(convention: str) -> dict[str, Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "trip-service"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    run(convention, tp)
    tp.shutdown()
    return to_otlp_json(exporter.get_finished_spans())


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    for conv in ("genai", "openinference"):
        path = DATA / f"{conv}.json"
        path.write_text(json.dumps(capture(conv), indent=1, sort_keys=True) + "\n")
        print("wrote", path)
