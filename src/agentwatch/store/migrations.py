"""Versioned schema migrations, applied in order at server start.

Each migration runs in its own transaction and records its version in
`agentwatch_schema`. A database is upgraded in place: version 1 also adopts a
database created with the brief's original single-table schema (text
timestamps, none of the contract's added columns), converting its rows, and
version 6 converts the first layout (names written out in every row, an id
index and a time index, rollups over the full agent x task x model product)
to the current one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, inspect, text

from agentwatch.store.codec import NameCache, encode, pack_id, unpack_id
from agentwatch.store.dialect import Backend, backend, placeholder
from agentwatch.store.sketch import latency_bin
from agentwatch.store.tables import (
    FLAG_CLIENT_COST,
    INSERT_COLUMNS,
    events,
    metadata,
    quality_flags,
    schema_version,
)

_CHUNK = 20_000


def _legacy_ts(value: str) -> int:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


def _current_tables(conn: Connection) -> None:
    metadata.create_all(
        conn, tables=[t for t in metadata.sorted_tables if t.name != "agentwatch_schema"]
    )


def _insert_logical(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert logical rows into the current events table (migrations only)."""
    from agentwatch.store.dialect import pg_copy_insert, sqlite_insert

    sqlite = backend(conn) is Backend.SQLITE
    stored = encode(conn, NameCache(), rows, pack=sqlite)
    if sqlite:
        sqlite_insert(conn, stored)
    else:
        pg_copy_insert(conn, stored)


def _v1_create(conn: Connection) -> None:
    """Create the events table; convert a brief-schema table if one is there."""
    insp = inspect(conn)
    legacy = "events" in insp.get_table_names()
    if legacy:
        cols = {c["name"] for c in insp.get_columns("events")}
        if "ts" in cols:  # already ours (a half-recorded earlier run); just record it
            return
        conn.execute(text("ALTER TABLE events RENAME TO events_legacy"))
        for ix in insp.get_indexes("events_legacy"):
            if ix["name"]:
                conn.execute(text(f'DROP INDEX IF EXISTS "{ix["name"]}"'))
    _current_tables(conn)
    if not legacy:
        return
    batch = []
    for r in conn.execute(text("SELECT * FROM events_legacy")).mappings():
        meta = r.get("metadata")
        if meta is not None:
            try:
                json.loads(meta)
            except ValueError:
                meta = json.dumps({"legacy_metadata": meta})
        lat = float(r["latency_ms"])
        d = {
            "id": r["id"],
            "task_name": r["task_name"],
            "agent_name": r["agent_name"],
            "model": r["model"],
            "input_tokens": r["input_tokens"],
            "output_tokens": r["output_tokens"],
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "latency_ms": lat,
            "cost_usd": r["cost_usd"],
            "status": r["status"],
            "error_message": r["error_message"],
            "ts": _legacy_ts(r["timestamp"]),
            "metadata": meta,
            "kind": "llm",
            "trace_id": None,
            "parent_id": None,
            "provider": None,
            "user_id": None,
            "session_id": None,
            "latency_bin": latency_bin(lat),
            "flags": FLAG_CLIENT_COST,  # the brief's rows always carried their cost
        }
        batch.append(tuple(d[c] for c in INSERT_COLUMNS))
    # Oldest first, so seq (insertion order) matches time order for old data.
    batch.sort(key=lambda b: b[INSERT_COLUMNS.index("ts")])
    if batch:
        _insert_logical(conn, batch)
    conn.execute(text("DROP TABLE events_legacy"))


def _superseded(conn: Connection) -> None:
    """Versions 2 to 5 built the first rollup layout and packed ids; version 6
    replaces both, so on a database that lacks them there is nothing to do."""


# The first layout's logical columns, as its events table named them.
_V5_COLUMNS = (
    "id",
    "task_name",
    "agent_name",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cost_usd",
    "status",
    "error_message",
    "ts",
    "metadata",
    "kind",
    "trace_id",
    "parent_id",
    "provider",
    "user_id",
    "session_id",
    "latency_bin",
)
# The logical row is the old stored row plus its flags.
assert tuple(INSERT_COLUMNS) == (*_V5_COLUMNS, "flags")
_V5_META = _V5_COLUMNS.index("metadata")


def _v5_flags(row: tuple[Any, ...]) -> int:
    """Flags of a first-layout row: what its metadata says (whether its cost
    came with it was not kept; reprice treats it as priced by the server)."""
    meta = row[_V5_META]
    if not meta or ("partial" not in meta and "usage_missing" not in meta):
        return 0
    try:
        d = json.loads(meta)
    except ValueError:
        return 0
    return quality_flags(d) if isinstance(d, dict) else 0


def _v6_layout(conn: Connection) -> None:
    """The current layout: names dictionary, (ts, id) key, rollups by series.

    A database in the first layout has its events copied over in seq order
    (so insertion order is kept), 20,000 at a time, then its rollups are
    recounted from the events.
    """
    insp = inspect(conn)
    have = set(insp.get_table_names())
    old_events = "events" in have and "agent_name" in {
        c["name"] for c in insp.get_columns("events")
    }
    if "rollups" in have and "width" in {c["name"] for c in insp.get_columns("rollups")}:
        conn.execute(text("DROP TABLE rollups"))
    if not old_events:
        _current_tables(conn)
        _pg_rollup_storage(conn)
        return
    # The old indexes go first: their names (ix_events_trace) are taken again.
    for ix in insp.get_indexes("events"):
        if ix["name"]:
            conn.execute(text(f'DROP INDEX IF EXISTS "{ix["name"]}"'))
    conn.execute(text("ALTER TABLE events RENAME TO events_v5"))
    if backend(conn) is Backend.POSTGRESQL:
        # The old primary key's index and sequence keep their names; free them.
        conn.execute(text("ALTER TABLE events_v5 DROP CONSTRAINT IF EXISTS events_pkey"))
        conn.execute(text("ALTER SEQUENCE IF EXISTS events_seq_seq RENAME TO events_v5_seq_seq"))
    _current_tables(conn)
    cols = ", ".join(_V5_COLUMNS)
    last = -1
    p = placeholder(conn)
    while True:
        rows = conn.exec_driver_sql(
            f"SELECT seq, {cols} FROM events_v5 WHERE seq > {p} ORDER BY seq LIMIT {p}",
            (last, _CHUNK),
        ).fetchall()
        if not rows:
            break
        last = int(rows[-1][0])
        _insert_logical(conn, [(unpack_id(r[1]), *r[2:], _v5_flags(tuple(r[1:]))) for r in rows])
    conn.execute(text("DROP TABLE events_v5"))
    _pg_rollup_storage(conn)
    from agentwatch.store.rollups import rebuild

    rebuild(conn)


def _pg_rollup_storage(conn: Connection) -> None:
    """PostgreSQL: rollup rows are rewritten at every build. With pages 70%
    full the new version of a row fits on its own page, so the update is a
    HOT one (no index entry to add) and the old version is reclaimed by page
    pruning without waiting for a vacuum; autovacuum still runs early (2% of
    the table dead) so that the table never carries much dead weight."""
    if backend(conn) is not Backend.POSTGRESQL:
        return
    conn.execute(
        text(
            "ALTER TABLE rollups SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05)"
        )
    )


def _v10_api_keys(conn: Connection) -> None:
    """API keys (issue 11): names, scopes and secret hashes (store/keys.py)."""
    from agentwatch.store.keys import create_table

    create_table(conn)


def _v11_alerts(conn: Connection) -> None:
    """Alerts (issue 13): rules, state, history, deliveries, calls per run
    (store/alerts.py)."""
    from agentwatch.store.alerts import create_tables

    create_tables(conn)


def _v12_ingest_rejects(conn: Connection) -> None:
    """Refused ingest requests per day and status (issue 14, store/quality.py)."""
    from agentwatch.store.quality import create_table

    create_table(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "events table with contract fields, integer timestamps, latency bins", _v1_create),
    (2, "minute and hour rollups with latency histograms", _superseded),
    (3, "ten-minute and day rollups (rebuilt from the events)", _superseded),
    (4, "four-hour and totals rollups; minute rollups for recent data only", _superseded),
    (5, "SQLite: UUID ids stored as 16 bytes", _superseded),
    (6, "names dictionary, (ts, id) key, rollups by series, deferred building", _v6_layout),
    (10, "API keys: name, scope, secret hash, last use", _v10_api_keys),
    (11, "alerts: rules, state, history, deliveries, LLM calls per run", _v11_alerts),
    (12, "refused ingest requests per day and status (data quality)", _v12_ingest_rejects),
]

LATEST = max(v for v, _, _ in MIGRATIONS)


def applied_versions(conn: Connection) -> set[int]:
    if "agentwatch_schema" not in inspect(conn).get_table_names():
        return set()
    return {int(v) for (v,) in conn.execute(text("SELECT version FROM agentwatch_schema"))}


def upgrade(conn: Connection) -> list[int]:
    """Apply every pending migration; returns the versions applied.

    Every migration not yet recorded runs, in order, rather than only those
    above the highest recorded: features developed side by side take version
    numbers out of order, and a database must get all of them.

    The caller holds the backend's migration lock (see dialect.migration_lock)
    so that only one server migrates a shared database.
    """
    metadata.create_all(conn, tables=[schema_version])
    conn.commit()
    applied = []
    have = applied_versions(conn)
    for version, desc, fn in MIGRATIONS:
        if version in have:
            continue
        fn(conn)
        conn.execute(
            schema_version.insert().values(
                version=version, description=desc, applied_at=int(time.time())
            )
        )
        conn.commit()
        applied.append(version)
    return applied


__all__ = ["LATEST", "MIGRATIONS", "events", "pack_id", "upgrade"]
