"""GET /api/health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from agentwatch._version import __version__
from agentwatch.server.api.common import run_in_threadpool, state
from agentwatch.server.auth import PUBLIC, requires

router = APIRouter(prefix="/api", tags=["health"])


@router.get(
    "/health",
    summary="Version, storage backend and stored event count",
    openapi_extra=requires(PUBLIC),  # load balancers and probes ask without a key
)
async def health(request: Request) -> dict[str, Any]:
    st = state(request)
    count = await run_in_threadpool(st.store.count_events)
    pending = await run_in_threadpool(st.store.pending_rollups)
    return {
        "status": "ok",
        "version": __version__,
        "backend": st.store.backend,
        "events": count,
        "live_clients": len(st.broadcaster.subscribers),
        # How far the pre-aggregates are behind (metrics are exact meanwhile,
        # only slower): events not yet built, days waiting to be recounted.
        "rollups_pending": pending,
        # The reader processes for the dashboard's queries (server/reads.py).
        "readers": st.reads.health() if st.reads else {"up": 0, "answered": 0},
    }
