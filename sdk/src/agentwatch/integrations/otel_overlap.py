"""SDK side: does this process already report a provider's calls through OpenTelemetry?

When a process both runs AgentWatch's auto-patch and exports OpenTelemetry
spans to the same AgentWatch server, an LLM call reaches the server twice:
once as the SDK's event and once as the instrumentation's span, mapped by
/v1/traces. The two cannot be matched on the server (they share no id, and
either may arrive first), so the SDK decides: it leaves the call to
OpenTelemetry when

1. the global tracer provider exports to this client's server (an OTLP
   exporter whose endpoint has the same host and port), and
2. something records that provider's calls as spans: an OpenTelemetry
   instrumentor for its package is active (opentelemetry-instrumentation-
   openai-v2, openinference-instrumentation-openai, ...), or, for anthropic,
   the SDK's own spans (anthropic 2.x, unless ANTHROPIC_OPEN_TELEMETRY=false).

If the spans go elsewhere (Jaeger, a vendor), nothing changes: the SDK records
as before. Standard library only, and OpenTelemetry is never imported here:
only looked at when the application has imported it. docs/otlp.md explains.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

# The answer is cached this long: instrumentation and exporters are set up
# once at start, and a per-call check must cost next to nothing.
CACHE_S = 2.0
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}

_cache: dict[tuple[str, str], tuple[float, bool]] = {}


def otel_reports(provider: str, server_url: str) -> bool:
    """True if OpenTelemetry in this process reports `provider` calls to `server_url`."""
    if "opentelemetry.trace" not in sys.modules:
        return False
    key = (provider, server_url)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        value = _exports_to(server_url) and _records(provider)
    except Exception as exc:
        from agentwatch.sdk.safety import internal_error

        internal_error("otel-overlap", exc)
        value = False
    _cache[key] = (now + CACHE_S, value)
    if value:
        from agentwatch.sdk.safety import log_once

        log_once(
            f"otel-overlap:{provider}",
            logging.INFO,
            "agentwatch: OpenTelemetry spans of %s calls go to %s/v1/traces; the auto-patch "
            "leaves those calls to them so that each counts once (docs/otlp.md)",
            provider,
            server_url.rstrip("/"),
        )
    return value


def reset() -> None:
    _cache.clear()


def _address(url: str) -> tuple[str, int] | None:
    try:
        u = urlsplit(url)
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        return None
    host = (u.hostname or "").lower()
    return ("loopback" if host in _LOOPBACK else host), port


def _exports_to(server_url: str) -> bool:
    trace = sys.modules["opentelemetry.trace"]
    tp = trace.get_tracer_provider()
    target = _address(server_url)
    multi = getattr(tp, "_active_span_processor", None)
    for proc in getattr(multi, "_span_processors", ()):
        exporter = getattr(proc, "span_exporter", None)
        endpoint: Any = getattr(exporter, "_endpoint", None)
        if endpoint is None:  # the JSON exporter keeps it on its HTTP client
            endpoint = getattr(getattr(exporter, "_client", None), "_endpoint", None)
        if isinstance(endpoint, str) and target is not None and _address(endpoint) == target:
            return True
    return False


def _records(provider: str) -> bool:
    package = {"azure": "openai"}.get(provider, provider)  # Azure OpenAI is the openai package
    if (
        provider == "anthropic"
        and "anthropic._tracing" in sys.modules
        and os.environ.get("ANTHROPIC_OPEN_TELEMETRY", "").lower() != "false"
    ):
        return True
    mod = sys.modules.get("opentelemetry.instrumentation.instrumentor")
    base = getattr(mod, "BaseInstrumentor", None)
    if base is None:
        return False
    todo = list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        inst = cls.__dict__.get("_instance")
        if inst is None or not getattr(inst, "_is_instrumented_by_opentelemetry", False):
            continue
        for dep in inst.instrumentation_dependencies():
            name = str(dep).split(" ", 1)[0].split(">", 1)[0].split("=", 1)[0].split("<", 1)[0]
            if name.strip().lower() == package:
                return True
    return False
