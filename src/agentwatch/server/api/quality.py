"""GET /api/metrics/quality and GET /api/quality/events: which numbers are estimates."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from agentwatch.server.api.common import (
    FastJSON,
    Period,
    SinceQ,
    UntilQ,
    iso_us,
    run_in_threadpool,
    state,
    window,
)
from agentwatch.store.base import Filters

router = APIRouter(prefix="/api", tags=["quality"])

FlagQ = Literal["usage_missing", "fallback_price", "partial"]
MAX_LIST = 50  # providers or models listed per count
WHAT = {
    "usage_missing": "LLM calls whose provider reported no token usage (tokens, cost unknown)",
    "fallback_price": "LLM calls priced at the fallback rate: the model is not in the price book",
    "partial": "streams that ended early: the numbers cover the part received",
}


def _link(flag: str, lo: int, hi: int, **extra: str | None) -> str:
    q = {"flag": flag, "since": iso_us(lo), "until": iso_us(hi)}
    q.update({k: v for k, v in extra.items() if v is not None})
    return "api/quality/events?" + urlencode(q)


def _listed(counts: dict[Any, int], key: str, flag: str, lo: int, hi: int) -> list[dict[str, Any]]:
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
    out = []
    for name, n in rows[:MAX_LIST]:
        # A provider of None (not reported) has no filter value: its link is the flag's.
        extra = {key: name} if name is not None else {}
        out.append({"name": name, "count": n, "link": _link(flag, lo, hi, **extra)})
    return out


@router.get("/metrics/quality", summary="Data quality: estimated numbers and refused events")
async def quality(
    request: Request,
    period: Period = "24h",
    since: SinceQ = None,
    until: UntilQ = None,
) -> Any:
    """Over the window: how many LLM calls had no usage reported (by
    provider), were priced at the fallback rate (by model), or were streams
    that ended early; and how many ingest requests were refused (by HTTP
    status, with the invalid events they named). Each count has a `link`,
    the query of the matching event list (GET /api/quality/events)."""
    lo, hi = window(period, since, until)
    st = state(request)
    counts = await run_in_threadpool(st.store.quality_counts, lo, hi)
    summary = await run_in_threadpool(st.store.summary, lo, hi, Filters())
    rejected = await run_in_threadpool(st.store.rejects, lo, hi)
    out: dict[str, Any] = {
        "since": iso_us(lo),
        "until": iso_us(hi),
        "llm_calls": summary.llm.requests,
    }
    for flag, c in counts.items():
        out[flag] = {
            "count": c["count"],
            "what": WHAT[flag],
            "link": _link(flag, lo, hi),
            "by_provider": _listed(c["by_provider"], "provider", flag, lo, hi),
            "by_model": _listed(c["by_model"], "model", flag, lo, hi),
        }
    out["rejected"] = {
        "requests": sum(n for n, _ in rejected.values()),
        "events": sum(e for _, e in rejected.values()),
        "what": "ingest requests refused (nothing of them was stored), per UTC day touched "
        "by the window; events: the invalid events their answers named",
        "by_code": [
            {"code": code, "requests": n, "events": e} for code, (n, e) in sorted(rejected.items())
        ],
    }
    return FastJSON(out)


def _cursor(ts: int, eid: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, eid])).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[int, str]:
    try:
        ts, eid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(ts, int) and not isinstance(ts, bool) and isinstance(eid, str):
            return ts, eid
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("query", "cursor"),
                "msg": "not a cursor returned by this endpoint",
                "input": cursor,
            }
        ]
    )


@router.get("/quality/events", summary="The LLM calls behind a data-quality count")
async def quality_events(
    request: Request,
    flag: FlagQ,
    period: Period = "24h",
    since: SinceQ = None,
    until: UntilQ = None,
    provider: Annotated[str | None, Query(max_length=256)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Any:
    """Newest first; `next_cursor`, passed back as `cursor`, gives the next page."""
    lo, hi = window(period, since, until)
    after = _uncursor(cursor) if cursor else None
    page = await run_in_threadpool(
        state(request).store.quality_events,
        flag,
        lo,
        hi,
        provider or None,
        model or None,
        after,
        limit,
    )
    nxt = page["next"]
    return FastJSON(
        {"events": page["events"], "next_cursor": None if nxt is None else _cursor(*nxt)}
    )
