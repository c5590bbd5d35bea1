"""The SQLite settings the performance figures depend on (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

from agentwatch.store import open_store


def test_new_database_pages_cache_and_journal(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "t.db"))
    try:
        with store.engine.connect() as conn:
            got = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("page_size", "cache_size", "mmap_size", "journal_mode", "synchronous")
            }
    finally:
        store.close()
    # 8 KiB pages; 4 MiB cache per connection and no mmap (bounded RSS);
    # WAL with synchronous=NORMAL (1).
    assert got == {
        "page_size": 8192,
        "cache_size": -4096,
        "mmap_size": 0,
        "journal_mode": "wal",
        "synchronous": 1,
    }
