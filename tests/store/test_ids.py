"""SQLite keeps canonical UUID ids as 16 bytes; every id reads back exactly as sent."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import open_store
from agentwatch.store.base import Filters
from agentwatch.store.codec import pack_id, unpack_id

IDS = [
    str(uuid.UUID(int=0x0192F3A4B5C67D8E9FA0B1C2D3E4F506)),  # canonical: packed
    "0192F3A4-B5C6-7D8E-9FA0-B1C2D3E4F507",  # uppercase: kept as text
    "0192f3a4b5c67d8e9fa0b1c2d3e4f508",  # no hyphens: kept as text
    "run-42",
    "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f50g",  # not hex
    "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5 0",  # a space
    "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4-5a0",  # a hyphen out of place
    "0192f3a4-b5c6-7d8e-9fA0-b1c2d3e4f509",  # one uppercase digit
]


def test_pack_round_trip() -> None:
    for i in IDS:
        assert unpack_id(pack_id(i)) == i
    assert isinstance(pack_id(IDS[0]), bytes) and len(pack_id(IDS[0])) == 16
    assert all(pack_id(i) == i for i in IDS[1:])


def _events() -> list[Event]:
    # With timestamps: an event is a repeat when its id AND timestamp are stored.
    return [
        Event(
            id=i,
            task_name="t",
            agent_name="a",
            model="gpt-4o",
            input_tokens=n,
            timestamp=f"2026-11-30T12:00:{n:02d}+00:00",
        )
        for n, i in enumerate(IDS)
    ]


def _types(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return {str(k): t for k, t in con.execute("SELECT input_tokens, typeof(id) FROM events")}
    finally:
        con.close()


def test_ids_stored_compactly_and_read_back_exactly(tmp_path: Path) -> None:
    db = tmp_path / "ids.db"
    store = open_store(str(db))
    try:
        rows = to_rows(_events(), PriceBook())
        assert store.insert_events(rows).inserted == len(IDS)
        again = store.insert_events(rows)  # a retried batch: nothing new
        assert again.inserted == 0 and again.new_ids == set()
        got = {e["input_tokens"]: e["id"] for e in store.query_events(Filters(), 50, 0)}
        assert got == dict(enumerate(IDS))
        copied = [r[0] for chunk in store.iter_rows() for r in chunk]
        assert sorted(copied) == sorted(IDS)
    finally:
        store.close()
    assert _types(db) == {str(n): "blob" if n == 0 else "text" for n in range(len(IDS))}


def test_a_first_layout_database_is_converted(tmp_path: Path) -> None:
    """A database of the first layout (version 5: names in every row, ids as
    text or 16 bytes) is converted in place: every event reads back exactly,
    a retry of one is still recognised, and the metrics count each once."""
    db = tmp_path / "v5.db"
    make_v5(db, _events())
    store = open_store(str(db))
    try:
        assert _types(db)["0"] == "blob"
        # The converted event still deduplicates a retry of the same event.
        assert store.insert_events(to_rows(_events()[:1], PriceBook())).inserted == 0
        got = {e["input_tokens"]: e["id"] for e in store.query_events(Filters(), 50, 0)}
        assert got == dict(enumerate(IDS))
        s = store.summary(0, 2**62, Filters()).llm
        assert s.requests == len(IDS) and s.input_tokens == sum(range(len(IDS)))
    finally:
        store.close()
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert "events_v5" not in tables


# The first layout's events table, as migrations 1 to 5 left it.
V5_EVENTS = """
CREATE TABLE events (
  seq INTEGER PRIMARY KEY, id VARCHAR(128) NOT NULL, task_name VARCHAR(256) NOT NULL,
  agent_name VARCHAR(256) NOT NULL, model VARCHAR(256) NOT NULL,
  input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT DEFAULT '0' NOT NULL, cache_write_tokens BIGINT DEFAULT '0' NOT NULL,
  reasoning_tokens BIGINT DEFAULT '0' NOT NULL, latency_ms FLOAT NOT NULL,
  cost_usd FLOAT NOT NULL, status VARCHAR(16) NOT NULL, error_message TEXT, ts BIGINT NOT NULL,
  metadata TEXT, kind VARCHAR(8) DEFAULT 'llm' NOT NULL, trace_id VARCHAR(128),
  parent_id VARCHAR(128), provider VARCHAR(256), user_id VARCHAR(256), session_id VARCHAR(256),
  latency_bin SMALLINT DEFAULT '0' NOT NULL
);
CREATE UNIQUE INDEX ux_events_id ON events (id);
CREATE INDEX ix_events_ts ON events (ts);
CREATE INDEX ix_events_agent_ts ON events (agent_name, ts);
CREATE TABLE rollups (width BIGINT NOT NULL, bucket BIGINT NOT NULL, kind VARCHAR(8) NOT NULL,
  agent_name VARCHAR(256) NOT NULL, task_name VARCHAR(256) NOT NULL, model VARCHAR(256) NOT NULL,
  n BIGINT NOT NULL, PRIMARY KEY (width, bucket, kind, agent_name, task_name, model)
) WITHOUT ROWID;
CREATE TABLE agentwatch_schema (version INTEGER PRIMARY KEY, description VARCHAR(200) NOT NULL,
  applied_at BIGINT NOT NULL);
INSERT INTO agentwatch_schema VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 0),
  (5, 'e', 0);
"""


def make_v5(db: Path, events: list[Event]) -> None:
    from agentwatch.store.migrations import _V5_COLUMNS as V5

    con = sqlite3.connect(db)
    con.executescript(V5_EVENTS)
    rows = to_rows(events, PriceBook())
    cols = ", ".join(V5)
    marks = ", ".join("?" for _ in V5)
    for r in rows:
        # The first id packed as version 5 did, the others as text.
        rid = pack_id(r[0]) if r[0] == IDS[0] else r[0]
        con.execute(f"INSERT INTO events ({cols}) VALUES ({marks})", (rid, *r[1 : len(V5)]))
    con.commit()
    con.close()


def test_flags_say_how_each_events_numbers_were_made(tmp_path: Path) -> None:
    """Ingest records, per event, whether its cost came with it, whether the
    fallback rate priced it, and the SDK's usage-missing and partial-stream
    markers (reprice and the data-quality view read them)."""
    from agentwatch.store.tables import (
        FLAG_CLIENT_COST,
        FLAG_FALLBACK_PRICE,
        FLAG_PARTIAL,
        FLAG_USAGE_MISSING,
        INSERT_COLUMNS,
    )

    evs = [
        Event(task_name="t", agent_name="a", model="gpt-4o", cost_usd=0.5),
        Event(task_name="t", agent_name="a", model="gpt-4o"),
        Event(task_name="t", agent_name="a", model="no-such-model-xyz"),
        Event(task_name="t", agent_name="a", model="gpt-4o", metadata={"usage_missing": True}),
        Event(task_name="t", agent_name="a", model="gpt-4o", metadata={"partial": True}),
    ]
    rows = to_rows(evs, PriceBook())
    flags = [r[INSERT_COLUMNS.index("flags")] for r in rows]
    assert flags == [FLAG_CLIENT_COST, 0, FLAG_FALLBACK_PRICE, FLAG_USAGE_MISSING, FLAG_PARTIAL]
    store = open_store(str(tmp_path / "f.db"))
    try:
        store.insert_events(rows)
        back = [r for chunk in store.iter_rows() for r in chunk]
        assert sorted(r[INSERT_COLUMNS.index("flags")] for r in back) == sorted(flags)
    finally:
        store.close()
