"""POST /api/events (ingest) and GET /api/events (query)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from agentwatch.schema import Kind, Status
from agentwatch.server.api.common import (
    AgentQ,
    FastJSON,
    ModelQ,
    TaskQ,
    run_in_threadpool,
    state,
    to_us,
)
from agentwatch.server.ingest import BatchRefused, StorageUnavailable
from agentwatch.server.validate import BatchError, batch_rows
from agentwatch.store.explore import EventQuery

router = APIRouter(prefix="/api", tags=["events"])

MAX_LIMIT = 1000  # a page bigger than this is a job for export, not for the query API
# Deeper than a trillion rows is no page anyone reads, and every backend's
# 64-bit OFFSET holds it (a larger number was a 500 from the driver).
MAX_OFFSET = 10**12


async def read_body(request: Request, limit: int) -> bytes:
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
        body = await read_body(request, st.settings.max_body_bytes)
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
    except BatchRefused as e:
        return JSONResponse({"detail": str(e), "errors": []}, status_code=422)
    except StorageUnavailable as e:
        return JSONResponse({"detail": str(e)}, status_code=503, headers={"Retry-After": "1"})
    return FastJSON({"status": "ok", "count": count})


SortQ = Literal["time", "cost", "latency", "tokens"]
NameQ = Annotated[str | None, Query(max_length=256)]


def _bad_param(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the query parameter."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def encode_cursor(sort: str, order: str, key: list[Any]) -> str:
    """An opaque page cursor: the sort it belongs to and the keyset of the
    page's last row (sort value, seq), as URL-safe base64 of JSON."""
    raw = orjson.dumps([sort, order, key[0], key[1]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, order: str) -> tuple[float | int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        c_sort, c_order, value, seq = orjson.loads(raw)
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and isinstance(seq, int)
            and not isinstance(seq, bool)
            and abs(value) < 2**63
            and 0 <= seq < 2**63
        )
    except (ValueError, TypeError, orjson.JSONDecodeError):
        ok = False
    if not ok:
        raise _bad_param("cursor", "not a cursor returned by this endpoint", cursor)
    if (c_sort, c_order) != (sort, order):
        raise _bad_param(
            "cursor", f"this cursor pages sort={c_sort}&order={c_order}; ask for that order", cursor
        )
    return value, seq


@router.get("/events", summary="Query events, newest first (or by cost, latency, tokens)")
async def list_events(
    request: Request,
    agent_name: AgentQ = None,
    task_name: TaskQ = None,
    model: ModelQ = None,
    status: Status | None = None,
    kind: Kind | None = None,
    trace_id: Annotated[str | None, Query(max_length=128)] = None,
    parent_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    provider: NameQ = None,
    user_id: NameQ = None,
    session_id: NameQ = None,
    id: Annotated[
        str | None, Query(max_length=128, description="Only the event with this id")
    ] = None,
    error_contains: Annotated[
        str | None,
        Query(max_length=256, description="Case-insensitive text in error_message"),
    ] = None,
    sort: SortQ = "time",
    order: Literal["desc", "asc"] = "desc",
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> Any:
    """Events matching every filter given. The answer's `next_cursor`, passed
    back as `cursor`, continues with the next page (null on the last page);
    pages by cursor stay exact while new events arrive."""
    after = None
    if cursor:
        if offset:
            raise _bad_param("offset", "use either cursor or offset, not both", offset)
        after = decode_cursor(cursor, sort, order)
    # An empty value means "no filter", as on the metrics endpoints.
    q = EventQuery(
        agent_name=agent_name or None,
        task_name=task_name or None,
        model=model or None,
        status=status,
        kind=kind,
        trace_id=trace_id or None,
        parent_id=parent_id or None,
        provider=provider or None,
        user_id=user_id or None,
        session_id=session_id or None,
        event_id=id or None,
        error_contains=error_contains or None,
        since_us=to_us(since) if since else None,
        until_us=to_us(until) if until else None,
        sort=sort,
        descending=order == "desc",
        after=after,
        limit=limit,
        offset=offset,
    )
    page = await run_in_threadpool(state(request).store.explore_events, q)
    nxt = page["next"]
    return FastJSON(
        {
            "events": page["events"],
            "next_cursor": None if nxt is None else encode_cursor(sort, order, nxt),
        }
    )
