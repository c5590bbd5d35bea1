"""Event storage. `open_store` is the one way the server gets a store."""

from __future__ import annotations

from agentwatch.store.base import DIMENSIONS, Filters, InsertResult, Store, Summary
from agentwatch.store.dialect import Backend, StoreConfigError
from agentwatch.store.sql import SqlStore


def open_store(db: str, migrate: bool = True, maintenance: bool = True) -> SqlStore:
    """Open (and by default migrate) the store at a SQLite path or database URL.

    maintenance=False leaves background upkeep (WAL checkpoints) to a later
    start_maintenance() call, for a caller that must set things up first.
    """
    store = SqlStore(db)
    if migrate:
        store.migrate()
    if maintenance:
        store.start_maintenance()
    return store


__all__ = [
    "DIMENSIONS",
    "Backend",
    "Filters",
    "InsertResult",
    "SqlStore",
    "Store",
    "StoreConfigError",
    "Summary",
    "open_store",
]
