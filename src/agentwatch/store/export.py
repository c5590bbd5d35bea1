"""Export reads (issue 14): every event matching a filter, oldest first, in chunks.

`iter_events` walks the events with a keyset on the table's unique time
index (ts, id): each chunk is one short query on a connection of its own,
returned to the pool before the chunk is handed over, so an export of any
size holds one chunk in memory and never a read snapshot between chunks
(a client that downloads slowly blocks no writer, on either backend). The
filter conditions are explore.py's, so an export matches the event list
of the same query exactly.

Events committed while an export runs are included when their (ts, id)
lies past the cursor, and never twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, select, tuple_

from agentwatch.store.codec import NameCache, decode
from agentwatch.store.explore import EventQuery, conditions
from agentwatch.store.tables import STORED_COLUMNS, events

c = events.c
_STORED = [c[n] for n in STORED_COLUMNS]
_TS = STORED_COLUMNS.index("ts")
_ID = STORED_COLUMNS.index("id")

# Events per chunk: large enough that the query per chunk is noise, small
# enough that a chunk (rows, then its encoded text) stays a few megabytes.
CHUNK = 5000
# The first chunk is smaller, so that the first bytes leave at once.
FIRST_CHUNK = 500


def iter_events(
    engine: Engine, names: NameCache, q: EventQuery, chunk: int = CHUNK
) -> Iterator[list[tuple[Any, ...]]]:
    """Logical rows (tables.INSERT_COLUMNS order) of every event matching
    q's filters, by (ts, id) ascending, `chunk` at a time (the first one
    FIRST_CHUNK). q's sort, cursor, limit and offset are ignored."""
    q = replace(q, after=None, offset=0)
    last: tuple[int, Any] | None = None
    size = min(FIRST_CHUNK, chunk)
    while True:
        with engine.connect() as conn:
            conds = conditions(conn, names, q)
            if last is not None:
                conds.append(tuple_(c.ts, c.id) > tuple_(*last))
            stmt = select(*_STORED).where(*conds).order_by(c.ts, c.id).limit(size)
            rows = conn.execute(stmt).all()
            if not rows:
                return
            last = (int(rows[-1][_TS]), rows[-1][_ID])
            out = decode(conn, names, rows)
        yield out
        if len(rows) < size:
            return
        size = chunk


__all__ = ["CHUNK", "iter_events"]
