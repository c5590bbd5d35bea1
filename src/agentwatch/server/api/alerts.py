"""Alert rules: /api/alerts (issue 13). Reading needs a read key, changing an
admin key. Evaluation and delivery: server/alerting.py."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentwatch.clock import now_us
from agentwatch.server.alerting import payload
from agentwatch.server.api.common import iso_us, run_in_threadpool, state
from agentwatch.server.auth import requires
from agentwatch.store.alerts import AlertRule, RuleExists

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

Metric = Literal[
    "cost", "requests", "tokens", "error_rate", "latency_p50", "latency_p95", "calls_per_run"
]
Window = Literal["5m", "15m", "1h", "6h", "24h", "7d", "day", "month"]
Operator = Literal[">", ">=", "<", "<="]
Name = Annotated[str, Field(min_length=1, max_length=128)]


class AlertFilters(BaseModel):
    """Which LLM calls the rule counts; any of the three, exact names."""

    model_config = ConfigDict(extra="forbid")
    agent_name: Annotated[str, Field(max_length=256)] | None = None
    task_name: Annotated[str, Field(max_length=256)] | None = None
    model: Annotated[str, Field(max_length=256)] | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


def _url(v: str | None) -> str | None:
    if v is None:
        return v
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return v


def _finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    metric: Metric
    window: Window
    operator: Operator
    threshold: float
    filters: AlertFilters = Field(default_factory=AlertFilters)
    webhook_url: Annotated[str, Field(max_length=2048)]
    secret: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    renotify_minutes: Annotated[int, Field(ge=1, le=10080)] | None = None

    _check_url = field_validator("webhook_url")(_url)
    _check_threshold = field_validator("threshold")(_finite)


class AlertPatch(BaseModel):
    """Fields to change; `secret` or `renotify_minutes` null removes it."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    metric: Metric | None = None
    window: Window | None = None
    operator: Operator | None = None
    threshold: float | None = None
    filters: AlertFilters | None = None
    webhook_url: Annotated[str, Field(max_length=2048)] | None = None
    secret: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    renotify_minutes: Annotated[int, Field(ge=1, le=10080)] | None = None

    _check_url = field_validator("webhook_url")(_url)
    _check_threshold = field_validator("threshold")(_finite)


_NOT_NULL = ("name", "metric", "window", "operator", "threshold", "filters", "webhook_url")


def _iso(us: int | None) -> str | None:
    return None if us is None else iso_us(us)


def rule_out(r: AlertRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "metric": r.metric,
        "window": r.window,
        "operator": r.operator,
        "threshold": r.threshold,
        "filters": r.filters,
        "webhook_url": r.webhook_url,
        "has_secret": bool(r.secret),
        "renotify_minutes": r.renotify_minutes,
        # null until the first evaluation
        "state": r.state,
        "value": r.value,
        "evaluated_at": _iso(r.evaluated_at),
        "state_since": _iso(r.since),
        "notified": r.notified,
        "created_at": _iso(r.created_at),
        "updated_at": _iso(r.updated_at),
    }


def _taken(name: str) -> HTTPException:
    return HTTPException(
        409,
        [{"loc": ["body", "name"], "msg": f"a rule named {name!r} exists", "type": "conflict"}],
    )


async def _rule(request: Request, rule_id: int) -> AlertRule:
    r = await run_in_threadpool(state(request).store.get_alert, rule_id)
    if r is None:
        raise HTTPException(404, f"no alert rule {rule_id}")
    return r


@router.post("", status_code=201, summary="Create an alert rule", openapi_extra=requires("admin"))
async def create(request: Request, body: AlertIn) -> Any:
    values = body.model_dump(exclude={"filters"})
    values["filters"] = body.filters.as_dict()
    store = state(request).store
    try:
        rid = await run_in_threadpool(store.add_alert, values)
    except RuleExists:
        raise _taken(body.name) from None
    return rule_out(await _rule(request, rid))


@router.get("", summary="Every alert rule with its state and last value")
async def list_rules(request: Request) -> Any:
    st = state(request)
    rules = await run_in_threadpool(st.store.list_alerts)
    return {
        "alerts": [rule_out(r) for r in rules],
        "firing": sum(r.state == "firing" for r in rules),
        # Whether this server holds the evaluator lease (one server evaluates).
        "evaluating_here": bool(st.evaluator is not None and st.evaluator.leader),
    }


@router.get("/{rule_id}", summary="One alert rule")
async def get_rule(request: Request, rule_id: int) -> Any:
    return rule_out(await _rule(request, rule_id))


@router.patch("/{rule_id}", summary="Change an alert rule", openapi_extra=requires("admin"))
async def patch_rule(request: Request, rule_id: int, body: AlertPatch) -> Any:
    given = body.model_fields_set
    for f in _NOT_NULL:
        if f in given and getattr(body, f) is None:
            raise HTTPException(
                422, [{"loc": ["body", f], "msg": "may not be null", "type": "value_error"}]
            )
    values = {f: getattr(body, f) for f in given if f != "filters"}
    if "filters" in given and body.filters is not None:
        values["filters"] = body.filters.as_dict()
    store = state(request).store
    await _rule(request, rule_id)
    if values:
        try:
            await run_in_threadpool(store.update_alert, rule_id, values)
        except RuleExists:
            raise _taken(str(values.get("name"))) from None
    return rule_out(await _rule(request, rule_id))


@router.delete(
    "/{rule_id}", summary="Delete an alert rule and its history", openapi_extra=requires("admin")
)
async def delete_rule(request: Request, rule_id: int) -> Any:
    if not await run_in_threadpool(state(request).store.delete_alert, rule_id):
        raise HTTPException(404, f"no alert rule {rule_id}")
    return {"deleted": rule_id}


@router.get("/{rule_id}/history", summary="State changes and delivery attempts, newest first")
async def rule_history(
    request: Request, rule_id: int, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> Any:
    await _rule(request, rule_id)
    rows = await run_in_threadpool(state(request).store.alert_history, rule_id, limit)
    out = []
    for h in rows:
        e: dict[str, Any] = {"time": iso_us(h["ts"]), "event": h["event"], "value": h["value"]}
        if h["event"] == "state":
            e.update(state=h["state"], previous=h["prev_state"])
        else:
            e.update(
                notification=h["state"],
                delivery_id=h["delivery_id"],
                attempt=h["attempt"],
                outcome=h["outcome"],
                detail=h["detail"],
            )
        out.append(e)
    return {"history": out}


@router.post(
    "/{rule_id}/test",
    status_code=202,
    summary="Queue a test notification to the rule's webhook",
    openapi_extra=requires("admin"),
)
async def test_rule(request: Request, rule_id: int) -> Any:
    r = await _rule(request, rule_id)
    st = state(request)
    body = payload(r, "test", r.value, now_us(), st.settings.dashboard_url)
    did = await run_in_threadpool(st.store.queue_alert_delivery, r.id, "test", body)
    if st.evaluator is not None and st.evaluator.on_queued is not None:
        st.evaluator.on_queued()
    return {"queued": did}
