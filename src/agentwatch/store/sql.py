"""The SQL store: one set of queries for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, delete, func, select
from sqlalchemy.exc import OperationalError

from agentwatch.store import alerts, keys, quality
from agentwatch.store import rollups as ru
from agentwatch.store.alerts import AlertRule, Delivery, StateUpdate
from agentwatch.store.base import (
    DIMENSIONS,
    BreakdownRow,
    Filters,
    InsertResult,
    Summary,
    Totals,
)
from agentwatch.store.codec import NameCache, decode, encode, pack_id, to_api, unpack_id
from agentwatch.store.dialect import (
    NOTIFY_CHANNEL,
    Backend,
    begin_write,
    driver_rows,
    make_engine,
    migration_lock,
    pg_copy_insert,
    placeholder,
    sqlite_insert,
    wal_checkpoint,
)
from agentwatch.store.keys import ApiKey
from agentwatch.store.migrations import upgrade
from agentwatch.store.sketch import decode_many, percentiles_by_group
from agentwatch.store.tables import (
    KIND_CODES,
    STATUS_CODES,
    STORED_COLUMNS,
    events,
    rollup_dirty,
    rollup_raw,
    rollups,
)
from agentwatch.store.unbuilt import TailSums, Unbuilt, bump_generation

if TYPE_CHECKING:
    from agentwatch.store.explore import EventQuery

c = events.c
_STORED = [c[n] for n in STORED_COLUMNS]
# Every dimension a metrics query may filter or group on.
ALL_DIMENSIONS: tuple[str, ...] = tuple(ru.REF_COLUMN)
# The latency percentiles every metric reports (p50, p95).
PERCENTILES = (0.5, 0.95)

# Events folded per builder transaction: bounds one build's memory and the
# time the writer lock is held (about a second of full-speed ingest).
BUILD_ROWS = 100_000


class SqlStore:
    """Implements agentwatch.store.base.Store over a SQLAlchemy engine."""

    def __init__(self, db: str) -> None:
        self.engine, self.backend = make_engine(db)
        self.names = NameCache()
        self._pack = self.backend is Backend.SQLITE
        self._tail: Any = None
        # SQLite: the events past the watermark, held for the queries of this
        # process (store/unbuilt.py); PostgreSQL reads its tail in SQL.
        self._unbuilt = Unbuilt() if self.backend is Backend.SQLITE else None
        # SQLite: this process is the only writer, so the events it committed
        # since the last build are exactly what the build reads next; kept
        # here (fold columns only, ~150 bytes an event) to spare reading them
        # back. (first seq, last seq, arrays); dropped whenever not contiguous.
        self._pending: list[tuple[int, int, np.ndarray]] = []

    # -- lifecycle -------------------------------------------------------
    def migrate(self) -> list[int]:
        with self.engine.connect() as conn, migration_lock(conn):
            return upgrade(conn)

    def start_maintenance(self) -> None:
        """Kept for callers of the older interface: upkeep (rollup building,
        WAL checkpoints) is now driven by the server's writer thread."""

    def start_tail(
        self,
        on_rows: Callable[[list[tuple[Any, ...]]], None],
        wanted: Callable[[], bool] | None = None,
    ) -> bool:
        """Feed `on_rows` (on a thread) with every event committed by any server
        sharing the database, in commit order, as logical rows; `wanted()`
        False means nobody listens and rows may be skipped. Returns False when
        the backend has no other writers (SQLite: the server publishes its own
        commits instead)."""
        if self.backend is not Backend.POSTGRESQL:
            return False
        if self._tail is None:
            from agentwatch.store.pgtail import PgTail

            self._tail = PgTail(self.engine, on_rows, self.decode_stored, wanted)
            self._tail.start()
        return True

    def stop_tail(self) -> None:
        if self._tail is not None:
            self._tail.stop()
            self._tail = None

    def close(self) -> None:
        self.stop_tail()
        with contextlib.suppress(Exception):  # a database that went away
            while self.build_rollups():
                pass
        self.checkpoint()
        self.engine.dispose()

    def decode_stored(self, stored: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Stored rows (tables.STORED_COLUMNS order) as logical rows."""
        with self.engine.connect() as conn:
            return decode(conn, self.names, stored)

    # -- writes ----------------------------------------------------------
    def insert_events(self, rows: list[tuple[Any, ...]]) -> InsertResult:
        """Insert logical rows in one transaction, skipping events already
        stored (same timestamp and id). The rollups are built later
        (build_rollups); readers add the events not yet built themselves."""
        if not rows:
            return InsertResult(0, None)
        try:
            with self._write() as conn:
                stored = encode(conn, self.names, rows, self._pack)
                result, first = self._insert(conn, stored, len(rows))
        except BaseException:
            self.names.discard_pending()
            raise
        self.names.commit_pending()
        self._keep_pending(stored, first, result)
        return result

    def _keep_pending(
        self, stored: list[tuple[Any, ...]], first: int, result: InsertResult
    ) -> None:
        """Remember committed events for the next build (SQLite only)."""
        if first < 0 or result.new_keys is not None:  # not ours alone, or a partial retry
            self._pending.clear()
            return
        if self._pending and self._pending[-1][1] + 1 != first:
            self._pending.clear()
        if sum(len(a) for _, _, a in self._pending) > 4 * BUILD_ROWS:
            self._pending.clear()  # builds keep failing: they will read from the table
            return
        arr = ru.fold_array_of_stored(first, stored)
        self._pending.append((first, first + len(stored) - 1, arr))

    def _insert(
        self, conn: Connection, stored: list[tuple[Any, ...]], n: int
    ) -> tuple[InsertResult, int]:
        """Insert stored rows; (result, seq of the first row, or -1 unknown)."""
        if self.backend is Backend.POSTGRESQL:
            got = pg_copy_insert(conn, stored)
            if got:
                top = max(s for s, _, _ in got)
                conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(top)))
            if len(got) == n:
                return InsertResult(n, None), -1
            return InsertResult(len(got), {(int(ts), i) for _, ts, i in got}), -1
        before = conn.execute(select(func.max(c.seq))).scalar() or 0
        inserted = sqlite_insert(conn, stored)
        if inserted == n:
            return InsertResult(inserted, None), int(before) + 1
        # Some events were already stored (a retried batch): say which were
        # new, for the live stream. (SQLite has one writer, so the rows after
        # `before` are exactly ours.)
        new = {
            (int(ts), unpack_id(i))
            for ts, i in conn.execute(select(c.ts, c.id).where(c.seq > before))
        }
        return InsertResult(inserted, new), -1

    def build_rollups(self, max_rows: int = BUILD_ROWS) -> int:
        """Fold the events committed since the last build into the rollups
        (store/rollups.py); returns how many were read (0: caught up)."""
        pend = None
        if self._pending:
            # The chunks (one per commit) that hold the first max_rows events
            # give way to one array: during the build one copy is held, not
            # the chunks and their concatenation. A backlog is built in
            # slices from memory too, not read back from the table.
            used, held = 0, 0
            while used < len(self._pending) and held < max_rows:
                held += len(self._pending[used][2])
                used += 1
            if used > 1:
                arr = np.concatenate([a for _, _, a in self._pending[:used]])
                whole = (self._pending[0][0], self._pending[used - 1][1], arr)
                self._pending[:used] = [whole]
                del arr, whole
            first, _, ev = self._pending[0]
            pend = (first, first + min(len(ev), max_rows) - 1, ev[:max_rows])
            del ev
        with self._write() as conn:
            n, _ = ru.build(conn, max_rows, pending=pend)
            top = ru.get_watermark(conn)
        del pend
        # What is left past the watermark (a chunk built in part keeps a copy
        # of its rest, so that the part built can be freed).
        self._pending = [
            (f, last, a) if f > top else (top + 1, last, a[top + 1 - f :].copy())
            for f, last, a in self._pending
            if last > top
        ]
        if self._pending and self._pending[0][0] != top + 1:
            self._pending.clear()
        return n

    def recount_dirty(self, quiet_us: int = 2_000_000, max_age_us: int = 60_000_000) -> int:
        """Recount one dirty day from its raw events, if one is due: no event
        has arrived for it for `quiet_us`, or it has waited `max_age_us`. A
        day under way (a recount cut short) comes first. Returns the day
        recounted (epoch us), or -1 if none was due."""
        now = ru.now_us()
        with self.engine.connect() as conn:
            dirty = ru.dirty_days(conn)
            begun = [d for d in dirty if ru.recount_progress(conn, d) is not None]
        due = [
            d
            for d, (since, touched) in dirty.items()
            if touched <= now - quiet_us or since <= now - max_age_us
        ]
        if not due:
            return -1
        day = min(due, key=lambda d: (d not in begun, dirty[d][0]))
        self._recount_sliced(day)
        return day

    def _recount_sliced(self, day: int) -> int:
        """Recount a dirty day slice by slice (rollups.recount_step), each
        slice a transaction of its own with a WAL checkpoint after it, so
        the WAL never holds more than one slice's rewrites; returns the
        events read. Gives up after twice the slices a day can have (other
        servers keep sending events for it): it stays dirty, read raw, and
        is taken up again by a later call."""
        total = 0
        for _ in range(2 * (ru.DAY_US // ru.HOUR_US + 1)):
            with self._write() as conn:
                done, n = ru.recount_step(conn, day)
            total += n
            self.checkpoint()
            if done:
                break
        return total

    def close_days(self) -> int:
        """Make the day rows of a day that has closed (rollups.close_days);
        returns the day (epoch us), or -1 if none was due."""
        with self._write() as conn:
            day = ru.close_days(conn)
        return -1 if day is None else day

    def pending_rollups(self) -> dict[str, int]:
        """How far the rollups are behind: events not yet built, dirty days."""
        with self.engine.connect() as conn:
            w = ru.get_watermark(conn)
            top = conn.execute(select(func.max(c.seq))).scalar() or 0
            n_dirty = conn.execute(select(func.count()).select_from(rollup_dirty)).scalar() or 0
        return {"events": max(0, int(top) - w), "dirty_days": int(n_dirty)}

    def checkpoint(self) -> bool:
        """SQLite: copy the WAL back into the database and truncate it (the
        writer calls this between its own transactions)."""
        if self.backend is not Backend.SQLITE:
            return True
        try:
            return wal_checkpoint(self.engine)
        except OperationalError:  # busy or gone: the next call tries again
            return False

    def disk_bytes(self) -> tuple[int, int]:
        """SQLite: the sizes of the database file and of its WAL now (two
        stat calls); (0, 0) for PostgreSQL."""
        if self.backend is not Backend.SQLITE:
            return 0, 0
        path = str(self.engine.url.database)
        out = []
        for f in (path, f"{path}-wal"):
            try:
                out.append(os.stat(f).st_size)
            except OSError:
                out.append(0)
        return out[0], out[1]

    def delete_events_before(self, ts_us: int, chunk: int = 5000) -> int:
        """Delete events older than ts_us, and their pre-aggregates, in chunks
        so that a large purge never holds the write lock for long. Returns the
        number of events deleted."""
        total = 0
        while True:
            victims = select(c.seq).where(c.ts < ts_us).order_by(c.ts).limit(chunk)
            with self._write() as conn:
                n = conn.execute(delete(events).where(c.seq.in_(victims))).rowcount
                if n:
                    bump_generation(conn)
            total += max(int(n), 0)
            if n < chunk:
                break
        day = ts_us - ts_us % ru.DAY_US
        with self._write() as conn:
            conn.execute(delete(rollups).where(*ru.bucket_range(None, day)))
            conn.execute(delete(rollup_raw).where(rollup_raw.c.bucket < day))
            conn.execute(delete(rollup_dirty).where(rollup_dirty.c.day < day))
            if ts_us % ru.DAY_US:  # the day the cut runs through: recount what is left
                ru.recount_day(conn, day)
        return total

    def prune_minute_rollups(self, span_us: int = 4 * ru.HOUR_US) -> int:
        """Delete minute rollup rows past the horizon (rollups.MINUTE_HORIZON_US),
        a few hours of buckets per transaction; returns the rows deleted."""
        floor = ru.minute_write_floor()
        total = 0
        r = rollups.c
        while True:
            with self._write() as conn:
                first = conn.execute(
                    select(func.min(r.bucket)).where(
                        *ru.bucket_range(None, floor, units=(ru.MINUTE,))
                    )
                ).scalar()
                if first is None:
                    return total
                upto = min(floor, int(first) + span_us)
                n = conn.execute(
                    delete(rollups).where(*ru.bucket_range(int(first), upto, units=(ru.MINUTE,)))
                ).rowcount
                o = rollup_raw.c
                conn.execute(delete(rollup_raw).where(o.unit == ru.MINUTE, o.bucket < upto))
            total += max(int(n), 0)

    def rebuild_rollups(self, lo_us: int | None = None, hi_us: int | None = None) -> int:
        """Recount the pre-aggregates from the raw events, day by day, each
        in slices of its own transactions (safe while a server ingests);
        returns events read."""
        while self.build_rollups():
            pass
        with self.engine.connect() as conn:
            first, last = conn.execute(select(func.min(c.ts), func.max(c.ts))).one()
        if first is None:
            return 0
        start = int(first) if lo_us is None else max(int(first), lo_us)
        end = int(last) + 1 if hi_us is None else min(int(last) + 1, hi_us)
        total = 0
        day = start - start % ru.DAY_US
        while day < end:
            # Marked dirty first, so that queries read the day raw while its
            # slices are recounted, each in a transaction of its own.
            with self._write() as conn:
                ru.mark_dirty(conn, [day], ru.now_us())
            total += self._recount_sliced(day)
            day += ru.DAY_US
        return total

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one snapshot for all its statements:
        a metric reads the watermark, rollups and the raw tail in several
        queries, and a build committing between them must not count events
        twice or not at all. SQLite's deferred BEGIN takes its snapshot at
        the first read; PostgreSQL needs REPEATABLE READ for that (its READ
        COMMITTED takes one per statement)."""
        with self.engine.connect() as conn:
            if self.backend is Backend.POSTGRESQL:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed on exit, holding the backend's
        writer lock from its first statement (dialect.begin_write)."""
        with self.engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
            begin_write(conn)
            yield conn

    # -- event reads -----------------------------------------------------
    def _event_conds(self, conn: Connection, f: Filters) -> list[Any] | None:
        """WHERE conditions for an event filter; None when nothing can match."""
        conds: list[Any] = []
        if f.since_us is not None:
            conds.append(c.ts >= f.since_us)
        if f.until_us is not None:
            conds.append(c.ts <= f.until_us)
        if f.kind is not None:
            conds.append(c.kind == KIND_CODES[f.kind])
        if f.status is not None:
            conds.append(c.status == STATUS_CODES[f.status])
        for d, col in ru.REF_COLUMN.items():
            v = getattr(f, d)
            if v is not None:
                ref = self.names.find_ref(conn, v)
                if ref is None:
                    return None
                conds.append(c[col] == ref)
        for d in ("trace_id", "parent_id"):
            v = getattr(f, d)
            if v is not None:
                conds.append(c[d] == (pack_id(v) if self._pack else v))
        return conds

    def query_events(self, f: Filters, limit: int, offset: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            conds = self._event_conds(conn, f)
            if conds is None:
                return []
            q = (
                select(*_STORED)
                .where(*conds)
                .order_by(c.ts.desc(), c.seq.desc())
                .limit(limit)
                .offset(offset)
            )
            rows = [tuple(r) for r in conn.execute(q)]
            return [to_api(r) for r in decode(conn, self.names, rows)]

    def iter_rows(self, chunk: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        """Every stored event as logical rows (INSERT_COLUMNS order), in
        insertion order, `chunk` at a time (keyset on seq; for copying a store)."""
        last = -1
        while True:
            q = select(c.seq, *_STORED).where(c.seq > last).order_by(c.seq).limit(chunk)
            # The connection goes back before the chunk is handed over: a
            # consumer that stops half-way holds no read snapshot.
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
                if not rows:
                    return
                last = int(rows[-1][0])
                chunk_rows = decode(conn, self.names, [tuple(r[1:]) for r in rows])
            yield chunk_rows

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar() or 0)

    def first_timestamp_us(self, f: Filters) -> int | None:
        """Start of the first day holding an LLM call (the 'all' period's start)."""
        with self.engine.connect() as conn:
            conds = self._event_conds(conn, Filters(**{d: getattr(f, d) for d in DIMENSIONS}))
            if conds is None:
                return None
            # The time index finds the first matching row from its left end.
            q = select(c.ts).where(c.kind == KIND_CODES["llm"], *conds).order_by(c.ts).limit(1)
            v = conn.execute(q).scalar()
        return None if v is None else int(v) - int(v) % ru.DAY_US

    # -- metrics -----------------------------------------------------------
    def summary(self, start_us: int, end_us: int, f: Filters) -> Summary:
        with self._snapshot() as conn:
            llm = self._llm_totals(conn, start_us, end_us, f)
            runs = self._collect(
                conn, start_us, end_us + 1, f, KIND_CODES["task"], want_hist=False
            ).get(0, Totals())
            agents = self._collect(
                conn, start_us, end_us + 1, f, None, group="agent_name", want_hist=False
            )
            names = sorted(str(a) for a, t in agents.items() if t.requests)
        return Summary(llm, names, runs.requests)

    def timeseries(
        self, start_us: int, end_us: int, origin_us: int, width_us: int, f: Filters
    ) -> dict[int, Totals]:
        """Per-bucket LLM-call totals keyed by bucket index (ts - origin_us) // width_us."""
        with self._snapshot() as conn:
            got = self._collect(
                conn,
                start_us,
                end_us + 1,
                f,
                KIND_CODES["llm"],
                origin_us=origin_us,
                width_us=width_us,
            )
        return {int(g): t for g, t in got.items() if t.requests}

    def breakdown(
        self,
        group_by: str,
        start_us: int,
        end_us: int,
        f: Filters,
        rest: bool = False,
        limit: int | None = None,
    ) -> list[BreakdownRow]:
        """Per value of `group_by`, highest cost first (the first `limit`);
        with `rest` (provider, user, session) a last row named None for the
        calls without a value."""
        if group_by not in ALL_DIMENSIONS:  # the API validates too; never trust a column name
            raise ValueError(f"cannot group by {group_by!r}")
        with self._snapshot() as conn:
            got = self._collect(
                conn,
                start_us,
                end_us + 1,
                f,
                KIND_CODES["llm"],
                group=group_by,
                rest=rest,
                top=limit,
            )
        out = [BreakdownRow(name, t) for name, t in got.items() if t.requests]
        out.sort(key=lambda r: (r.name is None, -r.totals.cost, r.name or ""))
        return out if limit is None else out[:limit]

    def _collect(
        self,
        conn: Connection,
        lo: int,
        hi: int,
        f: Filters,
        kind: int | None,
        group: str | None = None,
        origin_us: int = 0,
        width_us: int | None = None,
        want_hist: bool = True,
        rest: bool = False,
        top: int | None = None,
    ) -> dict[Any, Totals]:
        """Sums and latency percentiles over lo <= ts < hi, per group.

        `group` is a dimension name (groups are its values), or None (one
        group, 0); with `width_us` the group is the time bucket index
        (ts - origin_us) // width_us instead. `kind` is a kind code, or None for
        every kind. `rest`: also a group None for the events without a value
        of `group` (provider, user, session), exact: the totals less the
        groups, histograms included (bin counts subtract as they add).
        """
        flt: dict[str, int] = {}
        for d in ALL_DIMENSIONS:
            v = getattr(f, d)
            if v is not None:
                ref = self.names.find_ref(conn, v)
                if ref is None:  # no event ever had that name
                    return {}
                flt[d] = ref
        if top is not None and group in ru.REF_COLUMN and want_hist and not rest:
            # Many groups, few shown: sums of every group first, then the
            # histogram records of the groups shown only (a breakdown of
            # 50,000 task names reads 50 groups' bins, not 50,000).
            acc = self._gather(conn, lo, hi, flt, kind, group, 0, None, False)
            shown = acc.top_keys(top)
            if shown is not None:
                acc.want_hist = True
                recs = self._gather(conn, lo, hi, flt, kind, group, 0, None, True, shown)
                acc.rec_g, acc.rec_b, acc.rec_c = recs.rec_g, recs.rec_b, recs.rec_c
            else:
                acc = self._gather(conn, lo, hi, flt, kind, group, 0, None, True)
        else:
            acc = self._gather(conn, lo, hi, flt, kind, group, origin_us, width_us, want_hist)
        if rest:
            total = self._gather(conn, lo, hi, flt, kind, None, 0, None, want_hist)
            acc.add_rest(total)
        out = acc.result(top)
        if group in ru.REF_COLUMN:
            names = self.names.names(conn, [g for g in out if g is not None])
            return {(None if g is None else names[g]): a for g, a in out.items()}
        return out

    def _gather(
        self,
        conn: Connection,
        lo: int,
        hi: int,
        flt: dict[str, int],
        kind: int | None,
        group: str | None,
        origin_us: int,
        width_us: int | None,
        want_hist: bool,
        only: list[int] | None = None,
    ) -> _Gather:
        """Every piece of the plan gathered; with `only` (group references),
        the histogram records of those groups alone, and no sums."""
        plan = ru.plan(conn, lo, hi, flt, group, width_us, kind)
        acc = _Gather(want_hist, only)
        for p in plan.rollup_pieces:
            acc.add_rollups(conn, p, plan, flt, kind, group, origin_us, width_us)
        for a, b in plan.raw:
            acc.add_raw(conn, ru.raw_where(a, b), flt, kind, group, origin_us, width_us)
        unbuilt = self._unbuilt
        held = None if unbuilt is None else unbuilt.columns(conn, plan.watermark)
        if unbuilt is None or held is None:
            tail = ru.tail_where(plan.watermark, lo, hi, plan.raw)
            acc.add_raw(conn, tail, flt, kind, group, origin_us, width_us)
        else:
            by_bin = want_hist or only is not None
            acc.add_tail(
                unbuilt.sums(
                    held, lo, hi, plan.raw, flt, kind, group, origin_us, width_us, only, by_bin
                )
            )
        return acc

    # -- explorer (issue 15) --
    # Thin delegations to store/explore.py (raw-event reads for the dashboard's
    # explorer, run totals and session view); see that module for the contract.
    def explore_events(self, q: EventQuery) -> dict[str, Any]:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.list_events(conn, self.names, q)

    def breakdown_raw(
        self, group_by: str, start_us: int, end_us: int, f: Filters, limit: int | None = None
    ) -> list[BreakdownRow]:
        """Breakdown by provider, user_id or session_id, from their rollups:
        one row per value, then a row with name None for the calls without
        one (exact: the totals less the rows). Highest cost first, that row
        last."""
        return self.breakdown(group_by, start_us, end_us, f, rest=True, limit=limit)

    def run_totals(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.run_totals(conn, run_ids)

    def session_view(self, session_id: str, limit: int = 1000) -> dict[str, Any] | None:
        from agentwatch.store import explore

        with self.engine.connect() as conn:
            return explore.session_view(conn, self.names, session_id, limit)

    # -- export (issue 14): thin delegations to store/export.py --
    def export_events(self, q: EventQuery, chunk: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        from agentwatch.store import export

        return export.iter_events(self.engine, self.names, q, chunk)

    # -- data quality (issue 14): thin delegations to store/quality.py --
    def quality_counts(self, start_us: int, end_us: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return quality.counts(conn, self.names, start_us, end_us)

    def quality_events(
        self,
        flag: str,
        start_us: int,
        end_us: int,
        provider: str | None = None,
        model: str | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return quality.flagged_events(
                conn, self.names, flag, start_us, end_us, provider, model, after, limit
            )

    def add_rejects(self, now_us: int, by_code: dict[int, list[int]]) -> None:
        quality.add_rejects(self.engine, now_us, by_code)

    def rejects(self, start_us: int, end_us: int) -> dict[int, list[int]]:
        with self.engine.connect() as conn:
            return quality.rejects(conn, start_us, end_us)

    # -- reprice (issue 14): a thin delegation to store/reprice.py --
    def reprice(
        self,
        rates: Callable[[str, str | None], Any],
        since_us: int,
        until_us: int | None = None,
        dry_run: bool = False,
        progress: Callable[[Any], None] | None = None,
    ) -> Any:
        from agentwatch.store import reprice

        return reprice.reprice(
            self.engine,
            self._write,
            self.names,
            rates,
            since_us,
            until_us,
            dry_run=dry_run,
            progress=progress,
        )

    # -- API keys (issue 11) --
    def add_key(self, key: ApiKey) -> None:
        """Store a new key (raises store.keys.KeyExists for a taken name)."""
        keys.add(self.engine, key)

    def list_keys(self) -> list[ApiKey]:
        return keys.all_keys(self.engine)

    def revoke_key(self, name: str) -> bool:
        return keys.remove(self.engine, name)

    def touch_keys(self, used: dict[str, int]) -> None:
        keys.touch(self.engine, used)

    # -- alerts (issue 13) --
    # Thin delegations to store/alerts.py; see that module for the tables.
    def add_alert(self, values: dict[str, Any]) -> int:
        return alerts.add_rule(self.engine, values)

    def list_alerts(self) -> list[AlertRule]:
        return alerts.list_rules(self.engine)

    def get_alert(self, rule_id: int | None = None, name: str | None = None) -> AlertRule | None:
        return alerts.get_rule(self.engine, rule_id, name)

    def update_alert(self, rule_id: int, values: dict[str, Any]) -> bool:
        return alerts.update_rule(self.engine, rule_id, values)

    def delete_alert(self, rule_id: int) -> bool:
        return alerts.delete_rule(self.engine, rule_id)

    def alert_history(self, rule_id: int, limit: int = 200) -> list[dict[str, Any]]:
        return alerts.history(self.engine, rule_id, limit)

    def alert_totals(self, start_us: int, end_us: int, f: Filters) -> Totals:
        """The LLM-call half of `summary`, by the same code."""
        with self._snapshot() as conn:
            return self._llm_totals(conn, start_us, end_us, f)

    def _llm_totals(self, conn: Connection, start_us: int, end_us: int, f: Filters) -> Totals:
        """Totals and percentiles of the LLM calls in [start, end]."""
        return self._collect(conn, start_us, end_us + 1, f, KIND_CODES["llm"]).get(0, Totals())

    def max_calls_per_run(self, start_us: int, end_us: int, f: Filters) -> int | None:
        flt = {d: getattr(f, d) for d in DIMENSIONS if getattr(f, d) is not None}
        with self.engine.connect() as conn:
            return alerts.max_calls_per_run(conn, self.names, start_us, end_us, flt)

    def take_alert_lease(self, holder: str, ttl_us: int) -> bool:
        return alerts.take_lease(self.engine, holder, ttl_us)

    def release_alert_lease(self, holder: str) -> None:
        alerts.release_lease(self.engine, holder)

    def commit_alert_evaluation(self, holder: str, ttl_us: int, updates: list[StateUpdate]) -> bool:
        return alerts.commit_evaluation(self.engine, holder, ttl_us, updates)

    def queue_alert_delivery(self, rule_id: int, kind: str, body: str) -> int:
        return alerts.queue_delivery(self.engine, rule_id, kind, body)

    def claim_alert_deliveries(
        self, limit: int, claim_us: int, only: int | None = None
    ) -> list[Delivery]:
        return alerts.claim_deliveries(self.engine, limit, claim_us, only)

    def record_alert_attempt(
        self, delivery: Delivery, outcome: str, detail: str, next_at: int | None
    ) -> None:
        alerts.record_attempt(self.engine, delivery, outcome, detail, next_at)

    def prune_alert_data(self) -> int:
        """calls-per-run rows past a month, finished deliveries past a day."""
        n = alerts.prune_run_calls(self.engine)
        return n + alerts.prune_deliveries(self.engine, ru.now_us() - 86_400_000_000)


# The key of the group of events without a value (breakdown's `rest`).
_REST = -(2**62)


_SUMS = ("n", "errors", "cost", "latency_sum", "input_tokens", "output_tokens")
_FLOATS = ("cost", "latency_sum")
# One row of rollups.raw_select: group, latency bin, then the sums.
_RAW_ROW = np.dtype(
    [("g", np.int64), ("bin", np.int64)]
    + [(n, np.float64 if n in _FLOATS else np.int64) for n in _SUMS]
)


class _Gather:
    """Collects the pieces of one metrics query as arrays: per-group sums,
    and every group's latency histogram records, for one percentile pass.
    Nothing is done per row in Python: a breakdown over 50,000 task names
    is a few numpy calls, not 50,000 objects updated one by one."""

    _SUMS = _SUMS

    def __init__(self, want_hist: bool, only: list[int] | None = None) -> None:
        self.want_hist = want_hist
        self.only = only
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in ("g", *self._SUMS)}
        self.rec_g: list[np.ndarray] = []
        self.rec_b: list[np.ndarray] = []
        self.rec_c: list[np.ndarray] = []

    def _add_sums(self, rows: Sequence[Any]) -> None:
        rows = [r for r in rows if r[1]]  # (an ungrouped SUM over nothing: one NULL row)
        if not rows:
            return
        cols = list(zip(*rows, strict=True))
        n = len(rows)
        self.cols["g"].append(np.fromiter(cols[0], np.int64, n))
        for name, col in zip(self._SUMS, cols[1:], strict=True):
            dt = np.float64 if name in _FLOATS else np.int64
            self.cols[name].append(np.fromiter((v or 0 for v in col), dt, n))

    def add_rollups(
        self,
        conn: Connection,
        p: ru.Piece,
        plan: ru.Plan,
        flt: dict[str, int],
        kind: int | None,
        group: str | None,
        origin_us: int,
        width_us: int | None,
    ) -> None:
        gexpr, conds = ru.rollup_select(p, plan.stype, flt, kind, group, origin_us, width_us)
        r = rollups.c
        sums = [r.n, r.errors, r.cost, r.latency_sum, r.input_tokens, r.output_tokens]
        if self.only is not None:
            conds = [*conds, gexpr.element.in_(self.only)]
        else:
            try:
                q = select(gexpr, *[func.sum(x) for x in sums]).where(*conds)
                if group is not None or width_us is not None:  # (GROUP BY 0: column 0)
                    q = q.group_by(gexpr)
                self._add_sums(conn.execute(q).all())
            except OperationalError as e:  # SQLite's SUM overflowed: add them up exactly here
                if "overflow" not in str(e):
                    raise
                self._add_sums(conn.execute(select(gexpr, *sums).where(*conds)).all())
        if self.want_hist:
            rows = conn.execute(select(gexpr, r.hist).where(*conds)).all()
            if rows:
                lens, bins, counts = decode_many([x[1] for x in rows])
                g = np.fromiter((x[0] for x in rows), np.int64, len(rows))
                self.rec_g.append(np.repeat(g, lens))
                self.rec_b.append(bins)
                self.rec_c.append(counts)

    def add_raw(
        self,
        conn: Connection,
        where: tuple[str, list[Any]],
        flt: dict[str, int],
        kind: int | None,
        group: str | None,
        origin_us: int,
        width_us: int | None,
    ) -> None:
        sql, params = ru.raw_select(
            conn,
            where,
            flt,
            kind,
            group,
            origin_us,
            width_us,
            self.only,
            by_bin=self.want_hist or self.only is not None,
        )
        # The driver's tuples and one conversion in C: a breakdown over
        # 50,000 task names is 50,000+ rows, and SQLAlchemy's row objects
        # (then a tuple each, then numpy) cost more than the query itself.
        rows = driver_rows(conn, sql, params)
        if rows and not rows[0][2]:  # (an ungrouped SUM over nothing: one NULL row)
            rows = rows[1:]
        if not rows:
            return
        a = np.array(rows, dtype=_RAW_ROW)
        if self.only is None:
            for name in ("g", *self._SUMS):
                self.cols[name].append(a[name])
        if self.want_hist:
            self.rec_g.append(a["g"])
            self.rec_b.append(a["bin"])
            self.rec_c.append(a["n"])

    def add_tail(self, t: TailSums) -> None:
        """The events past the watermark, summed in memory (store/unbuilt.py):
        what add_raw adds for the SQL tail."""
        if not len(t.g):
            return
        if self.only is None:
            self.cols["g"].append(t.g)
            for name in self._SUMS:
                self.cols[name].append(getattr(t, name))
        if self.want_hist:
            self.rec_g.append(t.g)
            self.rec_b.append(t.bins)
            self.rec_c.append(t.n)

    def add_rest(self, total: _Gather) -> None:
        """A group of its own (key _REST): `total` (one group) less every
        group gathered here, histograms included (bin counts subtract)."""
        mine = {name: list(arrs) for name, arrs in self.cols.items()}
        for src, sign in ((total.cols, 1), (mine, -1)):
            for i, g in enumerate(src["g"]):
                self.cols["g"].append(np.full(len(g), _REST, np.int64))
                for name in self._SUMS:
                    self.cols[name].append(src[name][i] * sign)
        if self.want_hist:
            recs = list(zip(self.rec_b, self.rec_c, strict=True))
            for recs_of, sign in (
                (list(zip(total.rec_b, total.rec_c, strict=True)), 1),
                (recs, -1),
            ):
                for b, c in recs_of:
                    self.rec_g.append(np.full(len(b), _REST, np.int64))
                    self.rec_b.append(b)
                    self.rec_c.append(c * sign)

    def top_keys(self, top: int) -> list[int] | None:
        """The groups `result(top)` shows (the `top` costliest and any tied
        with the last), or None when that is every group."""
        if not self.cols["g"]:
            return None
        keys, inv = np.unique(np.concatenate(self.cols["g"]), return_inverse=True)
        if len(keys) <= top:
            return None
        cost = np.bincount(
            inv.reshape(-1), weights=np.concatenate(self.cols["cost"]), minlength=len(keys)
        )
        cut = np.sort(cost)[-top]
        return [int(k) for k in keys[cost >= cut]]

    def result(self, top: int | None = None) -> dict[Any, Totals]:
        """Every group's totals and percentiles; with `top`, only the `top`
        groups of highest cost (and any tied with the last) keep theirs."""
        out: dict[Any, Totals] = {}
        if not self.cols["g"]:
            return out
        g = np.concatenate(self.cols["g"])
        keys, inv = np.unique(g, return_inverse=True)
        inv = inv.reshape(-1)
        k = len(keys)
        tot: dict[str, list[Any]] = {}
        for name in self._SUMS:
            v = np.concatenate(self.cols[name])
            w = np.bincount(inv, weights=v, minlength=k)
            if name in ("cost", "latency_sum"):
                tot[name] = w.tolist()
            elif np.abs(v).sum() < 2**53:  # float sums of integers are exact below 2^53
                tot[name] = np.rint(w).astype(np.int64).tolist()
            else:  # exact, whatever the size
                acc = np.zeros(k, dtype=object)
                np.add.at(acc, inv, v.astype(object))
                tot[name] = acc.tolist()
        chosen = np.arange(k)
        if top is not None and k > top:
            cost = np.asarray(tot["cost"])
            cut = np.sort(cost)[-top]
            chosen = np.flatnonzero(cost >= cut)
        pct: list[list[float | None]] = [[None for _ in PERCENTILES] for _ in range(k)]
        if self.want_hist and self.rec_b:
            rg = np.searchsorted(keys, np.concatenate(self.rec_g))
            rb, rc = np.concatenate(self.rec_b), np.concatenate(self.rec_c)
            if len(chosen) < k:  # percentiles of the groups shown only
                sel = np.isin(rg, chosen)
                remap = np.full(k, -1, dtype=np.int64)
                remap[chosen] = np.arange(len(chosen))
                some = percentiles_by_group(
                    remap[rg[sel]], rb[sel], rc[sel], len(chosen), PERCENTILES
                )
                for j, i in enumerate(chosen.tolist()):
                    pct[i] = some[j]
            else:
                pct = percentiles_by_group(rg, rb, rc, k, PERCENTILES)
        kl = keys.tolist()
        for i in chosen.tolist():
            if tot["n"][i] <= 0:
                continue
            p50, p95 = pct[i]
            out[None if kl[i] == _REST else kl[i]] = Totals(
                requests=tot["n"][i],
                errors=tot["errors"][i],
                cost=max(0.0, tot["cost"][i]),
                latency_sum=max(0.0, tot["latency_sum"][i]),
                input_tokens=tot["input_tokens"][i],
                output_tokens=tot["output_tokens"][i],
                p50=p50,
                p95=p95,
            )
        return out


__all__ = ["ALL_DIMENSIONS", "SqlStore", "placeholder"]
