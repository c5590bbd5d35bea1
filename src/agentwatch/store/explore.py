"""The explorer's queries (issue 15): any call or run, by any field, in any order.

Functions here take an open SQLAlchemy Connection and use Core only, so the
same SQL serves SQLite and PostgreSQL; `SqlStore` exposes them as thin
methods (`explore_events`, `breakdown_raw`, `run_totals`, `session_view`).
They read raw events, never the rollups: the explorer filters on columns the
rollups do not keep (provider, user, session, status, error text).

Contract, kept small so that another storage can answer it the same way:

- `list_events(conn, q)`: one page of events in the order `q.sort` /
  `q.descending`, ties broken by arrival (`seq`) in the same direction, so
  the order is total and a keyset cursor (`q.after` = the sort value and seq
  of the previous page's last row) continues it exactly. Events that arrive
  while a client pages never shift a page: new rows can only land before the
  cursor (newer) or beyond it, never on a boundary already passed.
- `breakdown_by(...)`: the metrics breakdown's row shape for the columns the
  rollups do not hold.
- `run_totals(...)`: each run's LLM-call totals over its whole subtree.
- `session_view(...)`: a session's top-level runs and calls in time order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, or_, select, tuple_

from agentwatch.store.base import DIMENSIONS, Filters
from agentwatch.store.dialect import pack_id, unpack_id
from agentwatch.store.sketch import percentiles_by_group
from agentwatch.store.sql import iso_from_us, row_to_event
from agentwatch.store.tables import events

c = events.c
_PUBLIC = [col for col in events.columns if col.name not in ("seq", "latency_bin")]

# Sort keys the explorer offers, each a column (or an expression of columns)
# that is never NULL, so a keyset comparison needs no NULL cases.
SORT_KEYS: dict[str, Any] = {
    "time": c.ts,
    "cost": c.cost_usd,
    "latency": c.latency_ms,
    "tokens": c.input_tokens + c.output_tokens,
}
# Exact-match filters, by column name. Only these names reach SQL as columns.
EQUALS: tuple[str, ...] = (
    "agent_name",
    "task_name",
    "model",
    "status",
    "kind",
    "trace_id",
    "parent_id",
    "provider",
    "user_id",
    "session_id",
)
# Breakdown groups answered from raw events (the rollups group by DIMENSIONS).
RAW_GROUPS: tuple[str, ...] = ("provider", "user_id", "session_id")
# A run's subtree is walked this deep at most when it has no trace_id.
MAX_DEPTH = 16
# Events read for one session view; beyond this the answer says `truncated`.
SESSION_EVENTS_MAX = 5000


@dataclass(frozen=True, slots=True)
class EventQuery:
    """One page of `GET /api/events`: filters (None = no filter), order, page."""

    agent_name: str | None = None
    task_name: str | None = None
    model: str | None = None
    status: str | None = None
    kind: str | None = None
    trace_id: str | None = None
    parent_id: str | None = None
    provider: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    event_id: str | None = None
    # Case-insensitive substring of error_message.
    error_contains: str | None = None
    # Inclusive time range, epoch microseconds.
    since_us: int | None = None
    until_us: int | None = None
    sort: str = "time"
    descending: bool = True
    # Keyset: (sort value, seq) of the last row of the previous page.
    after: tuple[float | int, int] | None = None
    limit: int = 100
    offset: int = 0


def _id_param(conn: Connection, value: str) -> str | bytes:
    """An id as the backend stores it (SQLite keeps canonical UUIDs as bytes)."""
    return pack_id(value) if conn.dialect.name == "sqlite" else value


def _conditions(conn: Connection, q: EventQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q.since_us is not None:
        conds.append(c.ts >= q.since_us)
    if q.until_us is not None:
        conds.append(c.ts <= q.until_us)
    for name in EQUALS:
        v = getattr(q, name)
        if v is not None:
            conds.append(c[name] == v)
    if q.event_id is not None:
        conds.append(c.id == _id_param(conn, q.event_id))
    if q.error_contains:
        # lower(x) LIKE lower(pattern) on both backends; % and _ are escaped.
        conds.append(c.error_message.icontains(q.error_contains, autoescape=True))
    return conds


def list_events(conn: Connection, q: EventQuery) -> dict[str, Any]:
    """{"events": [...], "next": [sort value, seq] or None}: one page, and the
    keyset of its last row when more rows follow."""
    if q.sort not in SORT_KEYS:  # the API validates too; never trust a name
        raise ValueError(f"cannot sort by {q.sort!r}")
    key = SORT_KEYS[q.sort]
    conds = _conditions(conn, q)
    if q.after is not None:
        value, seq = q.after
        here = tuple_(key, c.seq)
        there = tuple_(value, seq)
        conds.append(here < there if q.descending else here > there)
    order = [key.desc(), c.seq.desc()] if q.descending else [key.asc(), c.seq.asc()]
    stmt = (
        select(*_PUBLIC, c.seq.label("_seq"), key.label("_key"))
        .where(*conds)
        .order_by(*order)
        .limit(q.limit + 1)  # one more says whether a next page exists
        .offset(q.offset)
    )
    rows = conn.execute(stmt).all()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = None
    if more and rows:
        last = rows[-1]._mapping
        nxt = [last["_key"], int(last["_seq"])]
    return {"events": [row_to_event(r) for r in rows], "next": nxt}


_ERR = func.sum(case((c.status == "error", 1), else_=0))


def breakdown_by(
    conn: Connection,
    group_by: str,
    start_us: int,
    end_us: int,
    f: Filters,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """LLM-call metrics per provider, user or session over [start, end], in
    the metrics breakdown's row shape, highest cost first (ties by name, the
    group of events without a value last). `name` is None for that group."""
    if group_by not in RAW_GROUPS:
        raise ValueError(f"cannot group by {group_by!r}")
    g = c[group_by]
    conds: list[ColumnElement[bool]] = [c.kind == "llm", c.ts >= start_us, c.ts <= end_us]
    conds += [c[n] == v for n in DIMENSIONS if (v := getattr(f, n)) is not None]
    cost = func.sum(c.cost_usd)
    stmt = (
        select(
            g.label("g"),
            func.count().label("n"),
            _ERR.label("errors"),
            cost.label("cost"),
            func.sum(c.latency_ms).label("lat"),
            func.sum(c.input_tokens).label("tin"),
            func.sum(c.output_tokens).label("tout"),
        )
        .where(*conds)
        .group_by(g)
        .order_by(cost.desc(), g.is_(None), g)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = conn.execute(stmt).all()
    if not rows:
        return []
    # Percentiles for the groups shown only: one GROUP BY over their latency bins.
    names = [r.g for r in rows]
    gidx = {name: i for i, name in enumerate(names)}
    which = [g.in_([n for n in names if n is not None])]
    if None in gidx:
        which.append(g.is_(None))
    bins = conn.execute(
        select(g, c.latency_bin, func.count()).where(*conds, or_(*which)).group_by(g, c.latency_bin)
    ).all()
    pcts = percentiles_by_group(
        [gidx[b[0]] for b in bins],
        [b[1] for b in bins],
        [b[2] for b in bins],
        len(names),
        (0.5, 0.95),
    )
    out = []
    for r, (p50, p95) in zip(rows, pcts, strict=True):
        n = int(r.n)
        errors = int(r.errors or 0)
        out.append(
            {
                "name": r.g,
                "requests": n,
                "avg_latency": round(float(r.lat or 0) / n, 3),
                "total_cost": float(r.cost or 0),
                "error_rate": round(100.0 * errors / n, 3),
                "errors": errors,
                "input_tokens": int(r.tin or 0),
                "output_tokens": int(r.tout or 0),
                "latency_p50": p50,
                "latency_p95": p95,
            }
        )
    return out


def _empty_totals() -> dict[str, Any]:
    return {
        "cost_usd": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "llm_calls": 0,
        "tool_calls": 0,
        "failed_steps": 0,
    }


_TREE_COLS = [
    c.id,
    c.parent_id,
    c.kind,
    c.status,
    c.cost_usd,
    c.input_tokens,
    c.output_tokens,
]


def _subtree_totals(runs: Iterable[str], rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Sum each run's descendants (LLM calls, tool calls, failures) from
    (id, parent_id, kind, status, cost, tokens in, tokens out) rows."""
    children: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        if r[1] is not None:
            children[r[1]].append(r)
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        t = _empty_totals()
        seen = {run}
        stack = [run]
        while stack:
            for r in children.get(stack.pop(), ()):
                if r[0] in seen:  # a cycle in bad data must not loop forever
                    continue
                seen.add(r[0])
                stack.append(r[0])
                if r[3] == "error":
                    t["failed_steps"] += 1
                if r[2] == "llm":
                    t["llm_calls"] += 1
                    t["cost_usd"] += float(r[4] or 0)
                    t["input_tokens"] += int(r[5] or 0)
                    t["output_tokens"] += int(r[6] or 0)
                elif r[2] == "tool":
                    t["tool_calls"] += 1
        t["cost_usd"] = round(t["cost_usd"], 10)
        out[run] = t
    return out


def _tree_rows(rows: Iterable[Any]) -> list[tuple[Any, ...]]:
    return [(unpack_id(r[0]), *r[1:]) for r in rows]


def run_totals(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Totals of each stored task run among `run_ids`: the LLM calls (cost,
    tokens, count), tool calls and failed steps of its whole subtree, nested
    runs included. Ids that are not stored runs are left out."""
    if not run_ids:
        return {}
    found = conn.execute(
        select(c.id, c.trace_id).where(
            c.id.in_([_id_param(conn, i) for i in run_ids]), c.kind == "task"
        )
    ).all()
    runs = {unpack_id(i): t for i, t in found}
    if not runs:
        return {}
    rows: list[tuple[Any, ...]] = []
    traces = {t for t in runs.values() if t is not None}
    if traces:
        # Everything a top-level run did shares its trace_id (ix_events_trace).
        rows += _tree_rows(conn.execute(select(*_TREE_COLS).where(c.trace_id.in_(traces))))
    # Runs without a trace: walk parent_id level by level.
    frontier = [r for r, t in runs.items() if t is None]
    depth = 0
    while frontier and depth < MAX_DEPTH:
        level = _tree_rows(conn.execute(select(*_TREE_COLS).where(c.parent_id.in_(frontier))))
        rows += level
        frontier = [r[0] for r in level if r[2] == "task"]
        depth += 1
    return _subtree_totals(runs, rows)


def session_view(conn: Connection, session_id: str, limit: int = 1000) -> dict[str, Any] | None:
    """A session's top-level runs and calls in time order, each run with its
    subtree totals, and the session's totals; None if no event has this id.

    Top level: events without a parent, or whose parent is outside the session.
    The session's cost is the sum over its items (a standalone call's own
    cost, a run's subtree), so calls nested in a run count once.
    """
    stmt = (
        select(*_PUBLIC, c.seq)
        .where(c.session_id == session_id)
        .order_by(c.ts, c.seq)
        .limit(SESSION_EVENTS_MAX + 1)
    )
    rows = conn.execute(stmt).all()
    if not rows:
        return None
    truncated = len(rows) > SESSION_EVENTS_MAX
    evs = [row_to_event(r) for r in rows[:SESSION_EVENTS_MAX]]
    ids = {e["id"] for e in evs}
    top = [e for e in evs if e["parent_id"] is None or e["parent_id"] not in ids]
    if len(top) > limit:
        top, truncated = top[:limit], True
    totals = run_totals(conn, [e["id"] for e in top if e["kind"] == "task"])
    s = _empty_totals()
    s.update(task_runs=0, errors=0)
    items = []
    for e in top:
        t = totals.get(e["id"]) if e["kind"] == "task" else None
        items.append({"event": e, "totals": t})
        if e["status"] == "error":
            s["errors"] += 1
        if t is not None:
            s["task_runs"] += 1
            for k in ("cost_usd", "input_tokens", "output_tokens", "llm_calls", "tool_calls"):
                s[k] += t[k]
            s["failed_steps"] += t["failed_steps"]
        elif e["kind"] == "llm":
            s["llm_calls"] += 1
            s["cost_usd"] += float(e["cost_usd"] or 0)
            s["input_tokens"] += int(e["input_tokens"] or 0)
            s["output_tokens"] += int(e["output_tokens"] or 0)
        elif e["kind"] == "tool":
            s["tool_calls"] += 1
    s["cost_usd"] = round(s["cost_usd"], 10)
    first = min(int(r._mapping["ts"]) for r in rows)
    last = max(int(r._mapping["ts"]) for r in rows)
    return {
        "session_id": session_id,
        "user_ids": sorted({e["user_id"] for e in evs if e["user_id"] is not None}),
        "agents": sorted({e["agent_name"] for e in evs}),
        "first": iso_from_us(first),
        "last": iso_from_us(last),
        "events": len(evs),
        "totals": s,
        "items": items,
        "truncated": truncated,
    }


__all__ = [
    "EQUALS",
    "RAW_GROUPS",
    "SORT_KEYS",
    "EventQuery",
    "breakdown_by",
    "list_events",
    "run_totals",
    "session_view",
]
