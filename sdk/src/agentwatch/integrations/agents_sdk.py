"""OpenAI Agents SDK: each ``Runner.run`` / ``run_streamed`` trace is one task run.

Registered by ``instrument()`` when the ``agents`` package is imported (this
module imports it only then). The processor reads nothing but the trace's
start and end: the model calls themselves are recorded by the openai
integration, under the run this opens. The SDK's own tracing (its default
exporter) is left as the app configured it; with ``tracing_disabled=True``
the SDK calls no processor, and the calls are recorded without a run.
"""

from __future__ import annotations

from typing import Any

from agentwatch.integrations._patch import Integration, Patches
from agentwatch.integrations._runs import FrameworkRuns

RUNS = FrameworkRuns("agents")
_registered: list[Any] = []


def make_processor() -> Any:
    from agents.tracing import TracingProcessor

    class AgentWatchProcessor(TracingProcessor):
        """Opens a task run per trace (task: the trace's workflow name)."""

        def on_trace_start(self, trace: Any) -> None:
            RUNS.start(getattr(trace, "trace_id", id(trace)), getattr(trace, "name", None))

        def on_trace_end(self, trace: Any) -> None:
            RUNS.end(getattr(trace, "trace_id", id(trace)))

        def on_span_start(self, span: Any) -> None:
            pass

        def on_span_end(self, span: Any) -> None:
            pass

        def shutdown(self) -> None:
            pass

        def force_flush(self) -> None:
            pass

    return AgentWatchProcessor()


def patch(patches: Patches) -> None:
    """Add our processor to the SDK's trace provider, once per process."""
    if _registered:
        return
    try:
        from agents import add_trace_processor
    except ImportError:
        return  # a different package named "agents": not the OpenAI Agents SDK

    processor = make_processor()
    add_trace_processor(processor)
    _registered.append(processor)  # inert once uninstrumented: no active client


INTEGRATION = Integration(module="agents", major=0, patch=patch)
