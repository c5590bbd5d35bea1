"""Hand-made OTLP JSON requests, for the cases no instrumentation produces on cue."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
T0 = 1_760_000_000_000_000_000  # 2025-10-09T08:53:20Z, in ns


def new_trace() -> str:
    return os.urandom(16).hex()


def new_span() -> str:
    return os.urandom(8).hex()


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": value(x)} for k, x in v.items()]}}
    return {"stringValue": str(v)}


def span(
    trace: str,
    span_id: str,
    parent: str | None = None,
    name: str = "span",
    attrs: dict[str, Any] | None = None,
    start_ms: float = 0,
    dur_ms: float = 10,
    base_ns: int = T0,
    **extra: Any,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(base_ns + int(start_ms * 1e6)),
        "endTimeUnixNano": str(base_ns + int((start_ms + dur_ms) * 1e6)),
        "attributes": [{"key": k, "value": value(v)} for k, v in (attrs or {}).items()],
    }
    if parent:
        s["parentSpanId"] = parent
    s.update(extra)
    return s


def request(*spans: dict[str, Any], service: str = "test-svc") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": value(service)}]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


def llm(model: str = "gpt-4o", tin: int = 1000, tout: int = 100, **attrs: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": tin,
        "gen_ai.usage.output_tokens": tout,
        **attrs,
    }


def agent(name: str = "planner") -> dict[str, Any]:
    return {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}


def post(url: str, body: Any, ctype: str = JSON, **headers: str) -> httpx.Response:
    if not isinstance(body, bytes | str):
        return httpx.post(url + "/v1/traces", json=body, headers=headers, timeout=30)
    return httpx.post(
        url + "/v1/traces", content=body, headers={"content-type": ctype, **headers}, timeout=30
    )


def events(url: str, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(url + "/api/events", params={"limit": 1000, **params}, timeout=10)
    r.raise_for_status()
    return list(r.json()["events"])


def wait_events(url: str, n: int, timeout: float = 15.0, **params: Any) -> list[dict[str, Any]]:
    """Events once at least `n` are stored (exporters send in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        evs = events(url, **params)
        if len(evs) >= n or time.monotonic() > deadline:
            return evs
        time.sleep(0.1)
