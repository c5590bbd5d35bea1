"""Reprice (issue 14): recompute stored LLM-call costs from a price book.

Only events priced by the server are touched: a call that came with its
own `cost_usd` (FLAG_CLIENT_COST) keeps it. For each other LLM call from
`since` on, the cost is recomputed from its tokens, model and provider with
the given rates, and FLAG_FALLBACK_PRICE follows the new rates (set when
the model is still unknown, cleared when the price file now names it).

Changed events are written a chunk per transaction, and each transaction
also marks the days it changed dirty (rollups.mark_dirty): until the
writer's recount (store.recount_dirty) has rebuilt a day's pre-aggregates
from its raw events, queries read that day raw, so metrics are right from
the moment a chunk commits. A dry run reads the same events and writes
nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text, tuple_, update

from agentwatch.pricing import Rates
from agentwatch.store import rollups as ru
from agentwatch.store.codec import NameCache
from agentwatch.store.tables import FLAG_CLIENT_COST, FLAG_FALLBACK_PRICE, KIND_CODES, events
from agentwatch.store.unbuilt import bump_generation

c = events.c
CHUNK = 5000
_COLS = [
    c.seq,
    c.ts,
    c.id,
    c.model_ref,
    c.provider_ref,
    c.input_tokens,
    c.output_tokens,
    c.cache_read_tokens,
    c.cache_write_tokens,
    c.cost_usd,
    c.flags,
]


@dataclass
class ModelChange:
    events: int = 0  # events whose cost or fallback flag changed
    old_usd: float = 0.0
    new_usd: float = 0.0


@dataclass
class RepriceResult:
    scanned: int = 0  # server-priced LLM calls looked at
    changed: int = 0
    days: set[int] = field(default_factory=set)  # UTC days whose rollups are recounted
    by_model: dict[str, ModelChange] = field(default_factory=dict)

    @property
    def old_usd(self) -> float:
        return sum(m.old_usd for m in self.by_model.values())

    @property
    def new_usd(self) -> float:
        return sum(m.new_usd for m in self.by_model.values())


def reprice(
    engine: Engine,
    write: Callable[[], contextlib.AbstractContextManager[Connection]],
    names: NameCache,
    rates: Callable[[str, str | None], Rates],
    since_us: int,
    until_us: int | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
    progress: Callable[[RepriceResult], None] | None = None,
) -> RepriceResult:
    """Recompute the costs of server-priced LLM calls with since <= ts (<= until)."""
    out = RepriceResult()
    conds: list[Any] = [
        c.kind == KIND_CODES["llm"],
        c.ts >= since_us,
        text(f"(flags & {FLAG_CLIENT_COST}) = 0"),
    ]
    if until_us is not None:
        conds.append(c.ts <= until_us)
    last: tuple[int, Any] | None = None
    stmt = (
        update(events)
        .where(c.seq == bindparam("k_seq"))
        .values(cost_usd=bindparam("k_cost"), flags=bindparam("k_flags"))
    )
    while True:
        with engine.connect() as conn:
            q = select(*_COLS).where(*conds)
            if last is not None:
                q = q.where(tuple_(c.ts, c.id) > tuple_(*last))
            rows = conn.execute(q.order_by(c.ts, c.id).limit(chunk)).all()
            if not rows:
                break
            name = names.names(conn, {r[3] for r in rows} | {r[4] for r in rows if r[4]})
        last = (int(rows[-1][1]), rows[-1][2])
        changes = []
        days = set()
        for seq, ts, _, mref, pref, tin, tout, cr, cw, cost, flags in rows:
            model = name[mref]
            r = rates(model, name[pref] if pref else None)
            new = r.cost(tin, tout, cr, cw)
            nflags = (flags & ~FLAG_FALLBACK_PRICE) | (
                FLAG_FALLBACK_PRICE if r.source == "fallback" else 0
            )
            if new == cost and nflags == flags:
                continue
            m = out.by_model.setdefault(model, ModelChange())
            m.events += 1
            m.old_usd += cost
            m.new_usd += new
            changes.append({"k_seq": seq, "k_cost": new, "k_flags": nflags})
            days.add(int(ts) - int(ts) % ru.DAY_US)
        out.scanned += len(rows)
        out.changed += len(changes)
        out.days |= days
        if changes and not dry_run:
            with write() as conn:
                conn.execute(stmt, changes)
                bump_generation(conn)  # stored costs changed: tails held in memory are stale
                ru.mark_dirty(conn, days, ru.now_us())
        if progress is not None:
            progress(out)
        if len(rows) < chunk:
            break
    return out


__all__ = ["ModelChange", "RepriceResult", "reprice"]
