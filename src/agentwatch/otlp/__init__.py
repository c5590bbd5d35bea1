"""OpenTelemetry in: OTLP/HTTP trace exports mapped into AgentWatch events.

- ``attributes``: the one table of attribute names read from spans (both the
  OTel GenAI and the OpenInference conventions).
- ``decode``: an OTLP/HTTP body (protobuf or JSON) -> plain span records.
- ``mapping``: span records -> ``schema.Event`` objects, linking each event to
  its nearest stored ancestor, across export requests too.

The SDK's side (whether this process's own OpenTelemetry spans already report
a provider's calls, so the auto-patch does not count them twice) is
``agentwatch.integrations.otel_overlap``, in the SDK's distribution. The route
is ``server/api/otlp.py``.
"""
