"""The events past the rollup watermark, kept in memory by the process that
answers metrics queries (SQLite only).

Every metrics query adds the events committed but not yet built into the
rollups (the "tail", store/rollups.py) from the raw table. While ingest runs
flat out that tail holds up to a few seconds of events (50,000 and more),
and reading it back with a GROUP BY costs about 2 microseconds an event,
once per query part: a 24-hour summary spent 100 ms on it, against 7 ms
once the tail is built. Most of those events were already read by the
previous query.

`Unbuilt` holds them as numpy columns. Each query, inside its own read
snapshot, reads only the events committed since the last one (`seq` past
the newest held: on SQLite one writer commits in seq order, so nothing can
appear below it later), drops those the watermark has passed, and sums the
rest per (group, latency bin) with numpy, giving the same rows the SQL tail
gives. Counts and token sums are exact; cost and latency sums are float sums
in another order (a difference in the last bits).

What invalidates it: any change to stored events other than appending them
(retention's deletes, `reprice`) bumps the store_state counter `events_gen`
in the same transaction; a query that sees a new value reloads the tail. A
watermark behind what is held (a snapshot older than the last sync, or a
rebuild) and a tail larger than MAX_ROWS are answered by the SQL tail.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, func, select

from agentwatch.store import rollups as ru
from agentwatch.store.dialect import placeholder
from agentwatch.store.rollups import REF_COLUMN, _set_state, _state
from agentwatch.store.tables import events

GENERATION = "events_gen"

# More events than this past the watermark (the builder fell far behind):
# not held, the SQL tail answers.
MAX_ROWS = 250_000


def bump_generation(conn: Connection) -> None:
    """Say, inside the write transaction that changes or deletes stored
    events, that tails held in memory are stale."""
    _set_state(conn, GENERATION, (_state(conn, GENERATION) or 0) + 1)


@dataclass
class TailSums:
    """Per (group, latency bin): the sums raw_select's SQL gives, as arrays."""

    g: np.ndarray
    bins: np.ndarray
    n: np.ndarray
    errors: np.ndarray
    cost: np.ndarray
    latency_sum: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


def _trunc_div(a: np.ndarray, b: int) -> np.ndarray:
    """Integer division rounding toward zero, as SQL's `/` on integers."""
    q = a // b
    return q + ((a < 0) & (q * b != a))


class Unbuilt:
    """The tail of one store, shared by the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cols = ru.fold_array([])  # the builder's columns (rollups.FOLD_COLUMNS)
        self._base = -1  # the watermark the held rows start after (-1: nothing held)
        self._top = -1  # the newest seq held
        self._gen: int | None = None

    def _read(self, conn: Connection, after: int, upto: int) -> np.ndarray:
        p = placeholder(conn)
        return ru._read(conn, f"seq > {p} AND seq <= {p} ORDER BY seq", (after, upto))

    def columns(self, conn: Connection, watermark: int) -> np.ndarray | None:
        """The events with watermark < seq in this snapshot (`conn`'s read
        transaction), or None when the SQL tail must answer."""
        top = conn.execute(select(func.max(events.c.seq))).scalar()
        top = int(top or 0)
        gen = _state(conn, GENERATION) or 0
        if top - watermark > MAX_ROWS:
            return None
        with self._lock:
            fresh = self._gen == gen and self._base >= 0
            if fresh and top < self._top:
                # A snapshot older than the last sync: what it sees past the
                # watermark is what is held up to its newest seq.
                if watermark < self._base:
                    return None
                seq = self._cols["seq"]
                return self._cols[(seq > watermark) & (seq <= top)]
            if not fresh or watermark < self._base or watermark >= self._top:
                # (Past everything held, after a quiet spell: only the events
                # past the watermark are read, not all since the last query.)
                self._cols = self._read(conn, watermark, top)
                self._base, self._top, self._gen = watermark, top, gen
                return self._cols
            if top > self._top:
                self._cols = np.concatenate((self._cols, self._read(conn, self._top, top)))
                self._top = top
            if watermark > self._base:
                self._cols = self._cols[self._cols["seq"] > watermark]
                self._base = watermark
            return self._cols

    def sums(
        self,
        cols: np.ndarray,
        lo: int,
        hi: int,
        raw: list[tuple[int, int]],
        flt: dict[str, int],
        kind: int | None,
        group: str | None,
        origin_us: int,
        width_us: int | None,
        only: list[int] | None,
        by_bin: bool,
    ) -> TailSums:
        """What rollups.tail_where + raw_select give over these columns."""
        ts = cols["ts"]
        m = (ts >= lo) & (ts < hi)
        for ra, rb in raw:
            m &= ~((ts >= ra) & (ts < rb))
        if kind is not None:
            m &= cols["kind"] == kind
        for d, ref in flt.items():
            m &= cols[REF_COLUMN[d]] == ref
        if group in ("provider", "user_id", "session_id"):
            m &= cols[REF_COLUMN[group]] != 0
        if only is not None and group in REF_COLUMN:
            m &= np.isin(cols[REF_COLUMN[group]], np.asarray(only, np.int64))
        idx = np.flatnonzero(m)
        if width_us is not None:
            g = _trunc_div(ts[idx] - origin_us, width_us)
        elif group in REF_COLUMN:
            g = cols[REF_COLUMN[group]][idx]
        else:
            g = np.zeros(len(idx), np.int64)
        b = cols["latency_bin"][idx] if by_bin else np.zeros(len(idx), np.int64)
        if not len(idx):
            e = np.empty(0, np.int64)
            f = np.empty(0, np.float64)
            return TailSums(e, e, e, e, f, f, e, e)
        # Group by (g, bin): sort once, then sum each run of equal keys.
        order = np.lexsort((b, g))
        gs, bs = g[order], b[order]
        starts = np.flatnonzero(np.r_[True, (gs[1:] != gs[:-1]) | (bs[1:] != bs[:-1])])
        rows = idx[order]

        def total(name: str) -> np.ndarray:
            return np.add.reduceat(cols[name][rows], starts)

        return TailSums(
            g=gs[starts],
            bins=bs[starts],
            n=np.diff(np.r_[starts, len(rows)]).astype(np.int64),
            errors=total("status"),
            cost=total("cost_usd"),
            latency_sum=total("latency_ms"),
            input_tokens=total("input_tokens"),
            output_tokens=total("output_tokens"),
        )


__all__ = ["GENERATION", "MAX_ROWS", "TailSums", "Unbuilt", "bump_generation"]
