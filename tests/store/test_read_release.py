"""A read that fails or stops half-way must release its connection clean
(issue 17, store side).

Found while hardening the API: a read that failed part-way through its rows
(there, on a row an older server stored with a timestamp in year 10000) left
its pooled SQLite connection with a statement in progress; the pool's
ROLLBACK then failed, the connection kept its read transaction, and every
write that later got that connection failed with "database is locked" (503
for ingest). Now such rows read back (tests/server/test_legacy_rows.py), and
whatever stops a read half-way, its connection is not reused dirty.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store.base import Filters
from tests.server.test_legacy_rows import store_legacy_rows


def _filler(store: SqlStore) -> None:
    filler = [
        Event(id=f"f{i}", task_name="t", agent_name="a", model="m", timestamp="2000-01-02")
        for i in range(1000)
    ]
    store.insert_events(to_rows(filler, PriceBook()))


def _writes(store: SqlStore, n: int = 10) -> list[str]:
    def write(i: int) -> str:
        ev = Event(id=f"w{i}", task_name="t", agent_name="a", model="m")
        try:
            store.insert_events(to_rows([ev], PriceBook()))
        except Exception as e:
            return str(e).splitlines()[0]
        return "ok"

    with ThreadPoolExecutor(1) as writer:
        return list(writer.map(write, range(n)))


def test_reads_over_legacy_rows_succeed_and_writes_go_on(db_url: str) -> None:
    store_legacy_rows(db_url)
    store = open_store(db_url)
    try:
        _filler(store)
        with ThreadPoolExecutor(3) as readers:
            pages = list(readers.map(lambda _: store.query_events(Filters(), 1000, 0), range(30)))
        assert all(len(p) == 1000 for p in pages)
        years = {e["timestamp"][:6] for e in store.query_events(Filters(), 2000, 0)}
        assert {"+10000", "0000-1"} <= years
        assert _writes(store) == ["ok"] * 10
    finally:
        store.close()


def test_a_read_stopped_half_way_does_not_block_writes(db_url: str) -> None:
    store = open_store(db_url)
    try:
        _filler(store)
        # Reads that stop with rows unread, their connections back in the pool
        # (what a read failing half-way leaves behind).
        for _ in range(8):
            conn = store.engine.connect()
            result = conn.exec_driver_sql("SELECT seq FROM events")
            assert result.fetchone() is not None
            conn.close()
        # And a consumer that abandons the store's own chunked iteration.
        it = store.iter_rows(chunk=100)
        assert len(next(it)) == 100
        assert _writes(store) == ["ok"] * 10
        del it
    finally:
        store.close()
