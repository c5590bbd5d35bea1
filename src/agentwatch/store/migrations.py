"""Versioned schema migrations, applied in order at server start.

Each migration runs in its own transaction and records its version in
`agentwatch_schema`. A database is upgraded in place: version 1 also adopts a
database created with the brief's original single-table schema (text
timestamps, none of the contract's added columns), converting its rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, inspect, text

from agentwatch.store.sketch import latency_bin
from agentwatch.store.tables import events, metadata, schema_version


def _legacy_ts(value: str) -> int:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


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
    metadata.create_all(conn, tables=[events])
    if not legacy:
        return
    rows = conn.execute(text("SELECT * FROM events_legacy")).mappings()
    batch = []
    for r in rows:
        meta = r.get("metadata")
        if meta is not None:
            try:
                json.loads(meta)
            except ValueError:
                meta = json.dumps({"legacy_metadata": meta})
        batch.append(
            {
                "id": r["id"],
                "task_name": r["task_name"],
                "agent_name": r["agent_name"],
                "model": r["model"],
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "latency_ms": r["latency_ms"],
                "cost_usd": r["cost_usd"],
                "status": r["status"],
                "error_message": r["error_message"],
                "ts": _legacy_ts(r["timestamp"]),
                "metadata": meta,
                "kind": "llm",
                "latency_bin": latency_bin(float(r["latency_ms"])),
            }
        )
    # Oldest first, so seq (insertion order) matches time order for old data.
    batch.sort(key=lambda b: b["ts"])
    if batch:
        conn.execute(events.insert(), batch)
    conn.execute(text("DROP TABLE events_legacy"))


def _v2_rollups(conn: Connection) -> None:
    """Minute and hour pre-aggregates, filled from the events already stored."""
    from agentwatch.store.tables import rollups

    metadata.create_all(conn, tables=[rollups])
    _recount_rollups(conn)


def _recount_rollups(conn: Connection) -> None:
    """The rollup units changed: recount every rollup row from the events."""
    from agentwatch.store.rollups import rebuild

    rebuild(conn)


def _v5_binary_ids(conn: Connection) -> None:
    """SQLite: ids that are canonical UUIDs become their 16 raw bytes (see
    store/dialect.py pack_id). PostgreSQL keeps text ids; nothing to do there."""
    if conn.dialect.name != "sqlite":
        return
    from agentwatch.store.dialect import pack_id

    raw = conn.connection.driver_connection
    assert raw is not None
    raw.create_function("aw_pack_id", 1, pack_id, deterministic=True)
    conn.execute(text("UPDATE events SET id = aw_pack_id(id) WHERE typeof(id) = 'text'"))


def _v10_api_keys(conn: Connection) -> None:
    """API keys (issue 11): names, scopes and secret hashes (store/keys.py)."""
    from agentwatch.store.keys import create_table

    create_table(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "events table with contract fields, integer timestamps, latency bins", _v1_create),
    (2, "minute and hour rollups with latency histograms", _v2_rollups),
    (3, "ten-minute and day rollups (rebuilt from the events)", _recount_rollups),
    (4, "four-hour and totals rollups; minute rollups for recent data only", _recount_rollups),
    (5, "SQLite: UUID ids stored as 16 bytes", _v5_binary_ids),
    (10, "API keys: name, scope, secret hash, last use", _v10_api_keys),
]

LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    if "agentwatch_schema" not in inspect(conn).get_table_names():
        return 0
    v = conn.execute(text("SELECT MAX(version) FROM agentwatch_schema")).scalar()
    return int(v or 0)


def applied_versions(conn: Connection) -> set[int]:
    if "agentwatch_schema" not in inspect(conn).get_table_names():
        return set()
    return {int(v) for (v,) in conn.execute(text("SELECT version FROM agentwatch_schema"))}


def upgrade(conn: Connection) -> list[int]:
    """Apply every pending migration; returns the versions applied.

    The caller holds the backend's migration lock (see dialect.migration_lock)
    so that only one server migrates a shared database.
    """
    metadata.create_all(conn, tables=[schema_version])
    conn.commit()
    applied = []
    # Every migration not yet recorded runs, in order, rather than only those
    # above the highest recorded: features developed side by side take
    # version numbers out of order, and a database must get all of them.
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
