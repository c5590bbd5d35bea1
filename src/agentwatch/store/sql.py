"""The SQL store: one set of queries for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import ColumnElement, Connection, case, delete, func, literal_column, select, tuple_

from agentwatch.store.base import DIMENSIONS, Filters, InsertResult, Summary
from agentwatch.store.dialect import (
    NOTIFY_CHANNEL,
    SqliteCheckpointer,
    begin_write,
    make_engine,
    migration_lock,
    pg_copy_insert,
    sqlite_insert,
    unpack_id,
)
from agentwatch.store.migrations import upgrade
from agentwatch.store.rollups import (
    FOUR_HOURS_US,
    MINUTE_US,
    TOTAL,
    UNITS_US,
    Piece,
    apply_deltas,
    cover,
    decode_many,
    deltas,
    minute_floor,
    minute_write_floor,
    rebuild,
)
from agentwatch.store.sketch import percentiles_by_group
from agentwatch.store.tables import INSERT_COLUMNS, events
from agentwatch.store.tables import rollups as r

if TYPE_CHECKING:
    from agentwatch.store.explore import EventQuery

c = events.c
_ERR = func.sum(case((c.status == "error", 1), else_=0))
_PUBLIC = [col for col in events.columns if col.name not in ("seq", "latency_bin")]


def iso_from_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat()


def row_to_event(row: Any) -> dict[str, Any]:
    """A stored row as the API returns it (timestamp ISO with +00:00, metadata an object)."""
    d = dict(row._mapping)
    d["id"] = unpack_id(d["id"])
    d["timestamp"] = iso_from_us(d.pop("ts"))
    meta = d.get("metadata")
    d["metadata"] = orjson.loads(meta) if meta else {}
    return {
        "id": d["id"],
        "task_name": d["task_name"],
        "agent_name": d["agent_name"],
        "model": d["model"],
        "input_tokens": d["input_tokens"],
        "output_tokens": d["output_tokens"],
        "cache_read_tokens": d["cache_read_tokens"],
        "cache_write_tokens": d["cache_write_tokens"],
        "reasoning_tokens": d["reasoning_tokens"],
        "latency_ms": d["latency_ms"],
        "cost_usd": d["cost_usd"],
        "status": d["status"],
        "error_message": d["error_message"],
        "timestamp": d["timestamp"],
        "metadata": d["metadata"],
        "kind": d["kind"],
        "trace_id": d["trace_id"],
        "parent_id": d["parent_id"],
        "provider": d["provider"],
        "user_id": d["user_id"],
        "session_id": d["session_id"],
    }


class SqlStore:
    """Implements agentwatch.store.base.Store over a SQLAlchemy engine."""

    def __init__(self, db: str) -> None:
        self.engine, self.backend = make_engine(db)
        self._checkpointer: SqliteCheckpointer | None = None
        self._tail: Any = None

    def start_maintenance(self) -> None:
        """Background upkeep while serving (SQLite: WAL checkpoints)."""
        if self.backend == "sqlite" and self._checkpointer is None:
            self._checkpointer = SqliteCheckpointer(self.engine)
            self._checkpointer.start()

    # -- lifecycle -------------------------------------------------------
    def migrate(self) -> list[int]:
        with self.engine.connect() as conn, migration_lock(conn):
            return upgrade(conn)

    def start_tail(
        self,
        on_rows: Callable[[list[tuple[Any, ...]]], None],
        wanted: Callable[[], bool] | None = None,
    ) -> bool:
        """Feed `on_rows` (on a thread) with every event committed by any server
        sharing the database, in commit order; `wanted()` False means nobody
        listens and rows may be skipped. Returns False when the backend has no
        other writers (SQLite: the server publishes its own commits instead)."""
        if self.backend != "postgresql":
            return False
        if self._tail is None:
            from agentwatch.store.pgtail import PgTail

            self._tail = PgTail(self.engine, on_rows, wanted)
            self._tail.start()
        return True

    def stop_tail(self) -> None:
        if self._tail is not None:
            self._tail.stop()
            self._tail = None

    def close(self) -> None:
        self.stop_tail()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        elif self.backend == "sqlite":
            SqliteCheckpointer(self.engine).checkpoint("TRUNCATE")
        self.engine.dispose()

    # -- writes ----------------------------------------------------------
    def insert_events(self, rows: list[tuple[Any, ...]]) -> InsertResult:
        """Insert rows (tuples in INSERT_COLUMNS order) in one transaction,
        skipping ids already stored."""
        if not rows:
            return InsertResult(0, None)
        if self.backend == "postgresql":
            return self._insert_pg(rows)
        with self._write() as conn:
            before = conn.execute(select(func.max(c.seq))).scalar() or 0
            inserted = sqlite_insert(conn, rows)
            if inserted == len(rows):
                apply_deltas(conn, deltas(rows))
                return InsertResult(inserted, None)
            # Some ids were already stored (a retried batch): only the new rows
            # count in the rollups and reach the live stream. (SQLite has one
            # writer, so the rows after `before` are exactly ours.)
            new_ids = {unpack_id(i) for (i,) in conn.execute(select(c.id).where(c.seq > before))}
            apply_deltas(conn, deltas(x for x in rows if x[0] in new_ids))
            return InsertResult(inserted, new_ids)

    def _insert_pg(self, rows: list[tuple[Any, ...]]) -> InsertResult:
        # PostgreSQL branch: one statement whose RETURNING names the new rows,
        # then a NOTIFY that is delivered to every server at commit.
        with self._write() as conn:
            got = pg_copy_insert(conn, rows)
            if not got:
                return InsertResult(0, set())
            if len(got) == len(rows):
                apply_deltas(conn, deltas(rows))
                new_ids = None
            else:
                new_ids = {i for _, i in got}
                apply_deltas(conn, deltas(x for x in rows if x[0] in new_ids))
            top = max(s for s, _ in got)
            conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(top)))
            return InsertResult(len(got), new_ids)

    def delete_events_before(self, ts_us: int, chunk: int = 5000) -> int:
        """Delete events older than ts_us, and their pre-aggregates, in chunks
        so that a large purge never holds the write lock for long. Returns the
        number of events deleted."""
        total = 0
        while True:
            victims = select(c.seq).where(c.ts < ts_us).order_by(c.ts).limit(chunk)
            with self._write() as conn:
                n = conn.execute(delete(events).where(c.seq.in_(victims))).rowcount
            total += max(int(n), 0)
            if n < chunk:
                break
        while True:
            old = select(r.c.width, r.c.bucket).where(r.c.bucket + r.c.width <= ts_us).limit(chunk)
            with self._write() as conn:
                keys = conn.execute(old).all()
                if keys:
                    conn.execute(delete(r).where(tuple_(r.c.width, r.c.bucket).in_(keys)))
            if len(keys) < chunk:
                break
        if ts_us % UNITS_US[0]:  # the day the cut runs through: recount what is left
            with self._write() as conn:
                rebuild(conn, ts_us, ts_us + 1)
        return total

    def prune_minute_rollups(self, span_us: int = FOUR_HOURS_US) -> int:
        """Delete minute rollup rows past the horizon (rollups.MINUTE_HORIZON_US),
        in small transactions; returns the rows deleted. The server runs this
        every few minutes; queries never read those rows."""
        floor = minute_write_floor()
        total = 0
        while True:
            old = (
                select(r.c.bucket)
                .where(r.c.width == MINUTE_US, r.c.bucket < floor)
                .order_by(r.c.bucket)
                .limit(1)
            )
            with self._write() as conn:
                first = conn.execute(old).scalar()
                if first is None:
                    return total
                # A few hours of buckets per transaction keeps each delete
                # short; the primary key (width, bucket, ...) finds the range.
                upto = min(floor, int(first) + span_us)
                n = conn.execute(
                    delete(r).where(r.c.width == MINUTE_US, r.c.bucket >= first, r.c.bucket < upto)
                ).rowcount
            total += max(int(n), 0)

    # -- reads -----------------------------------------------------------
    @staticmethod
    def _where(
        f: Filters, start_us: int | None = None, end_us: int | None = None, kind: str | None = None
    ) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        lo = f.since_us if start_us is None else start_us
        hi = f.until_us if end_us is None else end_us
        if lo is not None:
            conds.append(c.ts >= lo)
        if hi is not None:
            conds.append(c.ts <= hi)
        if kind is not None:
            conds.append(c.kind == kind)
        for name, value in f.items():
            if name == "kind" and kind is not None:
                continue
            conds.append(c[name] == value)
        return conds

    def query_events(self, f: Filters, limit: int, offset: int) -> list[dict[str, Any]]:
        q = (
            select(*_PUBLIC)
            .where(*self._where(f))
            .order_by(c.ts.desc(), c.seq.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [row_to_event(r) for r in conn.execute(q)]

    def iter_rows(self, chunk: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        """Every stored event as ingest rows (INSERT_COLUMNS order), in insertion
        order, `chunk` at a time (keyset on seq; for copying a store)."""
        cols = [c[n] for n in INSERT_COLUMNS]
        last = -1
        while True:
            q = select(c.seq, *cols).where(c.seq > last).order_by(c.seq).limit(chunk)
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            if not rows:
                return
            last = int(rows[-1][0])
            yield [(unpack_id(r[1]), *r[2:]) for r in rows]

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar() or 0)

    def first_timestamp_us(self, f: Filters) -> int | None:
        """Start of the first day holding an LLM call (the 'all' period's start)."""
        conds = [r.c.width == UNITS_US[0], r.c.kind == "llm", r.c.agent_name != TOTAL]
        conds += [r.c[n] == v for n in DIMENSIONS if (v := getattr(f, n)) is not None]
        q = select(func.min(r.c.bucket)).where(*conds)
        with self.engine.connect() as conn:
            v = conn.execute(q).scalar()
        return None if v is None else int(v)

    # -- metrics (rollups + raw edges) ---------------------------------------
    def _collect(
        self,
        conn: Any,
        start_us: int,
        end_us: int,
        f: Filters,
        kind: str | None,
        group: str | None = None,
        origin_us: int = 0,
        width_us: int | None = None,
        want_hist: bool = True,
    ) -> dict[Any, _Acc]:
        """Sums and latency histograms over [start, end], per group.

        `group` is a dimension name, or None; with `width_us` the group is the
        time bucket index (ts - origin) // width instead.
        """
        units = UNITS_US if width_us is None else tuple(u for u in UNITS_US if width_us % u == 0)
        # With no agent, task or model filter and no grouping by one, the
        # rollups' totals rows answer (one row per bucket, see rollups.TOTAL);
        # otherwise they are left out.
        totals = group is None and all(getattr(f, n) is None for n in DIMENSIONS)
        accs: dict[Any, _Acc] = {}
        # Latency histogram records of every piece, flat: group index, bin, count.
        gidx: dict[Any, int] = {}
        rec_g: list[np.ndarray] = []
        rec_b: list[np.ndarray] = []
        rec_c: list[np.ndarray] = []

        def gids(groups: list[Any]) -> np.ndarray:
            ids = (gidx.setdefault(g, len(gidx)) for g in groups)
            return np.fromiter(ids, dtype=np.int64, count=len(groups))

        def acc(g: Any) -> _Acc:
            a = accs.get(g)
            if a is None:
                a = accs[g] = _Acc()
            return a

        for p in cover(start_us, end_us + 1, units, minute_floor()):
            t, tcol, conds = _piece(p, f, totals)
            if kind is not None:
                conds.append(t.c.kind == kind)
            if width_us is not None:
                gexpr: Any = ((tcol - origin_us) // width_us).label("g")
            elif group is not None:
                gexpr = t.c[group].label("g")
            else:  # one group; a literal in GROUP BY would mean a column position
                gexpr = literal_column("0").label("g")
            gby = [] if group is None and width_us is None else [gexpr]
            sums: list[Any]
            if p.unit:
                sums = [
                    func.sum(t.c.n),
                    func.sum(t.c.errors),
                    func.sum(t.c.cost),
                    func.sum(t.c.latency_sum),
                    func.sum(t.c.input_tokens),
                    func.sum(t.c.output_tokens),
                ]
            else:
                sums = [
                    func.count(),
                    _ERR,
                    func.sum(t.c.cost_usd),
                    func.sum(t.c.latency_ms),
                    func.sum(t.c.input_tokens),
                    func.sum(t.c.output_tokens),
                ]
            for g, n, err, cost, lat, tin, tout in conn.execute(
                select(gexpr, *sums).where(*conds).group_by(*gby)
            ):
                a = acc(g)
                a.n += int(n or 0)
                a.errors += int(err or 0)
                a.cost += float(cost or 0)
                a.latency_sum += float(lat or 0)
                a.input_tokens += int(tin or 0)
                a.output_tokens += int(tout or 0)
            if not want_hist:
                continue
            if p.unit:
                rows = conn.execute(select(gexpr, t.c.hist).where(*conds)).all()
                if rows:
                    lens, bins, counts = decode_many([x[1] for x in rows])
                    rec_g.append(np.repeat(gids([x[0] for x in rows]), lens))
                    rec_b.append(bins)
                    rec_c.append(counts)
            else:
                q = select(gexpr, t.c.latency_bin, func.count()).where(*conds)
                rows = conn.execute(q.group_by(*gby, t.c.latency_bin)).all()
                if rows:
                    rec_g.append(gids([x[0] for x in rows]))
                    rec_b.append(np.fromiter((x[1] for x in rows), np.int64, len(rows)))
                    rec_c.append(np.fromiter((x[2] for x in rows), np.int64, len(rows)))
        if want_hist and rec_b:
            # Every group's percentiles in one pass over one count matrix.
            pcts = percentiles_by_group(
                np.concatenate(rec_g),
                np.concatenate(rec_b),
                np.concatenate(rec_c),
                len(gidx),
                PERCENTILES,
            )
            for g, i in gidx.items():
                acc(g).pct = pcts[i]
        return accs

    def _agents(self, conn: Any, start_us: int, end_us: int, f: Filters) -> list[str]:
        names: set[str] = set()
        for p in cover(start_us, end_us + 1, minutes_from=minute_floor()):
            t, _, conds = _piece(p, f, totals=False)
            names.update(
                a for (a,) in conn.execute(select(t.c.agent_name).distinct().where(*conds))
            )
        return sorted(names)

    def summary(self, start_us: int, end_us: int, f: Filters) -> Summary:
        with self.engine.connect() as conn:
            llm = self._collect(conn, start_us, end_us, f, "llm").get(0, _Acc())
            runs = self._collect(conn, start_us, end_us, f, "task", want_hist=False)
            agents = self._agents(conn, start_us, end_us, f)
        p50, p95 = llm.pct
        return Summary(
            requests=llm.n,
            errors=llm.errors,
            cost=llm.cost,
            latency_sum=llm.latency_sum,
            input_tokens=llm.input_tokens,
            output_tokens=llm.output_tokens,
            p50=p50,
            p95=p95,
            agents=agents,
            task_runs=runs.get(0, _Acc()).n,
        )

    def timeseries(
        self, start_us: int, end_us: int, origin_us: int, bucket_us: int, f: Filters
    ) -> dict[int, dict[str, Any]]:
        """Per-bucket LLM-call totals keyed by bucket index (ts - origin) // bucket."""
        with self.engine.connect() as conn:
            accs = self._collect(
                conn, start_us, end_us, f, "llm", origin_us=origin_us, width_us=bucket_us
            )
        out: dict[int, dict[str, Any]] = {}
        for g, a in accs.items():
            if not a.n:
                continue
            p50, p95 = a.pct
            out[int(g)] = {
                "requests": a.n,
                "errors": a.errors,
                "cost": a.cost,
                "latency_sum": a.latency_sum,
                "tokens": a.input_tokens + a.output_tokens,
                "p50": p50,
                "p95": p95,
            }
        return out

    def breakdown(
        self, group_by: str, start_us: int, end_us: int, f: Filters
    ) -> list[dict[str, Any]]:
        if group_by not in DIMENSIONS:  # the API validates too; never trust a column name
            raise ValueError(f"cannot group by {group_by!r}")
        with self.engine.connect() as conn:
            accs = self._collect(conn, start_us, end_us, f, "llm", group=group_by)
        out = []
        for name, a in accs.items():
            if not a.n:
                continue
            p50, p95 = a.pct
            out.append(
                {
                    "name": name,
                    "requests": a.n,
                    "avg_latency": round(a.latency_sum / a.n, 3),
                    "total_cost": a.cost,
                    "error_rate": round(100.0 * a.errors / a.n, 3),
                    "errors": a.errors,
                    "input_tokens": a.input_tokens,
                    "output_tokens": a.output_tokens,
                    "latency_p50": p50,
                    "latency_p95": p95,
                }
            )
        return sorted(out, key=lambda x: (-x["total_cost"], x["name"]))

    def rebuild_rollups(self, lo_us: int | None = None, hi_us: int | None = None) -> int:
        """Recompute pre-aggregates from raw events; returns events read."""
        with self._write() as conn:
            return rebuild(conn, lo_us, hi_us)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed on exit, holding the backend's
        writer lock from its first statement (dialect.begin_write)."""
        with self.engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
            begin_write(conn)
            yield conn

    # -- explorer (issue 15) --
    # Thin delegations to store/explore.py (raw-event reads for the dashboard's
    # explorer, run totals and session view); see that module for the contract.
    def explore_events(self, q: EventQuery) -> dict[str, Any]:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.list_events(conn, q)

    def breakdown_raw(
        self, group_by: str, start_us: int, end_us: int, f: Filters, limit: int | None = None
    ) -> list[dict[str, Any]]:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.breakdown_by(conn, group_by, start_us, end_us, f, limit)

    def run_totals(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.run_totals(conn, run_ids)

    def session_view(self, session_id: str, limit: int = 1000) -> dict[str, Any] | None:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.session_view(conn, session_id, limit)


def _piece(p: Piece, f: Filters, totals: bool) -> tuple[Any, Any, list[ColumnElement[bool]]]:
    """The table, time column and conditions that select one piece of a
    window: rollup rows of its unit (only the totals rows, or none of them)
    or raw events, within its range and the dimension filters."""
    t = r if p.unit else events
    tcol = t.c.bucket if p.unit else t.c.ts
    conds: list[ColumnElement[bool]] = [tcol >= p.lo, tcol < p.hi]
    if p.unit:
        conds.append(t.c.width == p.unit)
        conds.append(t.c.agent_name == TOTAL if totals else t.c.agent_name != TOTAL)
    for name in DIMENSIONS:
        v = getattr(f, name)
        if v is not None:
            conds.append(t.c[name] == v)
    return t, tcol, conds


# The latency percentiles every metric reports (p50, p95).
PERCENTILES = (0.5, 0.95)


class _Acc:
    """Running totals of one group, and its latency percentiles once known."""

    __slots__ = ("cost", "errors", "input_tokens", "latency_sum", "n", "output_tokens", "pct")

    def __init__(self) -> None:
        self.n = 0
        self.errors = 0
        self.cost = 0.0
        self.latency_sum = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.pct: list[float | None] = [None for _ in PERCENTILES]
