"""The explorer's queries (issue 15): any call or run, by any field, in any order.

Functions here take an open SQLAlchemy Connection and use Core only, so the
same SQL serves SQLite and PostgreSQL; `SqlStore` exposes them as thin
methods (`explore_events`, `run_totals`, `session_view`).
They read raw events: the explorer filters on what the rollups do not keep
(status, error text, ids) and in orders they cannot give (cost, latency).

Contract, kept small so that another storage can answer it the same way:

- `list_events(conn, q)`: one page of events in the order `q.sort` /
  `q.descending`, ties broken by arrival (`seq`) in the same direction, so
  the order is total and a keyset cursor (`q.after` = the sort value and seq
  of the previous page's last row) continues it exactly. Events that arrive
  while a client pages never shift a page: new rows can only land before the
  cursor (newer) or beyond it, never on a boundary already passed.
- `run_totals(...)`: each run's LLM-call totals over its whole subtree.
- `session_view(...)`: a session's top-level runs and calls in time order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, false, or_, select, tuple_

from agentwatch.store.codec import NameCache, decode, iso_from_us, pack_id, to_api, unpack_id
from agentwatch.store.dialect import Backend, backend
from agentwatch.store.tables import KIND_CODES, STATUS_CODES, STORED_COLUMNS, events

c = events.c
_STORED = [c[n] for n in STORED_COLUMNS]

# Sort keys the explorer offers, each a column (or an expression of columns)
# that is never NULL, so a keyset comparison needs no NULL cases.
SORT_KEYS: dict[str, Any] = {
    "time": c.ts,
    "cost": c.cost_usd,
    "latency": c.latency_ms,
    "tokens": c.input_tokens + c.output_tokens,
}
# Exact-match filters on names, by field, and the stored reference column of
# each. Only these names reach SQL as columns.
NAME_EQUALS: dict[str, str] = {
    "agent_name": "agent_ref",
    "task_name": "task_ref",
    "model": "model_ref",
    "provider": "provider_ref",
    "user_id": "user_ref",
    "session_id": "session_ref",
}
ID_EQUALS: tuple[str, ...] = ("trace_id", "parent_id")
EQUALS: tuple[str, ...] = (*NAME_EQUALS, "status", "kind", *ID_EQUALS)
# Breakdown groups the explorer adds to the metrics breakdown's three.
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
    return pack_id(value) if backend(conn) is Backend.SQLITE else value


def conditions(conn: Connection, names: NameCache, q: EventQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q.since_us is not None:
        conds.append(c.ts >= q.since_us)
    if q.until_us is not None:
        conds.append(c.ts <= q.until_us)
    for name, col in NAME_EQUALS.items():
        v = getattr(q, name)
        if v is not None:
            ref = names.find_ref(conn, v)
            conds.append(c[col] == ref if ref is not None else false())
    if q.status is not None:
        conds.append(c.status == STATUS_CODES[q.status])
    if q.kind is not None:
        conds.append(c.kind == KIND_CODES[q.kind])
    for name in ID_EQUALS:
        v = getattr(q, name)
        if v is not None:
            conds.append(c[name] == _id_param(conn, v))
    if q.event_id is not None:
        conds.append(c.id == _id_param(conn, q.event_id))
    if q.error_contains:
        # lower(x) LIKE lower(pattern) on both backends; % and _ are escaped.
        conds.append(c.error_message.icontains(q.error_contains, autoescape=True))
    return conds


def list_events(conn: Connection, names: NameCache, q: EventQuery) -> dict[str, Any]:
    """{"events": [...], "next": [sort value, seq] or None}: one page, and the
    keyset of its last row when more rows follow."""
    if q.sort not in SORT_KEYS:  # the API validates too; never trust a name
        raise ValueError(f"cannot sort by {q.sort!r}")
    key = SORT_KEYS[q.sort]
    conds = conditions(conn, names, q)
    if q.after is not None:
        value, seq = q.after
        here = tuple_(key, c.seq)
        there = tuple_(value, seq)
        conds.append(here < there if q.descending else here > there)
    order = [key.desc(), c.seq.desc()] if q.descending else [key.asc(), c.seq.asc()]
    stmt = (
        select(*_STORED, c.seq, key)
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
        nxt = [rows[-1][-1], int(rows[-1][-2])]
    width = len(_STORED)
    got = decode(conn, names, [tuple(r[:width]) for r in rows])
    return {"events": [to_api(r) for r in got], "next": nxt}


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
                if r[3] == _ERROR:
                    t["failed_steps"] += 1
                if r[2] == _LLM:
                    t["llm_calls"] += 1
                    t["cost_usd"] += float(r[4] or 0)
                    t["input_tokens"] += int(r[5] or 0)
                    t["output_tokens"] += int(r[6] or 0)
                elif r[2] == _TOOL:
                    t["tool_calls"] += 1
        t["cost_usd"] = round(t["cost_usd"], 10)
        out[run] = t
    return out


_LLM, _TOOL, _TASK = KIND_CODES["llm"], KIND_CODES["tool"], KIND_CODES["task"]
_ERROR = STATUS_CODES["error"]


def _tree_rows(rows: Iterable[Any]) -> list[tuple[Any, ...]]:
    return [(unpack_id(r[0]), None if r[1] is None else unpack_id(r[1]), *r[2:]) for r in rows]


def _ids_in(col: Any, values: Iterable[str | bytes]) -> ColumnElement[bool]:
    """col IN values, for ids as stored: on SQLite a mix of packed UUIDs
    (bytes) and other ids (text). One IN list binds all its values with one
    type, so each kind gets a list of its own."""
    packed = [v for v in values if isinstance(v, bytes)]
    plain = [v for v in values if not isinstance(v, bytes)]
    if not packed:
        return col.in_(plain)
    if not plain:
        return col.in_(packed)
    return or_(col.in_(packed), col.in_(plain))


def run_totals(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Totals of each stored task run among `run_ids`: the LLM calls (cost,
    tokens, count), tool calls and failed steps of its whole subtree, nested
    runs included. Ids that are not stored runs are left out."""
    if not run_ids:
        return {}
    found = conn.execute(
        select(c.id, c.trace_id).where(
            _ids_in(c.id, [_id_param(conn, i) for i in run_ids]), c.kind == _TASK
        )
    ).all()
    runs = {unpack_id(i): t for i, t in found}  # trace ids as stored
    if not runs:
        return {}
    rows: list[tuple[Any, ...]] = []
    traces = {t for t in runs.values() if t is not None}
    if traces:
        # Everything a top-level run did shares its trace_id (ix_events_trace).
        rows += _tree_rows(conn.execute(select(*_TREE_COLS).where(_ids_in(c.trace_id, traces))))
    # Runs without a trace: walk parent_id level by level.
    frontier = [r for r, t in runs.items() if t is None]
    depth = 0
    while frontier and depth < MAX_DEPTH:
        parents = [_id_param(conn, x) for x in frontier]
        level = _tree_rows(conn.execute(select(*_TREE_COLS).where(_ids_in(c.parent_id, parents))))
        rows += level
        frontier = [r[0] for r in level if r[2] == _TASK]
        depth += 1
    return _subtree_totals(runs, rows)


def session_view(
    conn: Connection, names: NameCache, session_id: str, limit: int = 1000
) -> dict[str, Any] | None:
    """A session's top-level runs and calls in time order, each run with its
    subtree totals, and the session's totals; None if no event has this id.

    Top level: events without a parent, or whose parent is outside the session.
    The session's cost is the sum over its items (a standalone call's own
    cost, a run's subtree), so calls nested in a run count once.
    """
    ref = names.find_ref(conn, session_id)
    if ref is None:
        return None
    stmt = (
        select(*_STORED)
        .where(c.session_ref == ref)
        .order_by(c.ts, c.seq)
        .limit(SESSION_EVENTS_MAX + 1)
    )
    rows = [tuple(r) for r in conn.execute(stmt)]
    if not rows:
        return None
    truncated = len(rows) > SESSION_EVENTS_MAX
    evs = [to_api(r) for r in decode(conn, names, rows[:SESSION_EVENTS_MAX])]
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
    ts = STORED_COLUMNS.index("ts")
    first = min(int(r[ts]) for r in rows)
    last = max(int(r[ts]) for r in rows)
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
    "list_events",
    "run_totals",
    "session_view",
]
