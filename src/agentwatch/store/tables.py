"""The schema, declared once for every backend (SQLAlchemy Core).

Two kinds of row shape meet here:

- the *logical row* (`INSERT_COLUMNS`): what ingest builds and what readers
  get back, one tuple per event with names as strings; and
- the *stored row* of `events`: names replaced by small integer references
  into `names`, kind and status as small codes, canonical UUIDs packed as 16
  bytes (SQLite). store/codec.py converts between the two.

Keeping names out of the events table is what keeps a row small: an agent,
task, model and provider written out take ~40 bytes per event, their
references 4 to 8.
"""

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
# SQLite stores any integer in 0 to 8 bytes whatever the declared type; on
# PostgreSQL the references are 4-byte integers (2 billion names).
_Ref = Integer

# The logical row: ingest's output (server/validate.py) and every reader's input.
INSERT_COLUMNS: tuple[str, ...] = (
    "id",
    "task_name",
    "agent_name",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cost_usd",
    "status",
    "error_message",
    "ts",
    "metadata",
    "kind",
    "trace_id",
    "parent_id",
    "provider",
    "user_id",
    "session_id",
    "latency_bin",
    "flags",
)

# Bits of `flags`: how an event's numbers were made, for reprice and the
# data-quality view. Set at ingest (server/validate.py).
FLAG_CLIENT_COST = 1  # cost_usd came with the event: reprice never touches it
FLAG_FALLBACK_PRICE = 2  # priced at the fallback rate: the model was not in the price book
FLAG_USAGE_MISSING = 4  # the provider reported no usage (metadata.usage_missing)
FLAG_PARTIAL = 8  # a stream that ended early (metadata.partial)
# The bits the data-quality view counts, indexed apart (ix_events_quality).
QUALITY_FLAGS = FLAG_FALLBACK_PRICE | FLAG_USAGE_MISSING | FLAG_PARTIAL


def quality_flags(meta: dict[str, object]) -> int:
    """The metadata markers the SDK sets, as flag bits."""
    f = 0
    if meta.get("usage_missing") is True:
        f |= FLAG_USAGE_MISSING
    if meta.get("partial") is True:
        f |= FLAG_PARTIAL
    return f


# Codes of the two closed vocabularies (schema.KINDS, schema.STATUSES).
KIND_CODES: dict[str, int] = {"llm": 0, "task": 1, "tool": 2}
STATUS_CODES: dict[str, int] = {"success": 0, "error": 1}
KIND_NAMES: tuple[str, ...] = tuple(KIND_CODES)
STATUS_NAMES: tuple[str, ...] = tuple(STATUS_CODES)

# Every distinct agent, task, model, provider, user and session name, once.
names = Table(
    "names",
    metadata,
    Column("ref", _Ref, primary_key=True, autoincrement=True),
    Column("value", Text, nullable=False),
    Index("ux_names_value", "value", unique=True),
)

events = Table(
    "events",
    metadata,
    # Insertion order: the tie-breaker for "newest first", the live stream's
    # order, and the rollup builder's watermark (store/rollups.py).
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    # Epoch microseconds (UTC): integer ranges are index-friendly on every backend.
    Column("ts", BigInteger, nullable=False),
    # Canonical UUIDs as 16 bytes on SQLite (store/codec.py), text otherwise.
    Column("id", String(128), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("agent_ref", _Ref, nullable=False),
    Column("task_ref", _Ref, nullable=False),
    Column("model_ref", _Ref, nullable=False),
    Column("provider_ref", _Ref),
    Column("user_ref", _Ref),
    Column("session_ref", _Ref),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    # Log-scale latency bin (store/sketch.py): percentiles by GROUP BY.
    Column("latency_bin", SmallInteger, nullable=False),
    Column("error_message", Text),
    Column("metadata", Text),
    Column("trace_id", String(128)),
    Column("parent_id", String(128)),
    Column("flags", SmallInteger, nullable=False, server_default="0"),
    # Two indexes only (each costs ingest time and ~30 bytes per event):
    # (ts, id) is both the time index of every range query and the key that
    # makes ingest idempotent (an event is a repeat when an event with the
    # same id and timestamp is stored; docs/http-api.md). Leading with the
    # time keeps live inserts at the index's right edge whatever the ids.
    Index("ux_events_ts_id", "ts", "id", unique=True),
    # A run's nested calls; most calls outside @track have no trace, so partial.
    Index(
        "ix_events_trace",
        "trace_id",
        sqlite_where=text("trace_id IS NOT NULL"),
        postgresql_where=text("trace_id IS NOT NULL"),
    ),
    # The few events the data-quality view counts (usage missing, fallback
    # price, partial streams), by time; partial, so it costs nothing for the
    # others.
    Index(
        "ix_events_quality",
        "ts",
        sqlite_where=text("(flags & 14) != 0"),
        postgresql_where=text("(flags & 14) != 0"),
    ),
)
assert QUALITY_FLAGS == 14

# Pre-aggregates (store/rollups.py): one row per (unit, kind, series type,
# bucket, v1, v2) with counts, sums and a sparse latency histogram. v1 and v2
# are name references (0 where the series type has no such dimension).
rollups = Table(
    "rollups",
    metadata,
    Column("unit", SmallInteger, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("stype", SmallInteger, nullable=False),
    Column("bucket", BigInteger, nullable=False),  # start, epoch microseconds
    Column("v1", _Ref, nullable=False),
    Column("v2", _Ref, nullable=False),
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
    # Earliest and latest event time in the row (totals rows only, else NULL):
    # a bucket that straddles a window's edge can still be used whole when
    # all of its events lie inside the window.
    Column("min_ts", BigInteger),
    Column("max_ts", BigInteger),
    PrimaryKeyConstraint("unit", "kind", "stype", "bucket", "v1", "v2", name="pk_rollups"),
    sqlite_with_rowid=False,  # the primary key is the table: no second copy of the key
)

# (unit, series type, bucket) kept without rollup rows: queries read raw
# events there (store/rollups.py, "which buckets keep rows"). `keys` and
# `events` are how many distinct values and events the bucket held when that
# was decided; `many_keys` says it was for holding more than rollups.MAX_KEYS
# values (final) rather than for being too sparse to be worth rows (looked at
# again once the bucket has doubled and holds DENSITY x keys events).
rollup_raw = Table(
    "rollup_raw",
    metadata,
    Column("unit", SmallInteger, nullable=False),
    Column("stype", SmallInteger, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("keys", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("many_keys", SmallInteger, nullable=False),
    PrimaryKeyConstraint("unit", "stype", "bucket", name="pk_rollup_raw"),
)

# Days (UTC midnight, epoch microseconds) whose rollups miss events that were
# written after the day stopped being current (an import, a backfill): until
# the builder recounts the day from its raw events, queries read it raw.
rollup_dirty = Table(
    "rollup_dirty",
    metadata,
    Column("day", BigInteger, primary_key=True, autoincrement=False),
    Column("since", BigInteger, nullable=False),  # when it became dirty (epoch us)
    Column("touched", BigInteger, nullable=False),  # when events last arrived for it
)

# Small named integers the store keeps: the rollup watermark (every event
# with seq <= it is counted in the rollups or in a dirty day).
store_state = Table(
    "store_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

schema_version = Table(
    "agentwatch_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

# The stored columns written at ingest, in order (seq is generated).
STORED_COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns if c.name != "seq")
