"""Data quality (issue 14): which stored numbers are estimates, and what ingest refused.

- `counts(conn, names, lo, hi)`: LLM calls in lo <= ts <= hi whose usage
  was not reported, that were priced at the fallback rate (model unknown to
  the price book), or whose stream ended early: totals, per provider and
  per model. Read through the partial index ix_events_quality, so it costs
  the flagged events only, never the whole window.
- `flagged_events(...)`: one page of those events (newest first, keyset on
  (ts, id)), the list each count links to.
- `ingest_rejects`: refused ingest requests per UTC day and HTTP status
  (requests, and the invalid events they named), added by every server
  (`add_rejects`) and summed over a window by `rejects`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    PrimaryKeyConstraint,
    Table,
    func,
    select,
    text,
    tuple_,
)

from agentwatch.clock import DAY_US
from agentwatch.store.codec import NameCache, decode, pack_id, to_api
from agentwatch.store.tables import (
    FLAG_FALLBACK_PRICE,
    FLAG_PARTIAL,
    FLAG_USAGE_MISSING,
    KIND_CODES,
    STORED_COLUMNS,
    events,
    metadata,
)

ingest_rejects = Table(
    "ingest_rejects",
    metadata,
    Column("day", BigInteger, nullable=False),  # UTC midnight, epoch microseconds
    Column("code", Integer, nullable=False),  # HTTP status of the refusal
    Column("requests", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),  # invalid events the answers named
    PrimaryKeyConstraint("day", "code", name="pk_ingest_rejects"),
)

# The flags the view reports, by the name the API uses.
FLAGS: dict[str, int] = {
    "usage_missing": FLAG_USAGE_MISSING,
    "fallback_price": FLAG_FALLBACK_PRICE,
    "partial": FLAG_PARTIAL,
}
# Exactly the predicate of ix_events_quality, written out so that both
# backends match the partial index (a bound parameter would not).
_FLAGGED = text("(flags & 14) != 0")

c = events.c
_STORED = [c[n] for n in STORED_COLUMNS]
_TS = STORED_COLUMNS.index("ts")
_ID = STORED_COLUMNS.index("id")


def create_table(conn: Connection) -> None:
    """Migration 12."""
    metadata.create_all(conn, tables=[ingest_rejects])


def counts(conn: Connection, names: NameCache, lo: int, hi: int) -> dict[str, Any]:
    """{flag: {"count": n, "by_provider": {name|None: n}, "by_model": {name: n}}}."""
    q = (
        select(c.flags, c.provider_ref, c.model_ref, func.count())
        .where(_FLAGGED, c.ts >= lo, c.ts <= hi, c.kind == KIND_CODES["llm"])
        .group_by(c.flags, c.provider_ref, c.model_ref)
    )
    rows = conn.execute(q).all()
    refs = {r for row in rows for r in (row[1], row[2]) if r}
    name = names.names(conn, refs)
    out: dict[str, Any] = {}
    for flag, bit in FLAGS.items():
        total = 0
        by_provider: dict[str | None, int] = defaultdict(int)
        by_model: dict[str, int] = defaultdict(int)
        for flags, prov, model, n in rows:
            if int(flags) & bit:
                total += int(n)
                by_provider[name[prov] if prov else None] += int(n)
                by_model[name[model]] += int(n)
        out[flag] = {"count": total, "by_provider": by_provider, "by_model": by_model}
    return out


def flagged_events(
    conn: Connection,
    names: NameCache,
    flag: str,
    lo: int,
    hi: int,
    provider: str | None,
    model: str | None,
    after: tuple[int, str] | None,
    limit: int,
) -> dict[str, Any]:
    """One page of LLM calls carrying `flag` (newest first); "next" is the
    (ts, id) to pass as `after` for the next page, or None."""
    bit = FLAGS[flag]
    conds: list[Any] = [
        _FLAGGED,
        c.flags.op("&")(bit) != 0,
        c.ts >= lo,
        c.ts <= hi,
        c.kind == KIND_CODES["llm"],
    ]
    for value, col in ((provider, c.provider_ref), (model, c.model_ref)):
        if value is not None:
            ref = names.find_ref(conn, value)
            if ref is None:
                return {"events": [], "next": None}
            conds.append(col == ref)
    if after is not None:
        ts, eid = after
        stored_id = pack_id(eid) if conn.dialect.name == "sqlite" else eid
        conds.append(tuple_(c.ts, c.id) < tuple_(ts, stored_id))
    q = select(*_STORED).where(*conds).order_by(c.ts.desc(), c.id.desc()).limit(limit + 1)
    rows = [tuple(r) for r in conn.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    got = [to_api(r) for r in decode(conn, names, rows)]
    nxt = None
    if more and got:
        nxt = (int(rows[-1][_TS]), got[-1]["id"])
    return {"events": got, "next": nxt}


def _upsert(conn: Connection, day: int, code: int, n: int, ev: int) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(ingest_rejects).values(day=day, code=code, requests=n, events=ev)
    t = ingest_rejects.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.day, t.code],
        set_={"requests": t.requests + n, "events": t.events + ev},
    )
    conn.execute(stmt)


def add_rejects(engine: Engine, now_us: int, by_code: dict[int, list[int]]) -> None:
    """Add refused-request counts ({status: [requests, invalid events]}) to today's rows."""
    day = now_us - now_us % DAY_US
    with engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
        for code, (n, ev) in sorted(by_code.items()):
            _upsert(conn, day, int(code), int(n), int(ev))


def rejects(conn: Connection, lo: int, hi: int) -> dict[int, list[int]]:
    """{status: [requests, invalid events]} over the days lo..hi touch."""
    t = ingest_rejects.c
    q = (
        select(t.code, func.sum(t.requests), func.sum(t.events))
        .where(t.day >= lo - lo % DAY_US, t.day <= hi)
        .group_by(t.code)
    )
    return {int(code): [int(n or 0), int(ev or 0)] for code, n, ev in conn.execute(q)}


__all__ = ["FLAGS", "add_rejects", "counts", "flagged_events", "ingest_rejects", "rejects"]
