"""An OpenTelemetry-instrumented agent script, as a new user writes one.

It configures nothing but a tracer provider with the stock OTLP exporter: the
destination comes from OTEL_EXPORTER_OTLP_ENDPOINT alone. Run by
tests/otlp/test_live.py in its own process (a tracer provider is global and
set once per process):

    python app.py openinference        # OpenInference-instrumented openai client
    python app.py genai                # opentelemetry-instrumentation-openai-v2
    python app.py anthropic            # anthropic 2.x's own spans
    python app.py anthropic memory     # spans kept in memory, not sent anywhere

With AGENTWATCH_SERVER_URL set, it also runs ``agentwatch.init()``: the
auto-patch and the OpenTelemetry instrumentation then see the same calls.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import scenario
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def main(argv: list[str]) -> int:
    what = argv[0]
    where = argv[1] if len(argv) > 1 else "otlp"
    tp = TracerProvider()  # service.name from OTEL_SERVICE_NAME
    if where == "memory":
        tp.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tp)

    if os.environ.get("AGENTWATCH_SERVER_URL"):
        import agentwatch

        agentwatch.init(agent="sdk-agent", task="sdk-task")

    if what == "anthropic":
        import anthropic
        from fakes import FakeProvider

        provider = FakeProvider(usage=scenario.USAGE)
        client = anthropic.Anthropic(
            api_key="sk-test",
            base_url="http://fake",
            http_client=provider.sync_client(),
            max_retries=0,
        )
        for _ in range(2):
            client.messages.create(
                model="claude-sonnet-4-20250514",
                max_tokens=100,
                messages=[{"role": "user", "content": "hi"}],
            )
    else:
        scenario.run(what, tp)

    tp.shutdown()  # sends what is still batched
    if os.environ.get("AGENTWATCH_SERVER_URL"):
        import agentwatch

        agentwatch.shutdown(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
