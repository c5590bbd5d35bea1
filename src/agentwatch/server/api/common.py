"""Helpers shared by the routers: periods, filters, time conversion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentwatch.clock import now_us
from agentwatch.schema import epoch_us
from agentwatch.server.state import AppState
from agentwatch.store.base import Filters

Period = Literal["1h", "24h", "7d", "30d", "all"]
PERIOD_SECONDS: dict[str, int | None] = {
    "1h": 3600,
    "24h": 86_400,
    "7d": 7 * 86_400,
    "30d": 30 * 86_400,
    "all": None,
}

AgentQ = Annotated[str | None, Query(max_length=256, description="Only this agent")]
ModelQ = Annotated[str | None, Query(max_length=256, description="Only this model")]
TaskQ = Annotated[str | None, Query(max_length=256, description="Only this task")]
SinceQ = Annotated[
    datetime | None,
    Query(description="Window start, inclusive (ISO 8601; naive means UTC); overrides period"),
]
UntilQ = Annotated[
    datetime | None,
    Query(description="Window end, inclusive (ISO 8601; naive means UTC); default now"),
]


class FastJSON(Response):
    """JSON via orjson: the query endpoints return thousands of floats."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def to_us(dt: datetime) -> int:
    """Exact epoch microseconds (naive means UTC). Any datetime a query can
    name, year 1 to 9999 with any offset, fits a 64-bit integer."""
    return epoch_us(dt)


def period_range(period: str) -> tuple[int, int]:
    """[start, end] in epoch microseconds; 'all' starts at the epoch."""
    end = now_us()
    secs = PERIOD_SECONDS[period]
    return (0 if secs is None else end - secs * 1_000_000), end


def window(period: str, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    """[start, end] of a metrics request: `period` back from now, or a custom
    window. `until` alone keeps the period's length and ends there; `since`
    alone runs to now."""
    if since is None and until is None:
        return period_range(period)
    end = to_us(until) if until is not None else now_us()
    if since is not None:
        start = to_us(since)
    else:
        secs = PERIOD_SECONDS[period]
        start = 0 if secs is None else end - secs * 1_000_000
    if start > end:
        raise HTTPException(422, "since must not be later than until")
    return start, end


def iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat()


def state(request: Request) -> AppState:
    st: AppState = request.app.state.aw
    return st


def dims(agent_name: str | None, model: str | None, task_name: str | None) -> Filters:
    return Filters(agent_name=agent_name or None, model=model or None, task_name=task_name or None)


__all__ = ["run_in_threadpool"]
