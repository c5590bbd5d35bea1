"""POST /api/events (ingest) and GET /api/events (query)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from agentwatch.server.api.common import (
    AgentQ,
    FastJSON,
    ModelQ,
    TaskQ,
    run_in_threadpool,
    state,
    to_us,
)
from agentwatch.server.ingest import StorageUnavailable
from agentwatch.server.validate import BatchError, batch_rows
from agentwatch.store.base import Filters

router = APIRouter(prefix="/api", tags=["events"])

MAX_LIMIT = 1000  # a page bigger than this is a job for export, not for the query API
# Deeper than a trillion rows is no page anyone reads, and every backend's
# 64-bit OFFSET holds it (a larger number was a 500 from the driver).
MAX_OFFSET = 10**12


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BatchError(413, f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BatchError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/events",
    summary="Ingest a batch of events",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ok", "count": 1}}}},
        413: {"description": "Too many events or bytes in one request"},
        422: {"description": "An event is invalid; nothing of the batch was stored"},
        503: {"description": "Storage unavailable; retry (ingest is idempotent on id)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/EventBatch"},
                }
            },
        }
    },
)
async def ingest(request: Request) -> Any:
    """Validate the whole batch, price events without `cost_usd`, commit, then answer.

    A single invalid event rejects the batch (422, naming the index and the field);
    an event whose `id` is already stored is skipped, so a retried batch is stored once.
    """
    st = state(request)
    try:
        body = await _read_body(request, st.settings.max_body_bytes)
        # A fast path for plainly valid batches, else pydantic (same rows, same errors).
        rows, count = batch_rows(body, st.settings.max_batch_events, st.prices)
    except BatchError as e:
        return JSONResponse({"detail": e.message, "errors": e.errors}, status_code=e.status)
    except ClientDisconnect:
        # The client went (or its body stopped arriving and the server closed
        # the connection): nothing was stored and nobody reads this answer.
        return Response(status_code=400)
    try:
        await st.writer.submit(rows)
    except StorageUnavailable as e:
        return JSONResponse({"detail": str(e)}, status_code=503, headers={"Retry-After": "1"})
    return FastJSON({"status": "ok", "count": count})


@router.get("/events", summary="Query events, newest first")
async def list_events(
    request: Request,
    agent_name: AgentQ = None,
    task_name: TaskQ = None,
    model: ModelQ = None,
    status: Literal["success", "error"] | None = None,
    kind: Literal["llm", "task", "tool"] | None = None,
    trace_id: Annotated[str | None, Query(max_length=128)] = None,
    parent_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    # An empty value means "no filter", as on the metrics endpoints.
    f = Filters(
        agent_name=agent_name or None,
        task_name=task_name or None,
        model=model or None,
        status=status,
        kind=kind,
        trace_id=trace_id or None,
        parent_id=parent_id or None,
        since_us=to_us(since) if since else None,
        until_us=to_us(until) if until else None,
    )
    rows = await run_in_threadpool(state(request).store.query_events, f, limit, offset)
    return FastJSON({"events": rows})
