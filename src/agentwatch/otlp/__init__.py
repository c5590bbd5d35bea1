"""OpenTelemetry in: OTLP/HTTP trace exports mapped into AgentWatch events.

- ``attributes``: the one table of attribute names read from spans (both the
  OTel GenAI and the OpenInference conventions).
- ``decode``: an OTLP/HTTP body (protobuf or JSON) -> plain span records.
- ``mapping``: span records -> ``schema.Event`` objects, linking each event to
  its nearest stored ancestor, across export requests too.
- ``overlap``: SDK side, standard library only: whether this process's own
  OpenTelemetry spans already report a provider's calls to the AgentWatch
  server, so that the auto-patch does not count them a second time.

The route is ``server/api/otlp.py``. This package's ``__init__`` imports
nothing, so that the SDK can use ``overlap`` without the server's packages.
"""
