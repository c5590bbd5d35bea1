"""The one seam where SQLite and PostgreSQL differ.

Everything else in the store is backend-neutral SQLAlchemy Core. What differs:
how an engine is created and tuned, the bulk insert-or-skip statement of
ingest, insert-or-ignore, how concurrent servers serialize their writes and
migrations, and (SQLite) how the WAL is kept small.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import itertools
import logging
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from agentwatch.store.tables import STORED_COLUMNS

log = logging.getLogger("agentwatch.store")


class Backend(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class StoreConfigError(ValueError):
    """The database location cannot be used; the message is one line for the user."""


def is_url(db: str) -> bool:
    return "://" in db


def make_engine(db: str) -> tuple[Engine, Backend]:
    """Engine and backend for a path (SQLite) or a database URL."""
    if not is_url(db) or db.startswith("sqlite"):
        return _sqlite_engine(db), Backend.SQLITE
    url = make_url(db)
    if url.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreConfigError(
                "PostgreSQL needs its driver: pip install 'agentwatch[postgres]' "
                "(or: pip install 'psycopg[binary]')"
            ) from None
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
        return engine, Backend.POSTGRESQL
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
        # No checkpoint inside a commit: the writer checkpoints between its
        # transactions (wal_checkpoint below), so the WAL's size is bounded by
        # what one second of writes adds, and no acknowledgement waits for a
        # checkpoint's fsync.
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.execute("PRAGMA journal_size_limit=67108864")
        cur.close()

    # A read that stops half-way (an error while its rows are turned into
    # events, a consumer that gives up) leaves its cursor's statement in
    # progress. Back in the pool, that connection would keep a read snapshot
    # and make the next writer or checkpoint on it fail with "database is
    # locked". So every cursor run through the engine is noted, and closed
    # (its statement reset) when the connection comes back; a connection
    # that still holds a transaction after that is not reused.
    @event.listens_for(engine, "before_cursor_execute")
    def _note_cursor(
        conn: Connection, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool
    ) -> None:
        conn.connection.info.setdefault("aw_cursors", weakref.WeakSet()).add(cursor)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, rec: Any) -> None:
        for cur in list(rec.info.get("aw_cursors", ())):
            with contextlib.suppress(Exception):
                cur.close()
        if getattr(dbapi_conn, "in_transaction", False):
            with contextlib.suppress(Exception):
                dbapi_conn.rollback()
            if dbapi_conn.in_transaction:
                rec.invalidate()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (IMMEDIATE): a deferred
        # transaction that reads first and writes later can fail with "database
        # is locked" without waiting, when the WAL moved under its snapshot.
        writer = conn.get_execution_options().get("aw_writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def backend(conn: Connection) -> Backend:
    """The backend a connection talks to (the one place that reads the
    dialect's name)."""
    return Backend.SQLITE if conn.dialect.name == "sqlite" else Backend.POSTGRESQL


def placeholder(conn: Connection) -> str:
    """The driver's parameter marker for exec_driver_sql."""
    return "?" if backend(conn) is Backend.SQLITE else "%s"


def upsert_rows(
    conn: Connection, table: str, cols: Sequence[str], key: int, rows: Sequence[Sequence[Any]]
) -> None:
    """Write rows of `cols` into `table`, replacing any row with the same key
    (its first `key` columns, the table's primary key).

    SQLite: multi-row INSERT OR REPLACE statements, up to 256 rows each.
    PostgreSQL: COPY into a per-connection staging table, then one INSERT ...
    ON CONFLICT DO UPDATE from it (several times faster than an executemany
    of upserts for the tens of thousands of rows a build of wide traffic
    writes). The update leaves the key columns alone, so PostgreSQL can make
    it a HOT update in place where the table's fillfactor leaves room."""
    if not rows:
        return
    names = ", ".join(cols)
    if backend(conn) is Backend.SQLITE:
        raw: Any = conn.connection.driver_connection
        one = "(" + ", ".join("?" for _ in cols) + ")"
        cur = raw.cursor()
        i, total = 0, len(rows)
        while i < total:
            k = 256
            while k > total - i:
                k //= 2
            sql = f"INSERT OR REPLACE INTO {table} ({names}) VALUES " + ", ".join([one] * k)
            cur.execute(sql, [x for r in rows[i : i + k] for x in r])
            i += k
        cur.close()
        return
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols[key:])
    stage = f"aw_stage_{table}"
    pg: Any = conn.connection.dbapi_connection
    with pg.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
        with cur.copy(f"COPY {stage} ({names}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        cur.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
            f"ON CONFLICT ({', '.join(cols[:key])}) DO UPDATE SET {sets}"
        )
        cur.execute(f"TRUNCATE {stage}")


def insert_ignore(conn: Connection, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT rows, skipping those whose key is already stored."""
    if not rows:
        return
    if backend(conn) is Backend.SQLITE:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    conn.execute(insert(table).on_conflict_do_nothing(), list(rows))


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
    live stream across servers, store/pgtail.py, and the rollup builder's
    watermark); two servers inserting the same keys in different orders
    cannot deadlock; and rollup read-merge-writes never race. Group commit
    keeps the cost low: while one server holds the lock, the others' batches
    grow.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY})")


_COLS = ", ".join(STORED_COLUMNS)
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
# RETURNING gives the rows that were new (a retried event is skipped by ON
# CONFLICT), so the writer knows exactly what to announce. A freshly filled
# temp table is read back in the order it was written, so `seq` follows the
# order of the batch.
PG_INSERT_SQL = (
    f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM aw_stage "
    "ON CONFLICT (ts, id) DO NOTHING RETURNING seq, ts, id"
)


def pg_copy_insert(conn: Connection, rows: list[tuple[Any, ...]]) -> list[tuple[int, int, str]]:
    """Insert-or-skip stored rows through COPY, inside the caller's
    transaction; returns (seq, ts, id) of the rows that were new."""
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(PG_STAGE_SQL)
        with cur.copy(PG_COPY_SQL) as cp:
            write = cp.write_row
            for r in rows:
                write(r)
        cur.execute(PG_INSERT_SQL)
        got: list[tuple[int, int, str]] = cur.fetchall()
    # No cleanup: the commit (or a rollback) empties aw_stage.
    return got


# The channel every server LISTENs on; the payload is the highest seq committed.
NOTIFY_CHANNEL = "agentwatch_events"

# Rows per SQLite INSERT statement (the largest chunk; see sqlite_insert).
_SQLITE_CHUNK = 512


@functools.cache
def _sqlite_insert_sql(rows: int) -> str:
    one = "(" + ", ".join("?" for _ in STORED_COLUMNS) + ")"
    return (
        f"INSERT INTO events ({_COLS}) VALUES {', '.join(one for _ in range(rows))} "
        "ON CONFLICT (ts, id) DO NOTHING"
    )


def sqlite_insert(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    """Insert-or-skip stored rows inside the caller's transaction; returns
    how many were new.

    Multi-row VALUES statements of up to 512 rows: SQLite inserts them in a
    single step, with the GIL released throughout, instead of one step per
    row as executemany does (measured: a third less CPU per event on the
    writer thread). Chunk sizes are powers of two, so only ten statement
    texts ever exist and all stay in the driver's statement cache.
    """
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    width = len(STORED_COLUMNS)
    flat = list(itertools.chain.from_iterable(rows))
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


def wal_checkpoint(engine: Engine, mode: str = "TRUNCATE", busy_ms: int = 200) -> bool:
    """Copy the WAL back into the database (SQLite), from the writer between
    its transactions; True when it got through.

    TRUNCATE waits for readers that still use older frames (at most
    `busy_ms`, so an acknowledgement is never held up long), copies every
    frame back, fsyncs, and truncates the file to zero. Run by the one writer
    between its own commits, it always gets a turn: the frames it would
    chase are only ever appended by that same thread. (A checkpoint from a
    separate thread does not: under continuous ingest it never catches up,
    and the WAL only grows.)
    """
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        try:
            row = cur.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        finally:
            cur.execute("PRAGMA busy_timeout=10000")
        return bool(row) and row[0] == 0
    finally:
        raw.close()


def driver_rows(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Every row of one query (driver placeholders), inside the caller's
    transaction, as the driver's plain tuples: no SQLAlchemy row objects
    for results of tens of thousands of rows headed for numpy."""
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor()
    try:
        cur.execute(sql, tuple(params))
        return list(cur.fetchall())
    finally:
        cur.close()


def stream_rows(
    conn: Connection, sql: str, params: Sequence[Any], size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of one query (driver placeholders), `size` at a time, inside
    the caller's transaction, never all of them in memory at once: SQLite's
    cursor steps the statement as rows are fetched; on PostgreSQL a plain
    cursor would receive the whole result first, so a server-side (named)
    cursor is used, which fetches `size` rows per round trip."""
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor(name="aw_stream") if conn.dialect.name == "postgresql" else raw.cursor()
    try:
        cur.execute(sql, tuple(params))
        while rows := cur.fetchmany(size):
            yield rows
    finally:
        cur.close()
