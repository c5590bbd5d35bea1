"""The schema, declared once for every backend (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# SQLite only makes a column the rowid alias when it is exactly INTEGER PRIMARY KEY.
_Seq = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    # Insertion order: the tie-breaker for "newest first" and the SSE order.
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False),
    Column("task_name", String(256), nullable=False),
    Column("agent_name", String(256), nullable=False),
    Column("model", String(256), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
    Column("reasoning_tokens", BigInteger, nullable=False, server_default="0"),
    Column("latency_ms", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_message", Text),
    # Epoch microseconds (UTC): integer ranges are index-friendly on every backend.
    Column("ts", BigInteger, nullable=False),
    Column("metadata", Text),
    Column("kind", String(8), nullable=False, server_default="llm"),
    Column("trace_id", String(128)),
    Column("parent_id", String(128)),
    Column("provider", String(256)),
    Column("user_id", String(256)),
    Column("session_id", String(256)),
    # Log-scale latency bin (store/sketch.py): percentiles by GROUP BY.
    Column("latency_bin", SmallInteger, nullable=False, server_default="0"),
    # Indexes follow the API's real queries (see docs/architecture.md):
    Index("ux_events_id", "id", unique=True),  # idempotent ingest
    # Each index costs ingest throughput (measured: ~6 us per event each), so
    # only these, each serving a query the API runs:
    Index("ix_events_ts", "ts"),  # every time range; /api/events newest first; retention
    Index("ix_events_agent_ts", "agent_name", "ts"),  # the dashboard's agent filter
    # A run's nested calls; most calls outside @track have no trace, so partial.
    Index(
        "ix_events_trace",
        "trace_id",
        sqlite_where=text("trace_id IS NOT NULL"),
        postgresql_where=text("trace_id IS NOT NULL"),
    ),
)

# Pre-aggregates (store/rollups.py): one row per (width, bucket, kind, agent,
# task, model) with counts, sums and a sparse latency histogram.
rollups = Table(
    "rollups",
    metadata,
    Column("width", BigInteger, nullable=False),  # microseconds: a minute or an hour
    Column("bucket", BigInteger, nullable=False),  # start, epoch microseconds
    Column("kind", String(8), nullable=False),
    Column("agent_name", String(256), nullable=False),
    Column("task_name", String(256), nullable=False),
    Column("model", String(256), nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("cost", Float, nullable=False),
    Column("latency_sum", Float, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("hist", LargeBinary, nullable=False),
    PrimaryKeyConstraint(
        "width", "bucket", "kind", "agent_name", "task_name", "model", name="pk_rollups"
    ),
    sqlite_with_rowid=False,  # the primary key is the table: no second copy of the key
)

schema_version = Table(
    "agentwatch_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

# Columns written at ingest, in a fixed order (seq is generated).
INSERT_COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns if c.name != "seq")
