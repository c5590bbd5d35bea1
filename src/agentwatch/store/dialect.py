"""The one seam where SQLite and PostgreSQL differ.

Everything else in the store is backend-neutral SQLAlchemy Core. What differs:
how an engine is created and tuned, the insert-or-skip statement used for
idempotent ingest, and how concurrent servers serialize migrations.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from agentwatch.store.rollups import merge_hist
from agentwatch.store.tables import INSERT_COLUMNS


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
        engine = create_engine(
            url,
            pool_size=8,
            max_overflow=4,
            # A connection broken by a database restart is noticed on checkout
            # and replaced, so the server recovers by itself when it returns.
            pool_pre_ping=True,
            # An unreachable host fails the request (503) in seconds, not minutes.
            connect_args={"connect_timeout": 5},
        )
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
        # Rollup upserts merge latency histograms with this (store/rollups.py).
        dbapi_conn.create_function("aw_merge_hist", 2, merge_hist, deterministic=True)
        cur = dbapi_conn.cursor()
        # WAL: readers never block the writer. synchronous=NORMAL: a commit is
        # durable against a process crash (the WAL is written before COMMIT
        # returns) without an fsync per commit; only an OS crash or power loss
        # can lose the last commits.
        # 8 KiB pages for a new database (a no-op on an existing one): measured
        # at 1M events, 6% fewer bytes per event than 4 KiB pages and ~10%
        # faster inserts; 16 KiB gained nothing more.
        cur.execute("PRAGMA page_size=8192")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        # 4 MiB of page cache per connection, no memory mapping: the metrics
        # read rollups and short raw ranges, and the writer touches the right
        # edge of each index, so a small cache stays hot; the OS page cache
        # holds the rest. Bigger caches (64 MiB each, plus a 256 MiB map)
        # were measured to push the server past 300 MB RSS under ingest load
        # (139 MB with these) without making the queries faster.
        cur.execute("PRAGMA cache_size=-4096")
        cur.execute("PRAGMA mmap_size=0")
        cur.execute("PRAGMA temp_store=MEMORY")
        # No checkpoint inside a commit: the WAL is copied back into the
        # database by a background thread (SqliteCheckpointer), so the fsync
        # a checkpoint needs never delays an acknowledgement.
        cur.execute("PRAGMA wal_autocheckpoint=0")
        # After a checkpoint, shrink the WAL file back to 64 MiB at most.
        cur.execute("PRAGMA journal_size_limit=67108864")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (IMMEDIATE): a deferred
        # transaction that reads first and writes later can fail with "database
        # is locked" without waiting, when the WAL moved under its snapshot.
        writer = conn.get_execution_options().get("aw_writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


# One key for every AgentWatch server on a database: writers take it for the
# length of their transaction (see begin_write).
_WRITE_LOCK_KEY = 727275


def begin_write(conn: Connection) -> None:
    """First statement of every write transaction: one writer at a time.

    SQLite already did this with BEGIN IMMEDIATE (the "begin" hook above). On
    PostgreSQL a transaction-level advisory lock serializes the writers of
    every server sharing the database. That buys three things: `seq` values
    are assigned and committed in the same order, so a server can tail the
    table by `seq > last_seen` and never miss a row that commits late (the
    live stream across servers, store/pgtail.py); two servers inserting the
    same ids or rollup keys in different orders cannot deadlock; and rollup
    read-merge-writes never race. Group commit keeps the cost low: while one
    server holds the lock, the others' batches grow.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY})")


_COLS = ", ".join(INSERT_COLUMNS)
# PostgreSQL bulk insert, the fast way (measured on 60,000 events in batches of
# 5,000: COPY into a staging table 38k rows/s, one INSERT ... SELECT FROM
# unnest(arrays) 16k, executemany in pipeline mode 23k). The staging table is
# per connection, created once, emptied at every commit, and has no defaults,
# so staged rows take no `seq` value.
PG_STAGE_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS aw_stage ON COMMIT DELETE ROWS AS "
    f"SELECT {_COLS} FROM events WITH NO DATA"
)
PG_COPY_SQL = f"COPY aw_stage ({_COLS}) FROM STDIN"
# RETURNING gives the rows that were new (a retried id is skipped by ON
# CONFLICT), so the writer knows exactly what to count in the rollups and to
# announce. A freshly filled temp table is read back in the order it was
# written, so `seq` follows the order of the batch.
PG_INSERT_SQL = (
    f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM aw_stage "
    "ON CONFLICT (id) DO NOTHING RETURNING seq, id"
)


def pg_copy_insert(conn: Connection, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
    """Insert-or-skip `rows` through COPY, inside the caller's transaction;
    returns (seq, id) of the rows that were new."""
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(PG_STAGE_SQL)
        with cur.copy(PG_COPY_SQL) as cp:
            write = cp.write_row
            for r in rows:
                write(r)
        cur.execute(PG_INSERT_SQL)
        got: list[tuple[int, str]] = cur.fetchall()
    # No cleanup: the commit (or a rollback) empties aw_stage, and the store
    # runs one insert per transaction.
    return got


# The channel every server LISTENs on; the payload is the highest seq committed.
NOTIFY_CHANNEL = "agentwatch_events"


# SQLite stores an id that is a UUID in canonical form (lowercase hex, with
# hyphens: what the SDK and the server make) as its 16 raw bytes instead of 36
# characters. The id is kept twice (table and unique index), so this saves
# about 40 bytes per event. The mapping is exact both ways; any other id
# (uppercase, no hyphens, not a UUID) is stored as the text it is.
def pack_id(value: str) -> str | bytes:
    # Four hyphens in place, 32 lowercase hex digits: the canonical form.
    if len(value) == 36 and value[8] == value[13] == value[18] == value[23] == "-":
        h = value.replace("-", "")
        if len(h) == 32 and h == h.lower():
            try:
                b = bytes.fromhex(h)
            except ValueError:  # not hex
                return value
            if len(b) == 16:  # (fromhex skips spaces: they would make it shorter)
                return b
    return value


def unpack_id(value: str | bytes) -> str:
    if isinstance(value, bytes):
        h = value.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return value


# Rows per SQLite INSERT statement (the largest chunk; see sqlite_insert).
_SQLITE_CHUNK = 512


@functools.cache
def _sqlite_insert_sql(rows: int) -> str:
    one = "(" + ", ".join("?" for _ in INSERT_COLUMNS) + ")"
    return (
        f"INSERT INTO events ({_COLS}) VALUES {', '.join(one for _ in range(rows))} "
        "ON CONFLICT (id) DO NOTHING"
    )


def sqlite_insert(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    """Insert-or-skip `rows` inside the caller's transaction; returns how many
    were new.

    Multi-row VALUES statements of up to 512 rows: SQLite inserts them in a
    single step, with the GIL released throughout, instead of one step per
    row as executemany does (measured: a third less CPU per event on the
    writer thread). Chunk sizes are powers of two, so only ten statement
    texts ever exist and all stay in the driver's statement cache.
    """
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    width = len(INSERT_COLUMNS)
    flat = list(itertools.chain.from_iterable(rows))
    flat[0::width] = map(pack_id, flat[0::width])  # the id is each row's first value
    inserted = 0
    i, n = 0, len(rows)
    while i < n:
        k = _SQLITE_CHUNK
        while k > n - i:
            k //= 2
        cur.execute(_sqlite_insert_sql(k), flat[i * width : (i + k) * width])
        inserted += max(cur.rowcount, 0)
        i += k
    return inserted


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


class SqliteCheckpointer:
    """Copies the WAL back into the database file off the ingest path.

    A PASSIVE checkpoint runs beside the writer without blocking it, but under
    continuous ingest it never catches up with the frames appended meanwhile,
    so the WAL would only grow (measured: 91 MB after 50,000 events). Once the
    WAL passes `max_wal_pages`, a RESTART checkpoint briefly holds writers back
    so that the next commit starts the WAL from the beginning again, and
    journal_size_limit trims the file.
    """

    # 32768 pages = 128 MiB: at full ingest a RESTART (a short pause for the
    # writer) every several seconds. 32 MiB measured 10-20% less throughput.
    def __init__(self, engine: Engine, interval: float = 0.5, max_wal_pages: int = 32768):
        import threading

        self.engine = engine
        self.interval = interval
        self.max_wal_pages = max_wal_pages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentwatch-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.checkpoint("TRUNCATE")

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        raw = self.engine.raw_connection()
        try:
            row = raw.cursor().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            if mode == "PASSIVE" and row and row[1] > self.max_wal_pages:
                raw.cursor().execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            raw.close()

    def _run(self) -> None:
        import logging

        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
            except Exception as e:  # a busy database is retried next tick
                logging.getLogger("agentwatch.store").debug("checkpoint skipped: %s", e)
