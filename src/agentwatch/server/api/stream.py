"""GET /api/stream: the live event stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from agentwatch.server.api.common import state

router = APIRouter(prefix="/api", tags=["stream"])

KEEPALIVE_S = 10.0  # comment line this often, under the 15 s that proxies tolerate
MAX_CHUNKS_PER_WRITE = 64  # coalesce queued publishes into one socket write


@router.get("/stream", summary="Live events as Server-Sent Events")
async def stream(request: Request) -> StreamingResponse:
    """One `data:` line of event JSON per ingested event, in ingest order.

    Starts with `retry: 3000` (browsers reconnect 3 s after a drop) and sends a
    `: ping` comment when idle. A client that falls behind by more than the
    per-client buffer (see server/broadcast.py) is disconnected rather than
    allowed to slow anyone else.
    """
    bc = state(request).broadcaster
    sub = bc.subscribe()

    async def gen() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if item is None:
                    return
                parts = [item[0]]
                sub.taken(item[1])
                # Coalesce whatever else is already queued into one write.
                while len(parts) < MAX_CHUNKS_PER_WRITE and not sub.queue.empty():
                    nxt = sub.queue.get_nowait()
                    if nxt is None:
                        yield "".join(parts)
                        return
                    parts.append(nxt[0])
                    sub.taken(nxt[1])
                yield "".join(parts)
        finally:
            bc.unsubscribe(sub)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)
