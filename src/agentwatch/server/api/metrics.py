"""GET /api/metrics/summary, /timeseries and /breakdown.

Metrics count LLM calls (kind "llm") only; task runs and tool calls never
inflate request counts or bend latency percentiles (docs/http-api.md).

The store answers with raw totals (store.base: Summary, Totals,
BreakdownRow); this module is the one place that names them as the API does,
derives the rates and averages, and rounds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from agentwatch.clock import MINUTE_US
from agentwatch.schema import MIN_TIMESTAMP_US
from agentwatch.server.api.common import (
    AgentQ,
    FastJSON,
    ModelQ,
    Period,
    SinceQ,
    TaskQ,
    UntilQ,
    dims,
    iso_us,
    run_in_threadpool,
    state,
    window,
)
from agentwatch.server.figures import avg_latency, cost_usd, error_rate
from agentwatch.store.base import DIMENSIONS, BreakdownRow

router = APIRouter(prefix="/api/metrics", tags=["metrics"])

# Auto bucket widths in minutes: each divides a day (or is a whole number of
# days), so buckets line up with UTC hours and midnights.
NICE_BUCKET_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440, 2880, 10080)
MAX_AUTO_POINTS = 200
MAX_POINTS = 5000  # an explicit bucket may ask for finer charts, within reason


def breakdown_row(row: BreakdownRow) -> dict[str, Any]:
    t = row.totals
    return {
        "name": row.name,
        "requests": t.requests,
        "avg_latency": avg_latency(t),
        "total_cost": cost_usd(t.cost),
        "error_rate": error_rate(t),
        "errors": t.errors,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "latency_p50": t.p50,
        "latency_p95": t.p95,
    }


@router.get("/summary", summary="Totals, success rate and latency percentiles for a period")
async def summary(
    request: Request,
    period: Period = "24h",
    agent_name: AgentQ = None,
    model: ModelQ = None,
    task_name: TaskQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
) -> Any:
    start, end = window(period, since, until)
    s = await run_in_threadpool(
        state(request).store.summary, start, end, dims(agent_name, model, task_name)
    )
    t, n = s.llm, s.llm.requests
    out: dict[str, Any] = {
        "total_cost": cost_usd(t.cost),
        "total_requests": n,
        "success_rate": round(100.0 * (n - t.errors) / n, 2) if n else None,
        "avg_latency_ms": avg_latency(t),
        "latency_p50": t.p50,
        "latency_p95": t.p95,
        "active_agents": s.agents,
        # With `since`, the period played no part in the window.
        "period": "custom" if since is not None else period,
        "errors": t.errors,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "total_tokens": t.input_tokens + t.output_tokens,
        "task_runs": s.task_runs,
    }
    if since is not None or until is not None:  # the window used, for a custom one
        out.update(since=iso_us(start), until=iso_us(end))
    return FastJSON(out)


def auto_bucket_minutes(span_us: int) -> int:
    for m in NICE_BUCKET_MINUTES:
        if span_us / (m * MINUTE_US) <= MAX_AUTO_POINTS:
            return m
    return NICE_BUCKET_MINUTES[-1]


@router.get("/timeseries", summary="Time-bucketed metrics for charts")
async def timeseries(
    request: Request,
    period: Period = "24h",
    bucket: Annotated[int | None, Query(ge=1, le=43_200, description="Minutes")] = None,
    agent_name: AgentQ = None,
    model: ModelQ = None,
    task_name: TaskQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
) -> Any:
    st = state(request)
    f = dims(agent_name, model, task_name)
    start, end = window(period, since, until)
    if period == "all" and since is None:
        first = await run_in_threadpool(st.store.first_timestamp_us, f)
        start = first if first is not None and first < end else end - 86_400_000_000
        # Events older than the ingest window (stored before it existed) must
        # not make every bucket width exceed the point limit.
        start = max(start, MIN_TIMESTAMP_US)
    minutes = bucket or auto_bucket_minutes(end - start)
    # Minutes at the API's edge (`bucket`, `bucket_minutes`); the store takes
    # the width in microseconds.
    width_us = minutes * MINUTE_US
    origin_us = start // width_us * width_us  # aligned to a multiple of the width since the epoch
    n = (end // width_us * width_us - origin_us) // width_us + 1
    if n > MAX_POINTS:
        raise HTTPException(
            422, f"bucket={minutes} gives {n} points for period={period}; the limit is {MAX_POINTS}"
        )
    data = await run_in_threadpool(st.store.timeseries, start, end, origin_us, width_us, f)
    out: dict[str, list[Any]] = {
        k: []
        for k in (
            "timestamps",
            "cost",
            "tokens",
            "requests",
            "avg_latency",
            "latency_p50",
            "latency_p95",
            "errors",
        )
    }
    for i in range(n):
        ts = datetime.fromtimestamp((origin_us + i * width_us) / 1e6, UTC).isoformat()
        b = data.get(i)
        out["timestamps"].append(ts)
        if b is None:
            for k in ("cost", "tokens", "requests", "errors"):
                out[k].append(0)
            for k in ("avg_latency", "latency_p50", "latency_p95"):
                out[k].append(None)
            continue
        out["cost"].append(cost_usd(b.cost))
        out["tokens"].append(b.input_tokens + b.output_tokens)
        out["requests"].append(b.requests)
        out["errors"].append(b.errors)
        out["avg_latency"].append(avg_latency(b))
        out["latency_p50"].append(b.p50)
        out["latency_p95"].append(b.p95)
    extra = {"since": iso_us(start), "until": iso_us(end)} if since or until else {}
    shown = "custom" if since is not None else period
    return FastJSON({**out, "bucket_minutes": minutes, "period": shown, **extra})


GroupBy = Literal["agent_name", "model", "task_name", "provider", "user_id", "session_id"]


@router.get("/breakdown", summary="Metrics grouped by agent, model, task, provider, user, session")
async def breakdown(
    request: Request,
    group_by: GroupBy = "agent_name",
    period: Period = "24h",
    agent_name: AgentQ = None,
    model: ModelQ = None,
    task_name: TaskQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    limit: Annotated[
        int | None, Query(ge=1, le=10_000, description="Only the first N rows (by cost)")
    ] = None,
) -> Any:
    st = state(request)
    start, end = window(period, since, until)
    f = dims(agent_name, model, task_name)
    if group_by in DIMENSIONS:  # pre-aggregated (rollups)
        rows = await run_in_threadpool(st.store.breakdown, group_by, start, end, f, False, limit)
    else:  # provider, user, session: raw events (store/explore.py)
        rows = await run_in_threadpool(st.store.breakdown_raw, group_by, start, end, f, limit)
    return FastJSON([breakdown_row(r) for r in rows])
