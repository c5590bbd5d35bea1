"""A database made with the brief's original schema is upgraded in place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from agentwatch.store import open_store
from agentwatch.store.base import Filters
from agentwatch.store.migrations import LATEST
from tests.conftest import ServerProcess

BRIEF_SCHEMA = """
CREATE TABLE events (
  id TEXT PRIMARY KEY, task_name TEXT NOT NULL, agent_name TEXT NOT NULL,
  model TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
  latency_ms REAL NOT NULL, cost_usd REAL NOT NULL, status TEXT NOT NULL,
  error_message TEXT, timestamp TEXT NOT NULL, metadata TEXT
);
CREATE INDEX idx_events_timestamp ON events (timestamp);
CREATE INDEX idx_events_agent_name ON events (agent_name);
CREATE INDEX idx_events_task_name ON events (task_name);
CREATE INDEX idx_events_status ON events (status);
"""


def make_legacy(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(BRIEF_SCHEMA)
    rows = [
        (
            "a",
            "t1",
            "bot",
            "gpt-4o",
            100,
            20,
            500.0,
            0.01,
            "success",
            None,
            "2026-02-09T15:30:00+00:00",
            json.dumps({"k": 1}),
        ),
        (
            "b",
            "t2",
            "bot",
            "gpt-4o-mini",
            50,
            5,
            900.0,
            0.002,
            "error",
            "boom",
            "2026-02-09T15:31:00",
            None,
        ),
        (
            "c",
            "t1",
            "bot",
            "gpt-4o",
            10,
            1,
            100.0,
            0.0,
            "success",
            None,
            "2026-02-09T15:29:00+00:00",
            "not json",
        ),
    ]
    con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()


def test_brief_schema_database_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    make_legacy(db)
    store = open_store(str(db))
    try:
        evs = store.query_events(Filters(), 10, 0)
        assert [e["id"] for e in evs] == ["b", "a", "c"]
        a = next(e for e in evs if e["id"] == "a")
        assert a["timestamp"] == "2026-02-09T15:30:00+00:00" and a["metadata"] == {"k": 1}
        assert a["kind"] == "llm" and a["cost_usd"] == 0.01
        b = next(e for e in evs if e["id"] == "b")
        assert b["timestamp"] == "2026-02-09T15:31:00+00:00" and b["error_message"] == "boom"
        c = next(e for e in evs if e["id"] == "c")
        assert c["metadata"] == {"legacy_metadata": "not json"}
    finally:
        store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT MAX(version) FROM agentwatch_schema").fetchone()[0] == LATEST
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "events_legacy" not in tables
    con.close()
    # Opening again applies nothing and keeps the data.
    store = open_store(str(db))
    assert store.migrate() == [] and store.count_events() == 3
    store.close()


def test_server_serves_upgraded_database(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    make_legacy(db)
    srv = ServerProcess(db).start()
    try:
        assert httpx.get(srv.url + "/api/health").json()["events"] == 3
        rows = httpx.get(
            srv.url + "/api/metrics/breakdown", params={"period": "all", "group_by": "model"}
        ).json()
        assert {r["name"]: r["requests"] for r in rows} == {"gpt-4o": 2, "gpt-4o-mini": 1}
    finally:
        srv.stop()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "w.db"))
    store.close()
    con = sqlite3.connect(tmp_path / "w.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_delete_events_before_in_chunks(tmp_path: Path) -> None:
    from agentwatch.pricing import PriceBook
    from agentwatch.schema import Event
    from agentwatch.server.validate import to_rows

    store = open_store(str(tmp_path / "r.db"))
    try:
        evs = [
            Event(
                id=f"e{i}",
                task_name="t",
                agent_name="a",
                model="m",
                latency_ms=1.0,
                timestamp=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
            )
            for i in range(1200)
        ]
        store.insert_events(to_rows(evs, PriceBook()))
        cut = 1767225600_000_000 + 1000 * 1_000_000  # 2026-01-01 + 1000 s
        assert store.delete_events_before(cut, chunk=128) == 1000
        left = store.query_events(Filters(), 1000, 0)
        assert len(left) == 200 and min(e["id"] for e in left) == "e1000"
    finally:
        store.close()
