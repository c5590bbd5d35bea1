"""The one seam where SQLite and PostgreSQL differ.

Everything else in the store is backend-neutral SQLAlchemy Core. What differs:
how an engine is created and tuned, the insert-or-skip statement used for
idempotent ingest, and how concurrent servers serialize migrations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from agentwatch.store.tables import INSERT_COLUMNS, events


class StoreConfigError(ValueError):
    """The database location cannot be used; the message is one line for the user."""


def is_url(db: str) -> bool:
    return "://" in db


def make_engine(db: str) -> tuple[Engine, str]:
    """Engine and backend name for a path (SQLite) or a database URL."""
    if not is_url(db) or db.startswith("sqlite"):
        return _sqlite_engine(db), "sqlite"
    url = make_url(db)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        engine = create_engine(url, pool_size=8, max_overflow=4, pool_pre_ping=True)
        return engine, "postgresql"
    raise StoreConfigError(f"unsupported database URL scheme {url.drivername!r}")


def _sqlite_engine(db: str) -> Engine:
    path = make_url(db).database if is_url(db) else db
    if not path or path == ":memory:":
        raise StoreConfigError("an in-memory SQLite database cannot be shared; give a file path")
    p = Path(path).expanduser()
    if not p.parent.exists():
        raise StoreConfigError(f"database directory does not exist: {p.parent}")
    engine = create_engine(
        f"sqlite:///{p}",
        # Readers run on a thread pool and the writer on its own thread.
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself so DDL in migrations is transactional too.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL: readers never block the writer. synchronous=NORMAL: a commit is
        # durable against a process crash (the WAL is written before COMMIT
        # returns) without an fsync per commit; only an OS crash or power loss
        # can lose the last commits.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        # 64 MiB page cache per connection and memory-mapped reads: the metrics
        # queries scan index ranges that stay hot this way.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def insert_ignore_sql(engine: Engine) -> str:
    """INSERT of INSERT_COLUMNS that skips rows whose id is already stored,
    compiled with positional parameters so ingest can hand the driver's
    executemany plain tuples (the cheapest shape to bind)."""
    pg = engine.dialect.name == "postgresql"
    dialect_mod: Any = postgresql if pg else sqlite
    stmt = dialect_mod.insert(events).on_conflict_do_nothing(index_elements=["id"])
    cols = {c: None for c in INSERT_COLUMNS}
    positional = type(engine.dialect)(paramstyle="format" if pg else "qmark")  # type: ignore[call-arg]
    return str(stmt.values(cols).compile(dialect=positional))


@contextlib.contextmanager
def migration_lock(conn: Connection) -> Iterator[None]:
    """Only one server migrates a shared database at a time."""
    if conn.dialect.name == "postgresql":
        # Session-level advisory lock: others wait here until we are done.
        conn.execute(text("SELECT pg_advisory_lock(727274)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(727274)"))
            conn.commit()
    else:
        # SQLite serializes writers with its own file lock; the migration
        # transactions themselves are the critical section.
        yield
