"""A PostgreSQL database of the first layout (migrations 1 to 5) is converted
in place by migration 6: its events read back exactly, in their order, a retry
of one is still recognised, and the metrics count each once."""

from __future__ import annotations

import psycopg

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import open_store
from agentwatch.store.base import Filters
from agentwatch.store.migrations import _V5_COLUMNS as V5

# What migrations 1 to 5 created on PostgreSQL (SQLAlchemy's DDL of the time).
V5_DDL = """
CREATE TABLE events (
  seq BIGSERIAL NOT NULL, id VARCHAR(128) NOT NULL, task_name VARCHAR(256) NOT NULL,
  agent_name VARCHAR(256) NOT NULL, model VARCHAR(256) NOT NULL,
  input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT DEFAULT '0' NOT NULL, cache_write_tokens BIGINT DEFAULT '0' NOT NULL,
  reasoning_tokens BIGINT DEFAULT '0' NOT NULL, latency_ms FLOAT NOT NULL,
  cost_usd FLOAT NOT NULL, status VARCHAR(16) NOT NULL, error_message TEXT, ts BIGINT NOT NULL,
  metadata TEXT, kind VARCHAR(8) DEFAULT 'llm' NOT NULL, trace_id VARCHAR(128),
  parent_id VARCHAR(128), provider VARCHAR(256), user_id VARCHAR(256), session_id VARCHAR(256),
  latency_bin SMALLINT DEFAULT '0' NOT NULL, PRIMARY KEY (seq)
);
CREATE UNIQUE INDEX ux_events_id ON events (id);
CREATE INDEX ix_events_ts ON events (ts);
CREATE INDEX ix_events_agent_ts ON events (agent_name, ts);
CREATE INDEX ix_events_trace ON events (trace_id) WHERE trace_id IS NOT NULL;
CREATE TABLE rollups (
  width BIGINT NOT NULL, bucket BIGINT NOT NULL, kind VARCHAR(8) NOT NULL,
  agent_name VARCHAR(256) NOT NULL, task_name VARCHAR(256) NOT NULL, model VARCHAR(256) NOT NULL,
  n BIGINT NOT NULL,
  CONSTRAINT pk_rollups PRIMARY KEY (width, bucket, kind, agent_name, task_name, model)
);
CREATE TABLE agentwatch_schema (
  version INTEGER NOT NULL, description VARCHAR(200) NOT NULL, applied_at BIGINT NOT NULL,
  PRIMARY KEY (version)
);
INSERT INTO agentwatch_schema VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 0),
  (5, 'e', 0);
"""


def _events() -> list[Event]:
    return [
        Event(
            id=f"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5{n:02d}",
            task_name=f"t{n % 3}",
            agent_name="a",
            model="gpt-4o",
            input_tokens=n,
            timestamp=f"2026-11-30T12:00:{n:02d}+00:00",
            provider="openai" if n % 2 else None,
            metadata={"partial": True} if n == 4 else None,
        )
        for n in range(12)
    ]


def test_a_first_layout_database_is_converted(pg_url: str) -> None:
    rows = to_rows(_events(), PriceBook())
    with psycopg.connect(pg_url) as conn:
        conn.execute(V5_DDL)
        cols = ", ".join(V5)
        marks = ", ".join("%s" for _ in V5)
        for r in rows:
            conn.execute(f"INSERT INTO events ({cols}) VALUES ({marks})", r[: len(V5)])
    store = open_store(pg_url)
    try:
        got = store.query_events(Filters(), 50, 0)
        assert [e["input_tokens"] for e in got] == list(range(11, -1, -1))
        assert {e["id"] for e in got} == {e.id for e in _events()}
        assert {e["provider"] for e in got} == {"openai", None}
        # A retry of a converted event is recognised; new ones get new seqs.
        assert store.insert_events(rows[:3]).inserted == 0
        s = store.summary(0, 2**62, Filters()).llm
        assert s.requests == 12 and s.input_tokens == sum(range(12))
        assert store.breakdown("task_name", 0, 2**62, Filters())[0].totals.requests == 4
        more = to_rows([Event(task_name="t", agent_name="a", model="gpt-4o")], PriceBook())
        assert store.insert_events(more).inserted == 1
        assert store.count_events() == 13
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        assert "events_v5" not in tables
