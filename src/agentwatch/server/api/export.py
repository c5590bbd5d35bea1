"""GET /api/export: every matching event as CSV or JSON Lines, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from agentwatch import export
from agentwatch.server.api.common import AgentQ, ModelQ, TaskQ, state, to_us
from agentwatch.store.explore import EventQuery

router = APIRouter(prefix="/api", tags=["export"])

NameQ = Annotated[str | None, Query(max_length=256)]
TimeQ = Annotated[datetime | None, Query(description="ISO 8601, inclusive; naive means UTC")]


@router.get(
    "/export",
    summary="Export events as CSV or JSON Lines (streamed, no row limit)",
    responses={
        200: {
            "content": {"text/csv": {}, "application/x-ndjson": {}},
            "description": "The events, oldest first, as an attachment",
        },
        422: {"description": "Unknown format or a bad filter"},
    },
)
def export_events(
    request: Request,
    format: Literal["csv", "jsonl"] = "csv",
    agent_name: AgentQ = None,
    task_name: TaskQ = None,
    model: ModelQ = None,
    status: Literal["success", "error"] | None = None,
    kind: Literal["llm", "task", "tool"] | None = None,
    since: TimeQ = None,
    until: TimeQ = None,
    provider: NameQ = None,
    user_id: NameQ = None,
    session_id: NameQ = None,
    trace_id: Annotated[str | None, Query(max_length=128)] = None,
    parent_id: Annotated[str | None, Query(max_length=128)] = None,
    error_contains: Annotated[str | None, Query(max_length=256)] = None,
) -> StreamingResponse:
    """The events matching every filter given (the filters of `GET
    /api/events`), oldest first, read from the store a chunk at a time while
    the client downloads: memory stays flat whatever the size, and the header
    row (CSV) is sent at once."""
    if since is not None and until is not None and to_us(since) > to_us(until):
        raise HTTPException(422, "since must not be later than until")
    names = {
        "agent_name": agent_name,
        "task_name": task_name,
        "model": model,
        "provider": provider,
        "user_id": user_id,
        "session_id": session_id,
        "trace_id": trace_id,
        "parent_id": parent_id,
        "error_contains": error_contains,
    }
    q = EventQuery(
        agent_name=agent_name or None,
        task_name=task_name or None,
        model=model or None,
        provider=provider or None,
        user_id=user_id or None,
        session_id=session_id or None,
        trace_id=trace_id or None,
        parent_id=parent_id or None,
        error_contains=error_contains or None,
        status=status,
        kind=kind,
        since_us=to_us(since) if since else None,
        until_us=to_us(until) if until else None,
    )
    store = state(request).store
    shown: dict[str, Any] = {
        **{k: v for k, v in names.items() if k != "error_contains"},
        "kind": kind,
        "status": status,
        "since": since,
        "until": until,
    }
    media, _ = export.FORMATS[format]
    name = export.file_name(format, shown)
    body: Iterator[bytes] = export.encode(format, store.export_events(q))
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    }
    # A sync iterator: Starlette pulls each chunk on a worker thread, and
    # waits for the socket to drain before the next (backpressure).
    return StreamingResponse(body, media_type=media, headers=headers)
