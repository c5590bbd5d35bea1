"""The SQL store: one set of queries for SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, case, delete, func, select

from agentwatch.store.base import DIMENSIONS, Filters, InsertResult, Summary
from agentwatch.store.dialect import (
    SqliteCheckpointer,
    insert_ignore_sql,
    make_engine,
    migration_lock,
)
from agentwatch.store.migrations import upgrade
from agentwatch.store.sketch import percentiles
from agentwatch.store.tables import events

c = events.c
_ERR = func.sum(case((c.status == "error", 1), else_=0))
_PUBLIC = [col for col in events.columns if col.name not in ("seq", "latency_bin")]


def iso_from_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat()


def row_to_event(row: Any) -> dict[str, Any]:
    """A stored row as the API returns it (timestamp ISO with +00:00, metadata an object)."""
    d = dict(row._mapping)
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
        self._insert_sql = insert_ignore_sql(self.engine)
        self._checkpointer: SqliteCheckpointer | None = None

    def start_maintenance(self) -> None:
        """Background upkeep while serving (SQLite: WAL checkpoints)."""
        if self.backend == "sqlite" and self._checkpointer is None:
            self._checkpointer = SqliteCheckpointer(self.engine)
            self._checkpointer.start()

    # -- lifecycle -------------------------------------------------------
    def migrate(self) -> list[int]:
        with self.engine.connect() as conn, migration_lock(conn):
            return upgrade(conn)

    def close(self) -> None:
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
        with self.engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
            before = conn.execute(select(func.max(c.seq))).scalar() or 0
            res = conn.exec_driver_sql(self._insert_sql, rows)
            inserted = max(int(res.rowcount), 0)
            if inserted == len(rows):
                return InsertResult(inserted, None)
            # Some ids were already stored (a retried batch): find which rows
            # are new so only those reach the live stream.
            new_ids = {i for (i,) in conn.execute(select(c.id).where(c.seq > before))}
            return InsertResult(inserted, new_ids)

    def delete_events_before(self, ts_us: int, chunk: int = 5000) -> int:
        """Delete events older than ts_us in chunks, so a large purge never
        holds the write lock for long. Returns the number deleted."""
        total = 0
        while True:
            victims = select(c.seq).where(c.ts < ts_us).order_by(c.ts).limit(chunk)
            with self.engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
                n = conn.execute(delete(events).where(c.seq.in_(victims))).rowcount
            total += max(int(n), 0)
            if n < chunk:
                return total

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

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar() or 0)

    def first_timestamp_us(self, f: Filters) -> int | None:
        q = select(func.min(c.ts)).where(*self._where(f))
        with self.engine.connect() as conn:
            v = conn.execute(q).scalar()
        return None if v is None else int(v)

    def summary(self, start_us: int, end_us: int, f: Filters) -> Summary:
        llm = self._where(f, start_us, end_us, kind="llm")
        # One pass over the LLM calls grouped by latency bin gives both the
        # totals (summed below) and the percentile histogram.
        q = (
            select(
                c.latency_bin,
                func.count(),
                _ERR,
                func.sum(c.cost_usd),
                func.sum(c.latency_ms),
                func.sum(c.input_tokens),
                func.sum(c.output_tokens),
            )
            .where(*llm)
            .group_by(c.latency_bin)
        )
        agents_q = (
            select(c.agent_name)
            .distinct()
            .where(*self._where(f, start_us, end_us))
            .order_by(c.agent_name)
        )
        runs_q = select(func.count()).where(*self._where(f, start_us, end_us, kind="task"))
        s = Summary()
        hist: list[tuple[int, int]] = []
        with self.engine.connect() as conn:
            for b, n, err, cost, lat, tin, tout in conn.execute(q):
                hist.append((int(b), int(n)))
                s.requests += int(n)
                s.errors += int(err or 0)
                s.cost += float(cost or 0)
                s.latency_sum += float(lat or 0)
                s.input_tokens += int(tin or 0)
                s.output_tokens += int(tout or 0)
            s.agents = [a for (a,) in conn.execute(agents_q)]
            s.task_runs = int(conn.execute(runs_q).scalar() or 0)
        s.p50, s.p95 = percentiles(hist, (0.5, 0.95))
        return s

    def timeseries(
        self, start_us: int, end_us: int, origin_us: int, bucket_us: int, f: Filters
    ) -> dict[int, dict[str, Any]]:
        """Per-bucket LLM-call totals keyed by bucket index (ts - origin) // bucket."""
        llm = self._where(f, start_us, end_us, kind="llm")
        b = ((c.ts - origin_us) // bucket_us).label("b")
        sums = (
            select(
                b,
                func.count(),
                _ERR,
                func.sum(c.cost_usd),
                func.sum(c.latency_ms),
                func.sum(c.input_tokens + c.output_tokens),
            )
            .where(*llm)
            .group_by(b)
        )
        hist_q = select(b, c.latency_bin, func.count()).where(*llm).group_by(b, c.latency_bin)
        out: dict[int, dict[str, Any]] = {}
        hists: dict[int, list[tuple[int, int]]] = defaultdict(list)
        with self.engine.connect() as conn:
            for bi, n, err, cost, lat, tok in conn.execute(sums):
                out[int(bi)] = {
                    "requests": int(n),
                    "errors": int(err or 0),
                    "cost": float(cost or 0),
                    "latency_sum": float(lat or 0),
                    "tokens": int(tok or 0),
                }
            for bi, lb, n in conn.execute(hist_q):
                hists[int(bi)].append((int(lb), int(n)))
        for bi, h in hists.items():
            out[bi]["p50"], out[bi]["p95"] = percentiles(h, (0.5, 0.95))
        return out

    def breakdown(
        self, group_by: str, start_us: int, end_us: int, f: Filters
    ) -> list[dict[str, Any]]:
        if group_by not in DIMENSIONS:  # the API validates too; never trust a column name
            raise ValueError(f"cannot group by {group_by!r}")
        col = c[group_by]
        llm = self._where(f, start_us, end_us, kind="llm")
        sums = (
            select(
                col,
                func.count(),
                _ERR,
                func.sum(c.cost_usd),
                func.sum(c.latency_ms),
                func.sum(c.input_tokens),
                func.sum(c.output_tokens),
            )
            .where(*llm)
            .group_by(col)
        )
        hist_q = select(col, c.latency_bin, func.count()).where(*llm).group_by(col, c.latency_bin)
        rows: dict[str, dict[str, Any]] = {}
        hists: dict[str, list[tuple[int, int]]] = defaultdict(list)
        with self.engine.connect() as conn:
            for name, n, err, cost, lat, tin, tout in conn.execute(sums):
                n = int(n)
                rows[name] = {
                    "name": name,
                    "requests": n,
                    "avg_latency": round(float(lat or 0) / n, 3) if n else None,
                    "total_cost": float(cost or 0),
                    "error_rate": round(100.0 * int(err or 0) / n, 3) if n else None,
                    "errors": int(err or 0),
                    "input_tokens": int(tin or 0),
                    "output_tokens": int(tout or 0),
                }
            for name, lb, n in conn.execute(hist_q):
                hists[name].append((int(lb), int(n)))
        for name, h in hists.items():
            rows[name]["latency_p50"], rows[name]["latency_p95"] = percentiles(h, (0.5, 0.95))
        return sorted(rows.values(), key=lambda r: (-r["total_cost"], r["name"]))
