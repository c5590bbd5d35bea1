"""GET /api/runs/totals and GET /api/sessions/{session_id}: what the
dashboard's feed, explorer and session view need beyond single events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from agentwatch.server.api.common import FastJSON, run_in_threadpool, state

router = APIRouter(prefix="/api", tags=["explore"])

MAX_RUNS = 200  # a feed or explorer page asks for at most a few dozen


@router.get("/runs/totals", summary="Cost, tokens and steps of task runs, nested calls included")
async def runs_totals(
    request: Request,
    id: Annotated[
        list[str], Query(min_length=1, max_length=MAX_RUNS, description="Run ids (repeat)")
    ],
) -> Any:
    """For each given id that is a stored task run: the totals of its whole
    subtree (LLM calls' cost and tokens, tool calls, failed steps)."""
    for i, v in enumerate(id):
        if not 1 <= len(v) <= 128:
            raise HTTPException(422, f"id[{i}]: an id is 1 to 128 characters")
    runs = await run_in_threadpool(state(request).store.run_totals, list(dict.fromkeys(id)))
    return FastJSON({"runs": runs})


@router.get("/sessions/{session_id:path}", summary="A session's runs and calls in order")
async def session(
    request: Request,
    session_id: str,
    limit: Annotated[int, Query(ge=1, le=5000, description="Items at most")] = 1000,
) -> Any:
    """The session's top-level runs and calls, oldest first, each run with
    its totals; 404 when no event carries this session id."""
    if not 1 <= len(session_id) <= 256:
        raise HTTPException(422, "session_id: 1 to 256 characters")
    view = await run_in_threadpool(state(request).store.session_view, session_id, limit)
    if view is None:
        raise HTTPException(404, f"no events with session_id {session_id!r}")
    return FastJSON(view)
