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
from agentwatch.store.dialect import pack_id, unpack_id

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
    return [
        Event(id=i, task_name="t", agent_name="a", model="gpt-4o", input_tokens=n)
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


def test_text_ids_of_an_older_database_are_converted(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    store = open_store(str(db))
    store.insert_events(to_rows(_events(), PriceBook()))
    store.close()
    # Make it look like a version-4 database: ids as text, no version 5.
    con = sqlite3.connect(db)
    con.execute("DELETE FROM agentwatch_schema WHERE version >= 5")
    con.execute("UPDATE events SET id = ? WHERE input_tokens = 0", (IDS[0],))
    con.commit()
    con.close()
    assert _types(db)["0"] == "text"
    store = open_store(str(db))
    try:
        assert _types(db)["0"] == "blob"
        # The converted id still deduplicates a retry of the same event.
        assert store.insert_events(to_rows(_events()[:1], PriceBook())).inserted == 0
        got = {e["input_tokens"]: e["id"] for e in store.query_events(Filters(), 50, 0)}
        assert got == dict(enumerate(IDS))
    finally:
        store.close()
