"""GET /metrics: this server's ingest counts and health, for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from agentwatch.server.prom import Metrics, exposition

router = APIRouter(tags=["prometheus"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Counts of what this server process ingested since it started (LLM
    calls, tokens, cost, latency histogram, task runs by agent, model and
    task) and its health (events accepted and refused, commit time, queue
    depth, live-stream clients). See docs/prometheus.md."""
    m: Metrics = request.app.state.prom
    return Response(exposition(m), media_type=CONTENT_TYPE_LATEST)
