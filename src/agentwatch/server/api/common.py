"""Helpers shared by the routers: periods, filters, time conversion."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

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


class FastJSON(Response):
    """JSON via orjson: the query endpoints return thousands of floats."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def now_us() -> int:
    return int(time.time() * 1_000_000)


def to_us(dt: datetime) -> int:
    """Exact epoch microseconds (naive means UTC). Any datetime a query can
    name, year 1 to 9999 with any offset, fits a 64-bit integer."""
    return epoch_us(dt)


def period_range(period: str) -> tuple[int, int]:
    """[start, end] in epoch microseconds; 'all' starts at the epoch."""
    end = now_us()
    secs = PERIOD_SECONDS[period]
    return (0 if secs is None else end - secs * 1_000_000), end


def state(request: Request) -> AppState:
    st: AppState = request.app.state.aw
    return st


def dims(agent_name: str | None, model: str | None, task_name: str | None) -> Filters:
    return Filters(agent_name=agent_name or None, model=model or None, task_name=task_name or None)


__all__ = ["run_in_threadpool"]
