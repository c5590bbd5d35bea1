"""Pre-aggregated rollups: what keeps the metrics queries fast at any size,
and what keeps ingest cheap whatever the shape of the traffic.

Layout. A rollup row counts the events of one *series* in one time bucket:
counts, sums and a sparse latency histogram (store/sketch.py bins, so
percentiles merge by adding counts). A series is the whole traffic of a kind
(totals), or one value of one dimension (agent, task, model, provider, user,
session), or one pair of values of two of agent, task and model. Rows are
keyed (unit, kind, series type, bucket, v1, v2), the values being name
references. There are no rows for the full (agent, task, model) cross product:
their number follows the product of the dimensions' cardinalities (hundreds of
thousands for a team with many tasks), while singles and pairs stay near the
sum of them. A query that needs three dimensions at once reads raw events.

Units: minute (kept for the last two days only, see MINUTE_HORIZON_US), ten
minutes, hour, day; which series types each unit holds is SERIES_BY_UNIT.

Writes. Ingest commits raw events only. The builder (`build`, called by the
server's writer every two seconds or so, and when ingest pauses) reads the events
past the watermark (store_state 'rollup_seq') in seq order, folds them with
numpy into one delta per rollup row, merges those into the stored rows and
moves the watermark, all in one transaction. So a rollup row is rewritten at
most once per build, however many events hit it: the cost follows the number
of distinct rows touched per second, not the number of events. Nothing lives
only in memory: after a crash the events past the watermark are simply built
at the next start.

Old-dated events (an import, a backfill, `migrate-db`: anything for a day
before yesterday) are not folded in one by one: a batch spread over 30 days
would touch tens of thousands of rows each time. Their day is marked dirty
instead (`rollup_dirty`), and recounted from its raw events once no event
has arrived for it for a little while, in slices of whole hours, one
transaction each (`recount_step`), so that its memory and WAL follow the
slice, not the day. Until the last slice, queries read that day raw, so
results are exact at every moment.

Which buckets keep rows. A series type keeps rows in a bucket only where
each row stands for enough events (DENSITY) and the bucket holds at most
MAX_KEYS distinct values (task names that carry ids); elsewhere the bucket is
marked in `rollup_raw` and queries read its raw events, which are few there
by construction. So rollups never cost more than they save, whatever the
shape of the traffic.

Reads (`store/sql.py`): a window is cut into pieces (whole days from day
rows, then hours, ten minutes and minutes at the ends, and what is left from
raw events), dirty days and buckets kept raw are read raw, and the events
past the watermark (committed but not yet built, at most a few seconds'
worth) are added from the raw table. Counts and sums are exact; percentiles
keep the sketch's error bound. The raw events stay the source of truth:
`agentwatch rebuild-rollups` recounts everything from them.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, case, delete, func, insert, literal_column, select

from agentwatch.clock import DAY_US, HOUR_US, MINUTE_US, now_us
from agentwatch.store.dialect import (
    driver_rows,
    insert_ignore,
    placeholder,
    stream_rows,
    upsert_rows,
)
from agentwatch.store.sketch import REC, decode_many
from agentwatch.store.tables import STORED_COLUMNS, rollup_dirty, rollup_raw, rollups, store_state

TEN_MINUTES_US = 600_000_000

# Units: the codes of the bucket widths rollup rows are kept at (the
# `unit` column), finest first; WIDTH_US[unit] is that width.
# Everywhere in the store a bucket width is microseconds (`width_us`, as a
# timeseries asks for one); minutes exist only at the API's edge (its
# `bucket` parameter and `bucket_minutes`, server/api/metrics.py).
MINUTE, TEN, HOUR, DAY = 0, 1, 2, 3
WIDTH_US: dict[int, int] = {MINUTE: MINUTE_US, TEN: TEN_MINUTES_US, HOUR: HOUR_US, DAY: DAY_US}
COARSE_FIRST: tuple[int, ...] = (DAY, HOUR, TEN, MINUTE)

# Minute rows are kept for buckets of the last two days only: they serve the
# 1-hour and 24-hour windows, and for sparse traffic nearly every event has a
# minute row of its own. Past two days a window's ragged ends (under ten
# minutes each) are read from the raw events instead. Readers use minute
# rows only inside the horizon; writers keep writing them a little past it
# (HORIZON_SLACK_US) and pruning deletes only what lies beyond that slack, so
# servers whose clocks differ by less than the slack never read a minute row
# that one of them skipped or pruned.
MINUTE_HORIZON_US = 2 * DAY_US
HORIZON_SLACK_US = HOUR_US

# Days from this many days before today (UTC) are folded in at every build;
# older ones are marked dirty and recounted from their raw events (see the module docstring).
# Yesterday stays "current" so that a 24-hour window and clocks a little
# behind midnight never make a day dirty in normal live traffic.
CURRENT_DAYS = 1

# Series types: the dimensions each one keys on (stored reference columns).
TOTAL, AGENT, TASK, MODEL, PROVIDER, USER, SESSION = 0, 1, 2, 3, 4, 5, 6
AGENT_TASK, AGENT_MODEL, TASK_MODEL = 7, 8, 9
DIMS_OF: dict[int, tuple[str, ...]] = {
    TOTAL: (),
    AGENT: ("agent_name",),
    TASK: ("task_name",),
    MODEL: ("model",),
    PROVIDER: ("provider",),
    USER: ("user_id",),
    SESSION: ("session_id",),
    AGENT_TASK: ("agent_name", "task_name"),
    AGENT_MODEL: ("agent_name", "model"),
    TASK_MODEL: ("task_name", "model"),
}
STYPE_OF: dict[frozenset[str], int] = {frozenset(d): s for s, d in DIMS_OF.items()}
# Logical dimension name -> stored reference column of events.
REF_COLUMN: dict[str, str] = {
    "agent_name": "agent_ref",
    "task_name": "task_ref",
    "model": "model_ref",
    "provider": "provider_ref",
    "user_id": "user_ref",
    "session_id": "session_ref",
}

_SINGLES = (TOTAL, AGENT, TASK, MODEL)
_ALL = tuple(DIMS_OF)
# Which series types each unit keeps. Pairs and the high-cardinality
# dimensions (provider, user, session) only at hour and day: at finer units
# they would cost about one row per event for sparse traffic; a query on them
# reads at most an hour at each end of its window raw.
SERIES_BY_UNIT: dict[int, tuple[int, ...]] = {
    MINUTE: _SINGLES,
    TEN: _SINGLES,
    HOUR: _ALL,
    DAY: _ALL,
}

# Cardinality guard: most distinct values one series type may hold in one
# bucket (all kinds together). 30,000 keeps a team with 60 agents x 300 tasks
# (18,000 pairs) whole, and stops task names holding ids from turning every
# event into rollup rows of its own.
MAX_KEYS = 30_000

# A dirty day is recounted in slices of whole hours holding at most this many
# events together (at least one hour), read this many rows at a time (see
# recount_step).
RECOUNT_SLICE_ROWS = 50_000
RECOUNT_FETCH_ROWS = 10_000


def minute_floor(now: int | None = None) -> int:
    """The oldest minute bucket a reader may use at `now`."""
    return (now_us() if now is None else now) - MINUTE_HORIZON_US


def minute_write_floor(now: int | None = None) -> int:
    """Minute buckets older than this are neither written nor kept."""
    return minute_floor(now) - HORIZON_SLACK_US


def current_from(now: int | None = None) -> int:
    """Start of the oldest day that is still folded in event by event."""
    n = now_us() if now is None else now
    return (n // DAY_US - CURRENT_DAYS) * DAY_US


# -- folding ------------------------------------------------------------------
# Columns the builder reads from events, in this order.
FOLD_COLUMNS: tuple[str, ...] = (
    "seq",
    "ts",
    "kind",
    "status",
    "agent_ref",
    "task_ref",
    "model_ref",
    "provider_ref",
    "user_ref",
    "session_ref",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cost_usd",
    "latency_bin",
)
# Summed measures, in rollup column order, and the event column of each.
SUMS: tuple[str, ...] = (
    "errors",
    "cost",
    "latency_sum",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_SUM_SOURCE = {
    "errors": "status",
    "cost": "cost_usd",
    "latency_sum": "latency_ms",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "reasoning_tokens",
}
_FLOAT_SUMS = frozenset({"cost", "latency_sum"})
_REFS = ("agent_ref", "task_ref", "model_ref", "provider_ref", "user_ref", "session_ref")
# Histogram bins fit in 16 bits (store/sketch.py: about 2,800 bins in all).
_BIN_SHIFT = 16


def _group(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by the tuple of `cols`: (index of each group's first row,
    groups in key order; group index of every row)."""
    n = len(cols[0])
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    fits = True
    # One int64 key in mixed radix when the spans fit (the usual case: a build
    # covers few buckets and references are small), else a lexsort.
    for c in reversed(cols):
        lo = int(c.min()) if n else 0
        span = (int(c.max()) - lo + 1) if n else 1
        if radix * span >= 2**62:
            fits = False
            break
        key += (c - lo) * radix
        radix *= span
    if fits:
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        return first, inv.reshape(-1)
    order = np.lexsort(list(reversed(cols)))
    stacked = np.stack([c[order] for c in cols])
    change = np.ones(n, dtype=bool)
    change[1:] = np.any(stacked[:, 1:] != stacked[:, :-1], axis=0)
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.cumsum(change) - 1
    return order[change], inv


@dataclass
class Level:
    """Counts, sums and histogram records of groups of events: one group per
    distinct key (`keys`: one array per key column), parallel arrays."""

    keys: dict[str, np.ndarray]
    n: np.ndarray
    sums: dict[str, np.ndarray]
    min_ts: np.ndarray
    max_ts: np.ndarray
    # Histogram records, sorted by group then bin: group index, bin, count.
    h_row: np.ndarray
    h_bin: np.ndarray
    h_cnt: np.ndarray

    def __len__(self) -> int:
        return len(self.n)

    def take(self, idx: np.ndarray) -> Level:
        """The groups at these (ascending) indexes."""
        remap = np.full(len(self), -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        keep = remap[self.h_row] >= 0
        return Level(
            keys={k: v[idx] for k, v in self.keys.items()},
            n=self.n[idx],
            sums={s: v[idx] for s, v in self.sums.items()},
            min_ts=self.min_ts[idx],
            max_ts=self.max_ts[idx],
            h_row=remap[self.h_row[keep]],
            h_bin=self.h_bin[keep],
            h_cnt=self.h_cnt[keep],
        )

    def regroup(self, keys: dict[str, np.ndarray], mask: np.ndarray | None = None) -> Level:
        """Sum these groups into coarser ones, keyed by `keys` (one value per
        group of self); with `mask`, only the groups where it is true."""
        return self.regroup_inv(keys, mask)[0]

    def regroup_inv(
        self, keys: dict[str, np.ndarray], mask: np.ndarray | None = None
    ) -> tuple[Level, np.ndarray]:
        """regroup(), and the new group of each (kept) group of self."""
        src = self
        if mask is not None and not mask.all():
            idx = np.flatnonzero(mask)
            remap = np.full(len(self), -1, dtype=np.int64)
            remap[idx] = np.arange(len(idx))
            keep = remap[self.h_row] >= 0
            src = Level(
                keys={},
                n=self.n[idx],
                sums={s: v[idx] for s, v in self.sums.items()},
                min_ts=self.min_ts[idx],
                max_ts=self.max_ts[idx],
                h_row=remap[self.h_row[keep]],
                h_bin=self.h_bin[keep],
                h_cnt=self.h_cnt[keep],
            )
            keys = {k: v[idx] for k, v in keys.items()}
        if len(src) == 0:
            return _empty_level(list(keys)), np.zeros(0, dtype=np.int64)
        first, inv = _group(list(keys.values()))
        g = len(first)
        sums = {}
        for s, v in src.sums.items():
            w = np.bincount(inv, weights=v, minlength=g)
            sums[s] = w if s in _FLOAT_SUMS else np.rint(w).astype(np.int64)
        min_ts = np.full(g, np.iinfo(np.int64).max, dtype=np.int64)
        max_ts = np.full(g, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(min_ts, inv, src.min_ts)
        np.maximum.at(max_ts, inv, src.max_ts)
        h_row, h_bin, h_cnt = _merge_records(inv[src.h_row], src.h_bin, src.h_cnt)
        return Level(
            keys={k: v[first] for k, v in keys.items()},
            n=np.bincount(inv, weights=src.n, minlength=g).astype(np.int64),
            sums=sums,
            min_ts=min_ts,
            max_ts=max_ts,
            h_row=h_row,
            h_bin=h_bin,
            h_cnt=h_cnt,
        ), inv


def _empty_level(names: Iterable[str]) -> Level:
    z = np.zeros(0, dtype=np.int64)
    return Level({k: z for k in names}, z, {s: z for s in SUMS}, z, z, z, z, z)


def _merge_records(row: np.ndarray, bins: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, ...]:
    """Add up histogram records with the same (row, bin); sorted by row, bin."""
    if len(row) == 0:
        return row, bins, cnt
    pair = (row << _BIN_SHIFT) | bins
    up, inv = np.unique(pair, return_inverse=True)
    total = np.bincount(inv.reshape(-1), weights=cnt).astype(np.int64)
    return up >> _BIN_SHIFT, up & ((1 << _BIN_SHIFT) - 1), total


FOLD_DTYPE_FIELDS: dict[str, Any] = {
    c: np.float64 if c in ("latency_ms", "cost_usd") else np.int64 for c in FOLD_COLUMNS
}
FOLD_DTYPE = np.dtype(list(FOLD_DTYPE_FIELDS.items()))


_FOLD_FROM_STORED = operator.itemgetter(*(STORED_COLUMNS.index(c) for c in FOLD_COLUMNS[1:]))
_FOLD_NO_SEQ = np.dtype([(n, FOLD_DTYPE_FIELDS[n]) for n in FOLD_COLUMNS[1:]])


def fold_array_of_stored(first_seq: int, stored: Sequence[tuple[Any, ...]]) -> np.ndarray:
    """The fold columns of stored event rows (store/codec.encode, every
    reference an integer) whose seq run from first_seq, as a fold_array."""
    part = np.array([_FOLD_FROM_STORED(r) for r in stored], dtype=_FOLD_NO_SEQ)
    out = np.empty(len(part), dtype=FOLD_DTYPE)
    out["seq"] = np.arange(first_seq, first_seq + len(part), dtype=np.int64)
    for n in FOLD_COLUMNS[1:]:
        out[n] = part[n]
    return out


def fold_array(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    """Rows in FOLD_COLUMNS order (no NULLs: missing references as 0) as one
    structured array, converted in C."""
    if not rows:
        return np.zeros(0, dtype=FOLD_DTYPE)
    return np.array(rows if isinstance(rows[0], tuple) else [tuple(r) for r in rows], FOLD_DTYPE)


def events_level(ev: np.ndarray) -> Level:
    """Events (a fold_array) summed per minute and full key: the finest level
    every rollup is folded from."""
    n = len(ev)
    if n == 0:
        return _empty_level(["kind", "bucket", *_REFS])
    ts = ev["ts"]
    keys = {"kind": ev["kind"], "bucket": ts - ts % MINUTE_US}
    for r in _REFS:
        keys[r] = ev[r]
    return Level(
        keys={},
        n=np.ones(n, dtype=np.int64),
        sums={s: ev[_SUM_SOURCE[s]] for s in SUMS},
        min_ts=ts,
        max_ts=ts,
        h_row=np.arange(n, dtype=np.int64),
        h_bin=ev["latency_bin"],
        h_cnt=np.ones(n, dtype=np.int64),
    ).regroup(keys)


@dataclass
class Fold:
    """The deltas of one (unit, series type): rows keyed (kind, bucket, v1, v2)."""

    unit: int
    stype: int
    level: Level


def fold_all(ev: Level, now: int | None = None, days_upto: int | None = None) -> list[Fold]:
    """Every (unit, series type) delta of an events level (events_level).

    Each unit is folded from the one below it (minutes, ten minutes, hours,
    days), and each series type from its unit's full-key groups, so the work
    after the first grouping follows the number of distinct keys, not the
    number of events. Day rows only for days before `days_upto` (None: all):
    a day that is still open is counted by its hours, and gets its day rows
    when it closes (close_days).
    """
    out: list[Fold] = []
    floor = minute_write_floor(now)
    per_unit: Level | None = None
    for unit in (MINUTE, TEN, HOUR, DAY):
        if per_unit is None:
            per_unit = ev
        else:
            k = dict(per_unit.keys)
            b = k["bucket"]
            k["bucket"] = b - b % WIDTH_US[unit]
            per_unit = per_unit.regroup(k)
        lv = per_unit
        if unit == MINUTE:
            recent = lv.keys["bucket"] >= floor
            if not recent.any():
                continue
        elif unit == DAY and days_upto is not None:
            recent = lv.keys["bucket"] < days_upto
            if not recent.any():
                continue
        else:
            recent = None
        for stype in SERIES_BY_UNIT[unit]:
            dims = [REF_COLUMN[d] for d in DIMS_OF[stype]]
            mask = recent
            for d in dims:
                if d in ("provider_ref", "user_ref", "session_ref"):
                    has = lv.keys[d] != 0  # events without one are not counted there
                    mask = has if mask is None else (mask & has)
            z = np.zeros(len(lv), dtype=np.int64)
            keys = {
                "kind": lv.keys["kind"],
                "bucket": lv.keys["bucket"],
                "v1": lv.keys[dims[0]] if dims else z,
                "v2": lv.keys[dims[1]] if len(dims) > 1 else z,
            }
            f = lv.regroup(keys, mask)
            if len(f):
                out.append(Fold(unit, stype, f))
    return out


# -- which buckets keep rows --------------------------------------------------
# A series type keeps rows in a bucket only where they are worth it: each row
# must stand, on average, for at least DENSITY events of the bucket, and the
# bucket may hold at most MAX_KEYS distinct values. Otherwise the bucket is
# marked in `rollup_raw` and queries read its raw events, which is cheap
# exactly because the bucket is sparse (fewer than DENSITY x rows events) or
# is a rare bucket of a rare shape (task names that carry ids). Measured on a
# 30-day import of 300,000 events over 300 (agent, task, model) combinations,
# keeping every row cost ~170 bytes per event, more than the events
# themselves; with the rule, rollups stay a small fraction of the store.
# Totals rows are always kept. A sparse bucket is looked at again (recounted
# from its raw events, which are few by construction) once it holds enough
# events for the values it had: DENSITY x keys; one with too many values
# stays raw.
DENSITY = 8


@dataclass
class _RawMark:
    keys: int
    events: int
    many_keys: bool


def _load_marks(conn: Connection, unit: int, stype: int, buckets: list[int]) -> dict[int, _RawMark]:
    o = rollup_raw.c
    q = select(o.bucket, o["keys"], o.events, o.many_keys).where(
        o.unit == unit, o.stype == stype, o.bucket >= buckets[0], o.bucket <= buckets[-1]
    )
    return {int(b): _RawMark(int(k), int(e), bool(m)) for b, k, e, m in conn.execute(q)}


_MARK_COLS = ("unit", "stype", "bucket", "keys", "events", "many_keys")


def _write_marks(conn: Connection, marks: list[tuple[int, int, int, int, int, int]]) -> None:
    """(unit, stype, bucket, keys, events, many_keys) rows into rollup_raw, replacing."""
    upsert_rows(conn, "rollup_raw", _MARK_COLS, 3, marks)


def _delete_buckets(conn: Connection, unit: int, stype: int, buckets: list[int]) -> None:
    """Delete the rollup rows of (unit, stype) in these buckets (every kind)."""
    if not buckets:
        return
    p = placeholder(conn)
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor()
    cur.executemany(
        f"DELETE FROM rollups WHERE unit = {p} AND kind IN (0, 1, 2) AND stype = {p} "
        f"AND bucket = {p}",
        [(unit, stype, b) for b in buckets],
    )
    cur.close()


def _clear_mark(conn: Connection, unit: int, stype: int, bucket: int) -> None:
    o = rollup_raw.c
    conn.execute(delete(rollup_raw).where(o.unit == unit, o.stype == stype, o.bucket == bucket))


def _keeps_rows(events: int, keys: int) -> bool:
    return keys <= MAX_KEYS and events >= DENSITY * keys


# -- writing ------------------------------------------------------------------
_ROW_COLS = (
    "unit",
    "kind",
    "stype",
    "bucket",
    "v1",
    "v2",
    "n",
    *SUMS,
    "hist",
    "min_ts",
    "max_ts",
)
_READ_COLS = ("kind", "bucket", "v1", "v2", "n", *SUMS, "hist", "min_ts", "max_ts")


def _stored(conn: Connection, unit: int, stype: int, buckets: list[int]) -> Level:
    """The stored rows of (unit, stype) in these buckets, as a level."""
    p = placeholder(conn)
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor()
    rows: list[Any] = []
    # Exact buckets (an IN list the primary key seeks on), not a range: a
    # build's minute rows can span a day when a few late events come in.
    for i in range(0, len(buckets), 500):
        part = buckets[i : i + 500]
        cur.execute(
            f"SELECT {', '.join(_READ_COLS)} FROM rollups WHERE unit = {p} AND kind IN (0, 1, 2) "
            f"AND stype = {p} AND bucket IN ({', '.join(p for _ in part)})",
            (unit, stype, *part),
        )
        rows.extend(cur.fetchall())
    cur.close()
    return _level_of(rows)


_KEYS_CHUNK = 2000


def _stored_keys(conn: Connection, unit: int, stype: int, keys: dict[str, np.ndarray]) -> Level:
    """The stored rows of (unit, stype) with exactly these (kind, bucket, v1,
    v2) keys, as a level: a primary-key lookup per key, so a build that
    touches a few of a bucket's 18,000 pairs reads those few."""
    p = placeholder(conn)
    cols = ", ".join(f"r.{c}" for c in _READ_COLS)
    flat = np.stack([keys["kind"], keys["bucket"], keys["v1"], keys["v2"]], axis=1).tolist()
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor()
    rows: list[Any] = []
    for i in range(0, len(flat), _KEYS_CHUNK):
        part = flat[i : i + _KEYS_CHUNK]
        values = ", ".join(f"({p}, {p}, {p}, {p})" for _ in part)
        cur.execute(
            f"WITH k(kind, bucket, v1, v2) AS (VALUES {values}) SELECT {cols} FROM k "
            f"JOIN rollups r ON r.unit = {p} AND r.kind = k.kind AND r.stype = {p} "
            "AND r.bucket = k.bucket AND r.v1 = k.v1 AND r.v2 = k.v2",
            (*itertools.chain.from_iterable(part), unit, stype),
        )
        rows.extend(cur.fetchall())
    cur.close()
    return _level_of(rows)


def _bucket_keys(conn: Connection, unit: int, stype: int, buckets: list[int]) -> dict[int, int]:
    """How many rows (unit, stype) holds in each of these buckets (all kinds)."""
    r = rollups.c
    out: dict[int, int] = {}
    for i in range(0, len(buckets), 500):
        q = (
            select(r.bucket, func.count())
            .where(
                r.unit == unit,
                r.kind.in_([0, 1, 2]),
                r.stype == stype,
                r.bucket.in_(buckets[i : i + 500]),
            )
            .group_by(r.bucket)
        )
        out.update((int(b), int(n)) for b, n in conn.execute(q))
    return out


def _level_of(rows: list[Any]) -> Level:
    """Stored rollup rows (_READ_COLS) as a level."""
    n = len(rows)
    if n == 0:
        return _empty_level(["kind", "bucket", "v1", "v2"])
    cols = list(zip(*rows, strict=True))
    c = dict(zip(_READ_COLS, cols, strict=True))

    def arr(name: str, dtype: Any = np.int64) -> np.ndarray:
        return np.fromiter(c[name], dtype=dtype, count=n)

    lens, bins, counts = decode_many(c["hist"])
    nul = np.iinfo(np.int64)
    return Level(
        keys={k: arr(k) for k in ("kind", "bucket", "v1", "v2")},
        n=arr("n"),
        sums={s: arr(s, np.float64 if s in _FLOAT_SUMS else np.int64) for s in SUMS},
        min_ts=np.fromiter((v if v is not None else nul.max for v in c["min_ts"]), np.int64, n),
        max_ts=np.fromiter((v if v is not None else nul.min for v in c["max_ts"]), np.int64, n),
        h_row=np.repeat(np.arange(n, dtype=np.int64), lens),
        h_bin=bins,
        h_cnt=counts,
    )


def _concat(a: Level, b: Level) -> Level:
    off = len(a)
    return Level(
        keys={k: np.concatenate([a.keys[k], b.keys[k]]) for k in a.keys},
        n=np.concatenate([a.n, b.n]),
        sums={s: np.concatenate([a.sums[s], b.sums[s]]) for s in SUMS},
        min_ts=np.concatenate([a.min_ts, b.min_ts]),
        max_ts=np.concatenate([a.max_ts, b.max_ts]),
        h_row=np.concatenate([a.h_row, b.h_row + off]),
        h_bin=np.concatenate([a.h_bin, b.h_bin]),
        h_cnt=np.concatenate([a.h_cnt, b.h_cnt]),
    )


def _concat_all(levels: Sequence[Level]) -> Level:
    """Levels one after the other (as _concat, in one copy)."""
    offs = np.cumsum([0, *(len(lv) for lv in levels[:-1])])
    return Level(
        keys={k: np.concatenate([lv.keys[k] for lv in levels]) for k in levels[0].keys},
        n=np.concatenate([lv.n for lv in levels]),
        sums={s: np.concatenate([lv.sums[s] for lv in levels]) for s in SUMS},
        min_ts=np.concatenate([lv.min_ts for lv in levels]),
        max_ts=np.concatenate([lv.max_ts for lv in levels]),
        h_row=np.concatenate([lv.h_row + o for lv, o in zip(levels, offs.tolist(), strict=True)]),
        h_bin=np.concatenate([lv.h_bin for lv in levels]),
        h_cnt=np.concatenate([lv.h_cnt for lv in levels]),
    )


def _hist_blobs(lv: Level) -> list[bytes]:
    """One encoded histogram per group of a level (records sorted by group)."""
    rec = np.empty(len(lv.h_row), dtype=REC)
    rec["b"] = lv.h_bin
    rec["c"] = np.minimum(lv.h_cnt, 2**32 - 1)
    data = rec.tobytes()
    bounds = np.searchsorted(lv.h_row, np.arange(len(lv) + 1)) * 6
    return [data[a:z] for a, z in itertools.pairwise(bounds.tolist())]


def _rows_of(unit: int, stype: int, lv: Level, keep: np.ndarray | None) -> list[tuple[Any, ...]]:
    if keep is not None and not keep.all():
        lv = lv.take(np.flatnonzero(keep))
    if len(lv) == 0:
        return []
    blobs = _hist_blobs(lv)
    totals = stype == TOTAL
    mins = lv.min_ts.tolist() if totals else [None] * len(lv)
    maxs = lv.max_ts.tolist() if totals else [None] * len(lv)
    cols = [
        lv.keys["kind"].tolist(),
        lv.keys["bucket"].tolist(),
        lv.keys["v1"].tolist(),
        lv.keys["v2"].tolist(),
        lv.n.tolist(),
        *(lv.sums[s].tolist() for s in SUMS),
    ]
    return [
        (unit, k, stype, b, v1, v2, n, *rest)
        for (k, b, v1, v2, n, *rest) in zip(*cols, blobs, mins, maxs, strict=True)
    ]


def merge_and_write(
    conn: Connection, folds: Sequence[Fold], max_seq: int, now: int, fresh: bool = False
) -> None:
    """Add folds to the stored rollup rows, inside the caller's transaction.

    Per (unit, series type): read the stored rows of the buckets touched, add
    the deltas (sums, and histograms by merging their records) and write back
    the rows the deltas touched. Buckets still open (see CLOSE_SLACK_US)
    always keep their rows, unless they pass MAX_KEYS; closed ones keep them
    only when dense enough (DENSITY). `fresh`: nothing is stored for these
    buckets (a recount), so nothing is read. `max_seq`: the watermark the
    folds reach, for recounting a sparse bucket from its raw events.
    """
    closed_before = now - CLOSE_SLACK_US
    out: list[tuple[Any, ...]] = []
    new_marks: list[tuple[int, int, int, int, int, int]] = []
    bucket_events: dict[tuple[int, int], int] = {}  # (unit, bucket) -> events
    for f in sorted(folds, key=lambda x: (x.unit, x.stype)):  # totals first in each unit
        buckets = sorted(set(f.level.keys["bucket"].tolist()))
        marks: dict[int, _RawMark] = {}
        stored_per: dict[int, int] = {}
        if not fresh and f.stype != TOTAL:
            marks = _load_marks(conn, f.unit, f.stype, buckets)
            stored_per = _bucket_keys(conn, f.unit, f.stype, buckets)
        if fresh:
            old = _empty_level(["kind", "bucket", "v1", "v2"])
        elif f.stype == TOTAL:  # every kind's totals row: the buckets' event counts
            old = _stored(conn, f.unit, f.stype, buckets)
        else:
            # Only the rows the deltas touch, in buckets that hold rows (a
            # bucket kept raw, or one not written yet, has none to read).
            fk = f.level.keys
            has = np.isin(fk["bucket"], [b for b, k in stored_per.items() if k and b not in marks])
            look = {k: v[has] for k, v in fk.items()} if not has.all() else fk
            old = (
                _stored_keys(conn, f.unit, f.stype, look)
                if len(look["bucket"])
                else _empty_level(["kind", "bucket", "v1", "v2"])
            )
        if len(old):
            both = _concat(old, f.level)
            merged, inv = both.regroup_inv(both.keys)
            hit = np.zeros(len(merged), dtype=bool)
            hit[inv[len(old) :]] = True
        else:
            merged, hit = f.level, np.ones(len(f.level), dtype=bool)
        bk = merged.keys["bucket"]
        if f.stype == TOTAL:
            per = np.bincount(
                np.searchsorted(buckets, bk), weights=merged.n, minlength=len(buckets)
            )
            for b, n in zip(buckets, per.tolist(), strict=True):
                bucket_events[(f.unit, b)] = int(n)
            out += _rows_of(f.unit, f.stype, merged, hit)
            continue
        pos = np.searchsorted(buckets, bk)
        # Values per bucket after this build: the rows stored there already
        # plus the keys this build adds.
        keys_per = np.bincount(pos, minlength=len(buckets))
        if not fresh:
            old_per = np.bincount(
                np.searchsorted(buckets, old.keys["bucket"]), minlength=len(buckets)
            )
            keys_per = (
                keys_per
                - old_per
                + np.fromiter((stored_per.get(b, 0) for b in buckets), np.int64, len(buckets))
            )
        ev_per = np.fromiter(
            (bucket_events.get((f.unit, b), 0) for b in buckets), np.int64, len(buckets)
        )
        marked = np.fromiter((b in marks for b in buckets), bool, len(buckets))
        many = keys_per > MAX_KEYS
        closed = np.asarray(buckets, dtype=np.int64) + WIDTH_US[f.unit] <= closed_before
        dense = ~many & (~closed | (ev_per >= DENSITY * keys_per))
        going = ~marked & ~dense  # buckets that stop keeping rows now
        if going.any():
            gone = [b for b, g in zip(buckets, going.tolist(), strict=True) if g]
            if len(old):  # rows were kept until now: they go
                _delete_buckets(conn, f.unit, f.stype, gone)
            manyl = many.tolist()
            kps = keys_per.tolist()
            evs = ev_per.tolist()
            new_marks += [
                (f.unit, f.stype, b, kps[i], evs[i], int(manyl[i]))
                for i, (b, g) in enumerate(zip(buckets, going.tolist(), strict=True))
                if g
            ]
        for b, m in marks.items():  # kept raw so far: looked at again once it may pay
            i = bisect.bisect_left(buckets, b)
            e = int(ev_per[i])
            if not m.many_keys and e >= 2 * m.events and e >= DENSITY * m.keys:
                _recount_bucket(conn, f.unit, f.stype, b, int(ev_per[i]), max_seq, out)
        keep = hit & dense[pos] & ~marked[pos]
        out += _rows_of(f.unit, f.stype, merged, keep)
    _write_marks(conn, new_marks)
    if out:
        _upsert(conn, out)


def _recount_bucket(
    conn: Connection,
    unit: int,
    stype: int,
    bucket: int,
    events: int,
    max_seq: int,
    out: list[tuple[Any, ...]],
) -> None:
    """A sparse bucket's event count has doubled: count it from its raw
    events, and keep rows if it is now dense enough."""
    p = placeholder(conn)
    where = f"ts >= {p} AND ts < {p} AND seq <= {p}"
    lv = events_level(_read(conn, where, (bucket, bucket + WIDTH_US[unit], max_seq)))
    got = _regroup_to(lv, unit, stype)
    keys = len(got)
    if _keeps_rows(events, keys):
        _clear_mark(conn, unit, stype, bucket)
        out += _rows_of(unit, stype, got, None)
    else:
        _write_marks(conn, [(unit, stype, bucket, keys, events, int(keys > MAX_KEYS))])


def _upsert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    upsert_rows(conn, "rollups", _ROW_COLS, 6, rows)


# -- the watermark and dirty days --------------------------------------------
WATERMARK = "rollup_seq"


def _state(conn: Connection, key: str) -> int | None:
    v = conn.execute(select(store_state.c.value).where(store_state.c.key == key)).scalar()
    return None if v is None else int(v)


def _set_state(conn: Connection, key: str, value: int) -> None:
    n = conn.execute(
        store_state.update().where(store_state.c.key == key).values(value=value)
    ).rowcount
    if not n:
        conn.execute(insert(store_state).values(key=key, value=value))


def get_watermark(conn: Connection) -> int:
    return _state(conn, WATERMARK) or 0


def set_watermark(conn: Connection, seq: int) -> None:
    _set_state(conn, WATERMARK, seq)


def dirty_days(conn: Connection) -> dict[int, tuple[int, int]]:
    """Dirty day -> (when it became dirty, when events last arrived for it)."""
    d = rollup_dirty.c
    return {int(a): (int(b), int(c)) for a, b, c in conn.execute(select(d.day, d.since, d.touched))}


def mark_dirty(conn: Connection, days: Iterable[int], now: int) -> None:
    days = sorted(set(days))
    if not days:
        return
    d = rollup_dirty.c
    # `touched` grows at every mark, even when the clock has not moved (or has
    # stepped back) since the last one: a recount in slices compares it with
    # the value it began under to know that events came for the day meanwhile.
    later = case((d.touched >= now, d.touched + 1), else_=now)
    conn.execute(rollup_dirty.update().where(d.day.in_(days)).values(touched=later))
    insert_ignore(conn, rollup_dirty, [{"day": x, "since": now, "touched": now} for x in days])


# -- building -----------------------------------------------------------------
_FOLD_SELECT = ", ".join(f"coalesce({c}, 0)" if c in _REFS else c for c in FOLD_COLUMNS)


def _read(conn: Connection, where: str, params: tuple[Any, ...]) -> np.ndarray:
    """Events matching `where` (driver placeholders) as a fold_array."""
    return fold_array(driver_rows(conn, f"SELECT {_FOLD_SELECT} FROM events WHERE {where}", params))


# Buckets whose end is at least this far in the past are closed: late events
# for them are few, so they must be dense enough to keep rows (DENSITY).
CLOSE_SLACK_US = MINUTE_US


def build(
    conn: Connection,
    max_rows: int,
    now: int | None = None,
    pending: tuple[int, int, np.ndarray] | None = None,
) -> tuple[int, set[int]]:
    """Fold the events past the watermark (at most max_rows, in seq order)
    into the rollups; returns (events read, days newly marked dirty).

    `pending` is (first seq, last seq, events) that the caller already holds
    in memory (the writer's own commits since the last build, on SQLite);
    used instead of reading them back when they are exactly what comes next.
    """
    w = get_watermark(conn)
    p = placeholder(conn)
    if pending is not None and pending[0] == w + 1 and len(pending[2]) <= max_rows:
        ev, top = pending[2], pending[1]
    else:
        ev = _read(conn, f"seq > {p} ORDER BY seq LIMIT {p}", (w, max_rows))
        if len(ev) == 0:
            return 0, set()
        top = int(ev["seq"][-1])
    t = now_us() if now is None else now
    cut = current_from(t)
    ts = ev["ts"]
    read = len(ev)
    old = ts < cut
    dirty: set[int] = set()
    if old.any():
        dirty = {int(d) for d in np.unique(ts[old] - ts[old] % DAY_US)}
        mark_dirty(conn, dirty, t)
        ev = ev[~old]
    if len(ev):
        merge_and_write(conn, fold_all(events_level(ev), t, day_rows_upto(conn, t)), top, t)
    close_buckets(conn, t, cut)
    for hook in BUILD_HOOKS:
        hook(conn, w, top)
    set_watermark(conn, top)
    return read, dirty


# Other pre-aggregates kept in step with the rollups (e.g. alerts' LLM calls
# per run): each is called inside every build's transaction with the seq
# range (after, upto] the build covers, and must fold exactly those events
# (read from `events` by seq) into its own tables. Registered at import by
# the module that owns the tables.
BUILD_HOOKS: list[Callable[[Connection, int, int], None]] = []


DAY_ROWS_UPTO = "day_rows_upto"


def day_rows_upto(conn: Connection, now: int | None = None) -> int:
    """The first day that has no day rows yet (still open, or closed and not
    yet made by close_days); every day before it has them. Starts at the
    oldest current day: older days get theirs when recounted (recount_step)."""
    v = _state(conn, DAY_ROWS_UPTO)
    return current_from(now) if v is None else v


def close_days(conn: Connection, now: int | None = None) -> int | None:
    """Make the day rows of the oldest day that has closed but has none,
    from its hour rows (and the raw events of hours kept raw), inside the
    caller's write transaction; returns that day, or None if none is due.

    Builds fold an open day into its hours only: a live day's pair rows would
    otherwise be rewritten twice per build, at the hour and at the day, for
    no reader (a window ending now reads the open day through its hours).
    """
    t = now_us() if now is None else now
    day = day_rows_upto(conn, t)
    if day + DAY_US + CLOSE_SLACK_US > t:
        return None
    # (A dirty day gets its day rows when it is recounted.)
    _day_rows(conn, day, t, make=day not in dirty_days(conn))
    _set_state(conn, DAY_ROWS_UPTO, day + DAY_US)
    return day


def _hours_of(conn: Connection, stype: int, day: int) -> Level:
    """The stored hour rows of one series type over a day, as a level, in key
    order (so that the day rows summed from them do not depend on how the
    rows are stored)."""
    r = rollups.c
    rows = conn.execute(
        select(*[r[c] for c in _READ_COLS])
        .where(
            r.unit == HOUR,
            r.kind.in_([0, 1, 2]),
            r.stype == stype,
            r.bucket >= day,
            r.bucket < day + DAY_US,
        )
        .order_by(r.kind, r.bucket, r.v1, r.v2)
    ).all()
    return _level_of(list(rows))


# Hours kept raw are read for the day rows in runs of at most this many.
_RAW_RUN_HOURS = 6


def _raw_hours(conn: Connection, day: int, max_seq: int, fetch: int) -> dict[int, list[Level]]:
    """The hour rows, per series type, of the hours of a day kept raw for
    it, counted from their raw events. Each run of such hours (of at most
    _RAW_RUN_HOURS) is read once, streamed, whatever the series types that
    need it."""
    o = rollup_raw.c
    per: dict[int, set[int]] = {}
    for st, b in conn.execute(
        select(o.stype, o.bucket).where(o.unit == HOUR, o.bucket >= day, o.bucket < day + DAY_US)
    ):
        per.setdefault(int(st), set()).add(int(b))
    runs: list[list[int]] = []
    for h in sorted(set(itertools.chain.from_iterable(per.values()))):
        if runs and runs[-1][1] == h and h - runs[-1][0] < _RAW_RUN_HOURS * HOUR_US:
            runs[-1][1] = h + HOUR_US
        else:
            runs.append([h, h + HOUR_US])
    out: dict[int, list[Level]] = {}
    for a, b in runs:
        ev, n = _events_of(conn, a, b, max_seq, fetch)
        if not n:
            continue
        k = dict(ev.keys)
        k["bucket"] = k["bucket"] - k["bucket"] % HOUR_US
        lv = ev.regroup(k)
        for stype in sorted(per):
            mine = np.flatnonzero(np.isin(lv.keys["bucket"], sorted(per[stype])))
            got = _regroup_to(lv.take(mine), HOUR, stype) if len(mine) else None
            if got is not None and len(got):
                out.setdefault(stype, []).append(got)
    return out


def _regroup_to(lv: Level, unit: int, stype: int) -> Level:
    """An events level (events_level) summed into rows of (unit, stype)."""
    dims = [REF_COLUMN[d] for d in DIMS_OF[stype]]
    k = lv.keys
    if not len(lv):
        return _empty_level(["kind", "bucket", "v1", "v2"])
    z = np.zeros(len(lv), dtype=np.int64)
    mask = np.all([k[d] != 0 for d in dims], axis=0) if dims else None
    return lv.regroup(
        {
            "kind": k["kind"],
            "bucket": k["bucket"] - k["bucket"] % WIDTH_US[unit],
            "v1": k[dims[0]] if dims else z,
            "v2": k[dims[1]] if len(dims) > 1 else z,
        },
        mask,
    )


def close_buckets(conn: Connection, now: int, since: int) -> None:
    """Apply DENSITY to the buckets of the current days that closed since the
    last call (store_state 'closed_upto:<unit>'): sparse series rows go, and
    the bucket is marked to be read raw."""
    closed_before = now - CLOSE_SLACK_US
    r = rollups.c
    marks: list[tuple[int, int, int, int, int, int]] = []
    for unit in (MINUTE, TEN, HOUR):  # (days: close_days applies the rule as it makes them)
        width = WIDTH_US[unit]
        key = f"closed_upto:{unit}"
        lo = max(_state(conn, key) or since, since)
        hi = (closed_before - width) // width * width + width  # buckets ending by then
        if hi <= lo:
            continue
        rng = (r.unit == unit, r.kind.in_([0, 1, 2]), r.bucket >= lo, r.bucket < hi)
        events = dict(
            conn.execute(
                select(r.bucket, func.sum(r.n)).where(*rng, r.stype == TOTAL).group_by(r.bucket)
            ).all()
        )
        if events:
            for stype in SERIES_BY_UNIT[unit]:
                if stype == TOTAL:
                    continue
                q = select(r.bucket, func.count()).where(*rng, r.stype == stype).group_by(r.bucket)
                sparse = [
                    (int(b), int(k), int(events.get(b, 0)))
                    for b, k in conn.execute(q)
                    if int(events.get(b, 0)) < DENSITY * int(k)
                ]
                if sparse:
                    _delete_buckets(conn, unit, stype, [b for b, _, _ in sparse])
                    marks += [(unit, stype, b, k, e, int(k > MAX_KEYS)) for b, k, e in sparse]
        _set_state(conn, key, hi)
    _write_marks(conn, marks)


# -- recounting a day ---------------------------------------------------------
# A dirty day is recounted in slices of whole hours, each in a transaction of
# its own (SqlStore.recount_dirty commits and checkpoints the WAL between
# them): a slice takes hours from where the last one stopped while they hold
# at most RECOUNT_SLICE_ROWS events together (always at least one hour), and
# its raw rows are read RECOUNT_FETCH_ROWS at a time. So the memory and the
# WAL a recount needs follow the slice, not the day: a day of 100,000 events
# once held all of them as Python rows and arrays, and rewrote every rollup
# row of the day in one transaction. The day's rows (unit DAY) are made last,
# from its hour rows, as close_days makes them for a live day. Until the last
# slice commits the day stays marked dirty, so queries read it raw and are
# exact at every moment whatever the slices have written so far.
#
# Progress is kept in store_state ('recount_next:<day>', the first hour not
# yet recounted, and 'recount_touched:<day>', the day's `touched` when the
# recount began), so a recount cut short by a crash or a stop goes on from
# its next slice after a restart. Every slice counts the events up to the
# watermark at its own time: events of a live day built meanwhile are folded
# into the hours already recounted by the build itself, and those of an old
# day mark it touched (build: mark_dirty), which starts the recount over.
_SUB_DAY = (MINUTE, TEN, HOUR)
_NEXT, _TOUCHED = "recount_next:", "recount_touched:"


def _events_of(
    conn: Connection, lo: int, hi: int, max_seq: int, fetch: int = RECOUNT_FETCH_ROWS
) -> tuple[Level, int]:
    """(events_level, count) of the events with lo <= ts < hi and seq <=
    max_seq, read in time order `fetch` rows at a time. Each minute is folded
    from all its events at once (a chunk that ends inside a minute hands that
    minute to the next), in the same order whatever `fetch` is, so the sums
    are the same to the last bit as reading everything in one go."""
    p = placeholder(conn)
    sql = (
        f"SELECT {_FOLD_SELECT} FROM events WHERE ts >= {p} AND ts < {p} AND seq <= {p} "
        "ORDER BY ts, id"
    )
    levels: list[Level] = []
    carry = np.zeros(0, dtype=FOLD_DTYPE)
    n = 0
    for rows in stream_rows(conn, sql, (lo, hi, max_seq), fetch):
        n += len(rows)
        ev = fold_array(rows)
        if len(carry):
            ev = np.concatenate([carry, ev])
        ts = ev["ts"]
        cut = int(np.searchsorted(ts, ts[-1] - ts[-1] % MINUTE_US))
        carry = ev[cut:]
        if cut:
            levels.append(events_level(ev[:cut]))
    if len(carry):
        levels.append(events_level(carry))
    if len(levels) == 1:
        return levels[0], n
    return (_concat_all(levels) if levels else events_level(carry)), n


def _recount_hours(
    conn: Connection, lo: int, hi: int, now: int, fetch: int, days: bool = False
) -> int:
    """Recount the minute, ten-minute and hour rows of [lo, hi) (whole hours
    of one day) from the events up to the watermark, inside the caller's
    transaction; returns the events read. With `days` ([lo, hi) is the whole
    day), the day rows too, from the same events, if the day has closed."""
    units = COARSE_FIRST if days else _SUB_DAY
    conn.execute(delete(rollups).where(*bucket_range(lo, hi, units=units)))
    o = rollup_raw.c
    conn.execute(delete(rollup_raw).where(o.unit.in_(list(units)), o.bucket >= lo, o.bucket < hi))
    w = get_watermark(conn)
    lv, n = _events_of(conn, lo, hi, w, fetch)
    if n:  # days_upto of the day itself: no day rows (_day_rows makes them from the hours)
        upto = day_rows_upto(conn, now) if days else lo - lo % DAY_US
        merge_and_write(conn, fold_all(lv, now, upto), w, now, fresh=True)
    return n


def _day_rows(
    conn: Connection, day: int, now: int, make: bool, fetch: int = RECOUNT_FETCH_ROWS
) -> None:
    """Delete the day rows of `day` and, with `make`, make them again from
    its hour rows (and the raw events of the hours kept raw), inside the
    caller's transaction."""
    end = day + DAY_US
    conn.execute(delete(rollups).where(*bucket_range(day, end, units=(DAY,))))
    o = rollup_raw.c
    conn.execute(delete(rollup_raw).where(o.unit == DAY, o.bucket >= day, o.bucket < end))
    if not make:
        return
    w = get_watermark(conn)
    raw = _raw_hours(conn, day, w, fetch)
    folds = []
    for stype in SERIES_BY_UNIT[DAY]:
        parts = [_hours_of(conn, stype, day), *raw.get(stype, [])]
        parts = [p for p in parts if len(p)]
        if not parts:
            continue
        hours = parts[0] if len(parts) == 1 else _concat_all(parts)
        if len(hours):
            k = dict(hours.keys)
            k["bucket"] = np.full(len(hours), day, dtype=np.int64)
            folds.append(Fold(DAY, stype, hours.regroup(k)))
    merge_and_write(conn, folds, w, now, fresh=True)


def _slice_end(conn: Connection, lo: int, end: int, max_rows: int) -> int:
    """Where the slice that starts at hour `lo` ends: after as many whole
    hours (at least one) as hold at most `max_rows` events together."""
    p = placeholder(conn)
    w = get_watermark(conn)
    q = (
        f"SELECT ts / {HOUR_US}, count(*) FROM events WHERE ts >= {p} AND ts < {p} "
        f"AND seq <= {p} GROUP BY ts / {HOUR_US}"
    )
    per = sorted((int(h) * HOUR_US, int(c)) for h, c in conn.exec_driver_sql(q, (lo, end, w)))
    hi, total = lo + HOUR_US, 0
    for h, c in per:
        if h > lo and total + c > max_rows:
            return max(hi, h)
        total += c
        hi = h + HOUR_US
    return end


def _clear_progress(conn: Connection, day: int) -> None:
    k = store_state.c.key
    conn.execute(delete(store_state).where(k.in_([f"{_NEXT}{day}", f"{_TOUCHED}{day}"])))


def recount_progress(conn: Connection, day: int) -> int | None:
    """The first hour of `day` that its recount in slices has yet to do, or
    None when none is under way."""
    return _state(conn, f"{_NEXT}{day}")


def recount_step(
    conn: Connection,
    day: int,
    now: int | None = None,
    slice_rows: int = RECOUNT_SLICE_ROWS,
    fetch: int = RECOUNT_FETCH_ROWS,
) -> tuple[bool, int]:
    """Recount the next slice of a dirty day, inside the caller's write
    transaction (see RECOUNT_SLICE_ROWS); returns (whether the day is done,
    events read). After the last hour the day rows are made and the dirty
    mark cleared. A day no longer dirty is done at once."""
    t = now_us() if now is None else now
    d = rollup_dirty.c
    touched = conn.execute(select(d.touched).where(d.day == day)).scalar()
    if touched is None:
        _clear_progress(conn, day)
        return True, 0
    nxt = recount_progress(conn, day)
    if nxt is None or _state(conn, f"{_TOUCHED}{day}") != int(touched):
        # Not begun, or events came for the day since it began: from the start.
        nxt = day
        _set_state(conn, f"{_TOUCHED}{day}", int(touched))
    end = day + DAY_US
    if nxt < end:
        hi = _slice_end(conn, nxt, end, slice_rows)
        if nxt == day and hi == end:
            # The whole day in one slice (most days of an import): the day
            # rows from the same events, with no second read.
            n = _recount_hours(conn, day, end, t, fetch, days=True)
            conn.execute(delete(rollup_dirty).where(d.day == day))
            _clear_progress(conn, day)
            return True, n
        n = _recount_hours(conn, nxt, hi, t, fetch)
        _set_state(conn, f"{_NEXT}{day}", hi)
        return False, n
    _day_rows(conn, day, t, day < day_rows_upto(conn, t), fetch)
    conn.execute(delete(rollup_dirty).where(d.day == day))
    _clear_progress(conn, day)
    return True, 0


def recount_day(
    conn: Connection, day: int, now: int | None = None, fetch: int = RECOUNT_FETCH_ROWS
) -> int:
    """Recount one day's rollups from its raw events (every unit), all in the
    caller's write transaction (retention's cut day, migrations), and clear
    its dirty mark: one slice of the whole day, its rows read `fetch` at a
    time. Events past the watermark are left to the next build. Returns the
    events read."""
    n = _recount_hours(conn, day, day + DAY_US, now_us() if now is None else now, fetch, True)
    conn.execute(delete(rollup_dirty).where(rollup_dirty.c.day == day))
    _clear_progress(conn, day)
    return n


# -- query side ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a time range: `unit` is a rollup unit code, or None for raw
    events. The range is half-open: lo <= ts < hi (epoch microseconds)."""

    unit: int | None
    lo: int
    hi: int


def cover(
    lo: int, hi: int, units: Sequence[int] = COARSE_FIRST, minutes_from: int | None = None
) -> list[Piece]:
    """Cut [lo, hi) into rollup pieces (coarsest unit first) and raw leftovers.

    Minute rows are used only at or after `minutes_from` (the horizon, see
    minute_floor); before it, what no coarser unit covers is read raw.
    """
    if lo >= hi:
        return []
    if not units:
        return [Piece(None, lo, hi)]
    u, rest = units[0], units[1:]
    w = WIDTH_US[u]
    if u == MINUTE and minutes_from is not None and lo < minutes_from:
        if hi <= minutes_from:
            return cover(lo, hi, rest)
        return [*cover(lo, minutes_from, rest), *cover(minutes_from, hi, units)]
    a = -(-lo // w) * w  # first unit boundary at or after lo
    z = hi // w * w  # last unit boundary at or before hi
    if a >= z:
        return cover(lo, hi, rest, minutes_from)
    return [
        *cover(lo, a, rest, minutes_from),
        Piece(u, a, z),
        *cover(z, hi, rest, minutes_from),
    ]


def rebuild(
    conn: Connection, lo: int | None = None, hi: int | None = None, now: int | None = None
) -> int:
    """Recount the rollups of every day in [lo, hi) (widened to whole days;
    every day when None) from the raw events, inside the caller's write
    transaction. Returns the events read.

    The events past the watermark are built first, so that the recount, which
    counts events up to the watermark, leaves nothing behind.
    """
    from sqlalchemy import func

    from agentwatch.store.tables import events as e

    while build(conn, 100_000, now)[0]:
        pass
    q = select(func.min(e.c.ts), func.max(e.c.ts))
    first, last = conn.execute(q).one()
    if first is None:
        conn.execute(delete(rollup_dirty))
        return 0
    start = int(first) if lo is None else max(int(first), lo)
    end = int(last) + 1 if hi is None else min(int(last) + 1, hi)
    total = 0
    day = start - start % DAY_US
    while day < end:
        total += recount_day(conn, day, now)
        day += DAY_US
    return total


def bucket_range(
    lo: int | None, hi: int | None, units: Sequence[int] = COARSE_FIRST
) -> list[ColumnElement[bool]]:
    """Conditions selecting every rollup row with lo <= bucket < hi, written
    so that the primary key (unit, kind, stype, bucket, ...) finds them: the
    leading columns as IN lists, then the bucket range."""
    r = rollups.c
    conds: list[ColumnElement[bool]] = [
        r.unit.in_(list(units)),
        r.kind.in_([0, 1, 2]),
        r.stype.in_(list(DIMS_OF)),
    ]
    if lo is not None:
        conds.append(r.bucket >= lo)
    if hi is not None:
        conds.append(r.bucket < hi)
    return conds


@dataclass
class Plan:
    """How one metrics query reads [lo, hi): rollup pieces of one series
    type, ranges read raw, and the watermark past which events are added raw."""

    stype: int | None
    watermark: int
    rollup_pieces: list[Piece]
    raw: list[tuple[int, int]]


def plan(
    conn: Connection,
    lo: int,
    hi: int,
    flt: dict[str, int],
    group: str | None,
    width_us: int | None,
    kind: int | None = None,
    now: int | None = None,
) -> Plan:
    """The plan of a query over [lo, hi) per `group`; with `width_us` (a
    timeseries' bucket width), only the units whose width divides it."""
    gdim = group if group in REF_COLUMN else None
    need = frozenset(flt) | ({gdim} if gdim else frozenset())
    stype = STYPE_OF.get(need)
    units: tuple[int, ...] = ()
    if stype is not None:
        units = tuple(
            u
            for u in COARSE_FIRST
            if stype in SERIES_BY_UNIT[u] and (width_us is None or width_us % WIDTH_US[u] == 0)
        )
    w = get_watermark(conn)
    dirty = sorted(d for d in dirty_days(conn) if d + DAY_US > lo and d < hi)
    mfloor = minute_floor(now)
    days_upto = day_rows_upto(conn, now)
    pieces: list[Piece] = []

    def span(a: int, b: int) -> list[Piece]:
        # Day rows exist only before days_upto: the open day is read by hours.
        if DAY not in units or b <= days_upto:
            return cover(a, b, units, mfloor)
        nodays = tuple(u for u in units if u != DAY)
        if a >= days_upto:
            return cover(a, b, nodays, mfloor)
        return [*cover(a, days_upto, units, mfloor), *cover(days_upto, b, nodays, mfloor)]

    cur = lo
    for d in dirty:
        a, b = max(d, lo), min(d + DAY_US, hi)
        if cur < a:
            pieces += span(cur, a)
        pieces.append(Piece(None, a, b))
        cur = b
    if cur < hi:
        pieces += span(cur, hi)
    marked: set[tuple[int, int]] = set()
    if stype is not None and DIMS_OF[stype]:
        marked = _raw_marked(conn, stype, lo, hi)
        if marked:
            pieces = _split_raw(pieces, marked)
    if units:
        pieces = _whole_edges(conn, pieces, lo, hi, units, kind, marked, set(dirty), days_upto)
    raw: list[tuple[int, int]] = []
    for p in pieces:
        if p.unit is None:
            if raw and raw[-1][1] == p.lo:
                raw[-1] = (raw[-1][0], p.hi)
            else:
                raw.append((p.lo, p.hi))
    return Plan(stype, w, [p for p in pieces if p.unit is not None], raw)


def _whole_edges(
    conn: Connection,
    pieces: list[Piece],
    lo: int,
    hi: int,
    units: tuple[int, ...],
    kind: int | None,
    marked: set[tuple[int, int]],
    dirty: set[int],
    days_upto: int,
) -> list[Piece]:
    """Take a bucket that straddles an edge of the window whole when every
    event in it lies inside the window (its totals row's min_ts and max_ts
    say so), or when it holds none: the current hour or day of live traffic
    is read as one row instead of minutes and raw events."""
    cands: set[tuple[int, int]] = set()
    for u in units:
        if u == MINUTE:
            continue
        w = WIDTH_US[u]
        for b in (lo - lo % w, (hi - 1) - (hi - 1) % w):
            if u == DAY and b >= days_upto:  # no day rows for it yet
                continue
            if (b < lo or b + w > hi) and (u, b) not in marked and b - b % DAY_US not in dirty:
                cands.add((u, b))
    if not cands:
        return pieces
    r = rollups.c
    kinds = [kind] if kind is not None else [0, 1, 2]
    ok: list[tuple[int, int]] = []
    q = (
        select(r.unit, r.bucket, func.min(r.min_ts), func.max(r.max_ts))
        .where(
            r.unit.in_(sorted({u for u, _ in cands})),
            r.kind.in_(kinds),
            r.stype == TOTAL,
            r.bucket.in_(sorted({b for _, b in cands})),
        )
        .group_by(r.unit, r.bucket)
    )
    seen: set[tuple[int, int]] = set()
    for u, b, mn, mx in conn.execute(q):
        key = (int(u), int(b))
        seen.add(key)
        if key in cands and mn is not None and int(mn) >= lo and int(mx) < hi:
            ok.append(key)
    # A bucket without a totals row holds no built event at all: nothing to
    # read there but the raw tail, which is read anyway.
    ok += [c for c in cands if c not in seen]
    # Coarsest first: a whole day makes a whole hour inside it moot.
    for u, b in sorted(ok, key=lambda x: -WIDTH_US[x[0]]):
        a, z = b, b + WIDTH_US[u]
        if any(p.unit == u and p.lo <= a and z <= p.hi for p in pieces):
            continue
        inside = [p for p in pieces if not (p.hi <= a or p.lo >= z)]
        if any(p.unit is not None and (p.lo < a or p.hi > z) for p in inside):
            continue  # a rollup piece crosses it: leave as is
        # Raw pieces are cut at the bucket's edges (a one-hour window over
        # two clock hours is one raw piece until its hours are taken whole).
        kept = [p for p in pieces if p.hi <= a or p.lo >= z]
        for p in inside:
            if p.lo < a:
                kept.append(Piece(None, p.lo, a))
            if p.hi > z:
                kept.append(Piece(None, z, p.hi))
        pieces = sorted([*kept, Piece(u, a, z)], key=lambda p: p.lo)
    return pieces


def _raw_marked(conn: Connection, stype: int, lo: int, hi: int) -> set[tuple[int, int]]:
    """(unit, bucket) of the buckets in [lo, hi) where `stype` keeps no rows."""
    o = rollup_raw.c
    q = select(o.unit, o.bucket).where(
        o.unit.in_(list(COARSE_FIRST)), o.stype == stype, o.bucket >= lo - DAY_US, o.bucket < hi
    )
    return {(int(u), int(b)) for u, b in conn.execute(q)}


def _split_raw(pieces: list[Piece], over: set[tuple[int, int]]) -> list[Piece]:
    out: list[Piece] = []
    for p in pieces:
        if p.unit is None:
            out.append(p)
            continue
        w = WIDTH_US[p.unit]
        bad = sorted(b for u, b in over if u == p.unit and p.lo <= b < p.hi)
        cur = p.lo
        for b in bad:
            if cur < b:
                out.append(Piece(p.unit, cur, b))
            out.append(Piece(None, b, b + w))
            cur = b + w
        if cur < p.hi:
            out.append(Piece(p.unit, cur, p.hi))
    return out


def rollup_select(
    p: Piece,
    stype: int | None,
    flt: dict[str, int],
    kind: int | None,
    group: str | None,
    origin_us: int,
    width_us: int | None,
) -> tuple[Any, list[ColumnElement[bool]]]:
    """The group expression and conditions that read one rollup piece."""
    assert p.unit is not None and stype is not None
    r = rollups.c
    dims = DIMS_OF[stype]

    def col(d: str) -> Any:
        return r.v1 if dims[0] == d else r.v2

    conds: list[ColumnElement[bool]] = [
        r.unit == p.unit,
        r.kind == kind if kind is not None else r.kind.in_([0, 1, 2]),
        r.stype == stype,
    ]
    w = WIDTH_US[p.unit]
    nb = (p.hi - p.lo) // w
    if flt and nb <= 400:
        # With a value filter, name each bucket: the primary key then seeks
        # straight to (bucket, v1) instead of reading every value's row.
        conds.append(r.bucket.in_([p.lo + i * w for i in range(nb)]))
    else:
        conds += [r.bucket >= p.lo, r.bucket < p.hi]
    for d, ref in flt.items():
        conds.append(col(d) == ref)
    if width_us is not None:
        gexpr: Any = ((r.bucket - origin_us) // width_us).label("g")
    elif group in REF_COLUMN:
        gexpr = col(group).label("g")
    else:
        gexpr = literal_column("0").label("g")
    return gexpr, conds


def raw_where(a: int, b: int) -> tuple[str, list[Any]]:
    return "ts >= {p} AND ts < {p}", [a, b]


# Above every seq (both backends' seq is a signed 64-bit integer).
SEQ_BOUND = 2**62


def tail_where(
    watermark: int, lo: int, hi: int, raw: list[tuple[int, int]]
) -> tuple[str, list[Any]]:
    """The events past the watermark inside [lo, hi) but outside the ranges
    already read raw. `+ts` keeps SQLite from using the time index: the tail
    is read by seq, which is the table's own order. The seq range is closed
    above, by a bound no seq reaches, and written into the statement: with
    `seq > w` alone PostgreSQL guesses a third of the table whenever it has
    no statistics (a table loaded faster than autovacuum analyses it, or a
    prepared statement's generic plan) and scans all of it, 22-41 ms for an
    empty tail at 300,000 events; a two-sided range makes it use the primary
    key (0.07 ms)."""
    sql = f"seq > {int(watermark)} AND seq < {SEQ_BOUND} AND +ts >= {{p}} AND +ts < {{p}}"
    params: list[Any] = [lo, hi]
    for a, b in raw:
        sql += " AND NOT (+ts >= {p} AND +ts < {p})"
        params += [a, b]
    return sql, params


def raw_select(
    conn: Connection,
    where: tuple[str, list[Any]],
    flt: dict[str, int],
    kind: int | None,
    group: str | None,
    origin_us: int,
    width_us: int | None,
    only: list[int] | None = None,
    by_bin: bool = True,
) -> tuple[str, list[Any]]:
    """SQL and parameters summing raw events per (group, latency bin); with
    `only`, of those group references alone; without `by_bin`, per group
    (latency bin 0)."""
    p = placeholder(conn)
    cond, params = where
    cond = cond.replace("{p}", p)
    if kind is not None:
        cond += f" AND kind = {p}"
        params = [*params, kind]
    for d, ref in flt.items():
        cond += f" AND {REF_COLUMN[d]} = {p}"
        params = [*params, ref]
    if group in ("provider", "user_id", "session_id"):
        # As their rollups: only the events that have one (reference 0: none).
        cond += f" AND {REF_COLUMN[group]} <> 0"
    if only is not None and group in REF_COLUMN:
        cond += f" AND {REF_COLUMN[group]} IN ({', '.join(str(int(v)) for v in only)})"
    if width_us is not None:
        g = f"(ts - {int(origin_us)}) / {int(width_us)}"
    elif group in REF_COLUMN:
        g = REF_COLUMN[group]
    else:
        g = None
    sums = (
        "count(*), sum(status), sum(cost_usd), sum(latency_ms), "
        "sum(input_tokens), sum(output_tokens)"
    )
    if not by_bin:
        sql = f"SELECT {g or 0}, 0, {sums} FROM events WHERE {cond}"
        if g is not None:
            sql += f" GROUP BY {g}"
    elif g is None:
        sql = f"SELECT 0, latency_bin, {sums} FROM events WHERE {cond} GROUP BY latency_bin"
    else:
        sql = f"SELECT {g}, latency_bin, {sums} FROM events WHERE {cond} GROUP BY {g}, latency_bin"
    return sql, params
