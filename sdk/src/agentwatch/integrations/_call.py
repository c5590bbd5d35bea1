"""One provider call being measured: timing, attribution, exactly one event.

Also the readers every integration uses on provider response objects, which
may lack any field in some version: a missing or non-integer count is 0.
"""

from __future__ import annotations

import time
from typing import Any

from agentwatch.integrations.otel_overlap import otel_reports
from agentwatch.sdk.context import Run, current_run, live_run
from agentwatch.sdk.events import Sink, Tokens, build_event, error_text
from agentwatch.sdk.safety import internal_error


def as_int(v: Any) -> int:
    """`v` if it is an integer count, else 0 (type(), not isinstance: bool is no count)."""
    return v if type(v) is int else 0


def count(obj: Any, name: str) -> int:
    """The integer attribute `name` of `obj` (which may be None), else 0."""
    v = getattr(obj, name, 0)
    return v if type(v) is int else 0  # as_int, inlined: five of these run per call


class Call:
    """Timing and attribution of one provider call; emits exactly one event."""

    __slots__ = ("client", "done", "meta", "model", "provider", "run", "t0", "ttft", "wall")

    def __init__(self, client: Sink, provider: str, model: Any) -> None:
        self.client = client
        self.provider = provider
        self.model = model if isinstance(model, str) else ("" if model is None else str(model))
        # The run current when the call starts: a stream may end outside it.
        run = current_run.get()
        if run is not None and type(run) is not Run:
            run = live_run()  # a framework run: it may have ended (sdk/context.py)
        self.run = run
        self.meta: dict[str, Any] = {}
        self.ttft: float | None = None
        # Done before it starts when OpenTelemetry spans already report this
        # provider's calls to the same server (integrations/otel_overlap.py, docs/otlp.md).
        self.done = otel_reports(provider, client.server_url)
        self.wall = time.time()
        self.t0 = time.perf_counter()

    def emit(
        self,
        status: str,
        t_end: float,
        *,
        model: Any = None,
        error: BaseException | None = None,
        error_message: str | None = None,
        usage: Tokens | None = None,
    ) -> None:
        """Queue the call's event, once; `usage` holds the token counts read."""
        if self.done:
            return
        self.done = True
        meta = self.meta
        if self.ttft is not None:
            meta["time_to_first_token_ms"] = (self.ttft - self.t0) * 1000.0
        if error is not None:
            meta["error_type"] = type(error).__name__
            code = getattr(error, "status_code", None)
            if isinstance(code, int):
                meta["http_status"] = code
            error_message = error_text(error)
        t: Tokens = usage or {}
        # By position, in the wire order (see build_event): this runs per call.
        self.client.emit(
            build_event(
                self.client,
                self.run,
                None,  # id
                None,  # task_name: the run's or the client's
                None,  # agent_name: likewise
                (model if isinstance(model, str) and model else self.model) or "unknown",
                t.get("input_tokens", 0),
                t.get("output_tokens", 0),
                t.get("cache_read_tokens", 0),
                t.get("cache_write_tokens", 0),
                t.get("reasoning_tokens", 0),
                max(0.0, (t_end - self.t0) * 1000.0),  # latency_ms
                None,  # cost_usd: the server prices the call
                status,
                error_message,
                self.wall,  # timestamp: when the call started
                meta,
                "llm",
                None,  # trace_id: the run's
                None,  # parent_id: the run
                self.provider,
            )
        )

    def fail(self, exc: BaseException) -> None:
        """The provider call raised: record it (guarded; the caller re-raises)."""
        try:
            self.emit("error", time.perf_counter(), error=exc)
        except Exception as e:
            internal_error(f"{self.provider}.error", e)
