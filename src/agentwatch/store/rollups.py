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
server's writer every second or so, and when ingest pauses) reads the events
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
instead (`rollup_dirty`), and recounted whole from its raw events once no
event has arrived for it for a little while (`recount_day`): one sequential
pass per day. Until then queries read that day raw, so results are exact at
every moment.

Cardinality guard. A bucket whose series type would hold more than
MAX_KEYS distinct values (task names that carry ids) gives that series type
up for that bucket (`rollup_overflow`); queries read raw events there.

Reads (`store/sql.py`): a window is cut into pieces (whole days from day
rows, then hours, ten minutes and minutes at the ends, and what is left from
raw events), dirty days and overflowed buckets are read raw, and the events
past the watermark (committed but not yet built, at most a few seconds'
worth) are added from the raw table. Counts and sums are exact; percentiles
keep the sketch's error bound. The raw events stay the source of truth:
`agentwatch rebuild-rollups` recounts everything from them.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, delete, insert, literal_column, select

from agentwatch.store.dialect import insert_ignore
from agentwatch.store.tables import rollup_dirty, rollup_overflow, rollups, store_state

MINUTE_US = 60_000_000
TEN_MINUTES_US = 600_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000

# Unit codes and widths, finest first.
MINUTE, TEN, HOUR, DAY = 0, 1, 2, 3
WIDTH: dict[int, int] = {MINUTE: MINUTE_US, TEN: TEN_MINUTES_US, HOUR: HOUR_US, DAY: DAY_US}
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
# older ones are marked dirty and recounted whole (see the module docstring).
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


def now_us() -> int:
    return time.time_ns() // 1000


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


# -- histogram codec ----------------------------------------------------------
# A histogram is stored as packed little-endian records of (uint16 bin,
# uint32 count), bins ascending: 6 bytes per occupied bin. Records (rather
# than all bins then all counts) let a query decode thousands of rows with one
# numpy call on their concatenation.
_PAIR = struct.Struct("<HI")
REC = np.dtype([("b", "<u2"), ("c", "<u4")])


def encode_hist(h: dict[int, int]) -> bytes:
    flat: list[int] = []
    for b in sorted(h):
        flat.append(b)
        flat.append(h[b])
    return struct.pack("<" + "HI" * len(h), *flat)


def decode_hist(blob: bytes | None) -> dict[int, int]:
    if not blob:
        return {}
    return dict(_PAIR.iter_unpack(blob))


def decode_many(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode many rows' histograms with one numpy call on their concatenation:
    (records per row, bins, counts), the records in row order."""
    lens = np.fromiter((len(x) // 6 for x in blobs), dtype=np.int64, count=len(blobs))
    rec = np.frombuffer(b"".join(blobs), dtype=REC)
    return lens, rec["b"].astype(np.int64), rec["c"].astype(np.int64)


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
_F = {c: i for i, c in enumerate(FOLD_COLUMNS)}
# Summed measures, in rollup column order.
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
_INT_SUMS = frozenset(s for s in SUMS if s not in ("cost", "latency_sum"))


class Batch:
    """Fold columns of many events as numpy arrays (NULL references as 0)."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        n = len(rows)
        self.n = n
        cols = list(zip(*rows, strict=True)) if n else [() for _ in FOLD_COLUMNS]
        self.col: dict[str, np.ndarray] = {}
        for name, values in zip(FOLD_COLUMNS, cols, strict=True):
            if name in ("latency_ms", "cost_usd"):
                self.col[name] = np.fromiter(values, dtype=np.float64, count=n)
            elif name.endswith("_ref"):
                self.col[name] = np.fromiter((v or 0 for v in values), dtype=np.int64, count=n)
            else:
                self.col[name] = np.fromiter(values, dtype=np.int64, count=n)

    def take(self, mask: np.ndarray) -> Batch:
        out = Batch.__new__(Batch)
        out.col = {k: v[mask] for k, v in self.col.items()}
        out.n = int(mask.sum()) if mask.dtype == bool else len(mask)
        return out


@dataclass
class Fold:
    """Deltas for the rows of one (unit, series type): parallel arrays, one
    entry per row, sorted by key, and the histogram records of every row."""

    unit: int
    stype: int
    kind: np.ndarray
    bucket: np.ndarray
    v1: np.ndarray
    v2: np.ndarray
    n: np.ndarray
    sums: dict[str, np.ndarray]
    min_ts: np.ndarray | None
    max_ts: np.ndarray | None
    # Histogram records: row index, bin, count (sorted by row, then bin).
    h_row: np.ndarray
    h_bin: np.ndarray
    h_cnt: np.ndarray

    def __len__(self) -> int:
        return len(self.bucket)


def _group(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by the tuple of `cols`: (index of each group's first row in
    key order, group index of every row)."""
    # One int64 key in mixed radix when the spans fit (the usual case: a build
    # covers few buckets and references are small), else a lexsort.
    key = np.zeros(len(cols[0]), dtype=np.int64)
    radix = 1
    fits = True
    for c in reversed(cols):
        lo = int(c.min()) if len(c) else 0
        span = (int(c.max()) - lo + 1) if len(c) else 1
        if radix * span >= 2**62:
            fits = False
            break
        key += (c - lo) * radix
        radix *= span
    if fits:
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        return first, inv
    order = np.lexsort(list(reversed(cols)))
    stacked = np.stack([c[order] for c in cols])
    change = np.ones(len(order), dtype=bool)
    change[1:] = np.any(stacked[:, 1:] != stacked[:, :-1], axis=0)
    gid_sorted = np.cumsum(change) - 1
    inv = np.empty(len(order), dtype=np.int64)
    inv[order] = gid_sorted
    first = order[change]
    return first, inv


def fold(b: Batch, unit: int, stype: int) -> Fold | None:
    """Sum the events of `b` into one delta per rollup row of (unit, stype)."""
    col = b.col
    width = WIDTH[unit]
    ts = col["ts"]
    dims = DIMS_OF[stype]
    mask = None
    for d in dims:
        if d in ("provider", "user_id", "session_id"):  # events without one are not counted
            m = col[REF_COLUMN[d]] != 0
            mask = m if mask is None else (mask & m)
    if mask is not None and not mask.all():
        b = b.take(mask)
        col = b.col
        ts = col["ts"]
    if b.n == 0:
        return None
    bucket = ts - ts % width
    kind = col["kind"]
    zero = np.zeros(b.n, dtype=np.int64)
    v1 = col[REF_COLUMN[dims[0]]] if dims else zero
    v2 = col[REF_COLUMN[dims[1]]] if len(dims) > 1 else zero
    first, inv = _group([kind, bucket, v1, v2])
    g = len(first)
    n = np.bincount(inv, minlength=g).astype(np.int64)
    sums: dict[str, np.ndarray] = {}
    for s in SUMS:
        w = col[_SUM_SOURCE[s]]
        v = np.bincount(inv, weights=w, minlength=g)
        sums[s] = v.astype(np.int64) if s in _INT_SUMS else v
    min_ts: np.ndarray | None = None
    max_ts: np.ndarray | None = None
    if stype == TOTAL:
        min_ts = np.full(g, np.iinfo(np.int64).max, dtype=np.int64)
        max_ts = np.full(g, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(min_ts, inv, ts)
        np.maximum.at(max_ts, inv, ts)
    bins = col["latency_bin"]
    pair = inv * 65536 + bins
    up, cnt = np.unique(pair, return_counts=True)
    # Rows in key order: `first` is in key order already (np.unique sorts).
    return Fold(
        unit=unit,
        stype=stype,
        kind=kind[first],
        bucket=bucket[first],
        v1=v1[first],
        v2=v2[first],
        n=n,
        sums=sums,
        min_ts=min_ts,
        max_ts=max_ts,
        h_row=up // 65536,
        h_bin=up % 65536,
        h_cnt=cnt.astype(np.int64),
    )


def fold_all(b: Batch, now: int | None = None) -> list[Fold]:
    """Every (unit, series type) delta of a batch of events."""
    out = []
    floor = minute_write_floor(now)
    for unit in COARSE_FIRST:
        bb = b
        if unit == MINUTE:
            keep = b.col["ts"] >= floor
            if not keep.any():
                continue
            if not keep.all():
                bb = b.take(keep)
        for stype in SERIES_BY_UNIT[unit]:
            f = fold(bb, unit, stype)
            if f is not None:
                out.append(f)
    return out


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


def _hist_blobs(row: np.ndarray, bins: np.ndarray, cnt: np.ndarray, rows: int) -> list[bytes]:
    """Encode records (sorted by row, then bin) into one blob per row."""
    rec = np.empty(len(row), dtype=REC)
    rec["b"] = bins
    rec["c"] = np.minimum(cnt, 2**32 - 1)
    data = rec.tobytes()
    bounds = np.searchsorted(row, np.arange(rows + 1))
    return [data[6 * int(a) : 6 * int(z)] for a, z in itertools.pairwise(bounds)]


def _existing(conn: Connection, f: Fold) -> list[Any]:
    """Stored rows in the buckets a fold touches (same unit and series type)."""
    r = rollups.c
    cols = (r.kind, r.bucket, r.v1, r.v2, r.n, *[r[s] for s in SUMS], r.hist, r.min_ts, r.max_ts)
    kinds = sorted({int(k) for k in np.unique(f.kind)})
    buckets = sorted({int(b) for b in np.unique(f.bucket)})
    out: list[Any] = []
    # Exact buckets (an IN list the primary key seeks on), not a range: a
    # build's minute rows can span a day when a few late events come in.
    for i in range(0, len(buckets), 500):
        q = select(*cols).where(
            r.unit == f.unit,
            r.kind.in_(kinds),
            r.stype == f.stype,
            r.bucket.in_(buckets[i : i + 500]),
        )
        out.extend(conn.execute(q))
    return out


def merge_and_write(
    conn: Connection, folds: Iterable[Fold], overflowed: set[tuple[int, int, int]]
) -> None:
    """Add folds to the stored rollup rows, inside the caller's transaction.

    For each (unit, series type): read the stored rows of the buckets
    touched, add the deltas (sums, and histograms by merging records), and
    write every touched row back. A bucket that would pass MAX_KEYS distinct
    values is given up (see the module docstring); `overflowed` holds the
    (unit, stype, bucket) already given up, and is updated.
    """
    out_rows: list[tuple[Any, ...]] = []
    for f in folds:
        old = _existing(conn, f)
        _merge_one(conn, f, old, overflowed, out_rows)
    if out_rows:
        _upsert(conn, out_rows)


def _merge_one(
    conn: Connection,
    f: Fold,
    old: list[Any],
    overflowed: set[tuple[int, int, int]],
    out_rows: list[tuple[Any, ...]],
) -> None:
    nd = len(f)
    # Index stored rows by key; merge.
    okey: dict[tuple[int, int, int, int], int] = {}
    for i, o in enumerate(old):
        okey[(int(o[0]), int(o[1]), int(o[2]), int(o[3]))] = i
    dkey = list(zip(f.kind.tolist(), f.bucket.tolist(), f.v1.tolist(), f.v2.tolist(), strict=True))
    # Distinct values per bucket after the merge (stored ones + new ones).
    if DIMS_OF[f.stype] and len(old) + nd > MAX_KEYS:
        per_bucket: dict[int, set[tuple[int, int]]] = {}
        for o in old:
            per_bucket.setdefault(int(o[1]), set()).add((int(o[2]), int(o[3])))
        for _k, bk, a, b in dkey:
            per_bucket.setdefault(bk, set()).add((a, b))
        for bk, keyset in per_bucket.items():
            if len(keyset) > MAX_KEYS and (f.unit, f.stype, bk) not in overflowed:
                give_up(conn, f.unit, f.stype, bk)
                overflowed.add((f.unit, f.stype, bk))
    skip = {bk for (u, s, bk) in overflowed if u == f.unit and s == f.stype}
    # Existing histograms, as records mapped to delta rows.
    match = [okey.get(k) for k in dkey]
    have = [i for i, m in enumerate(match) if m is not None]
    rec_row = [f.h_row]
    rec_bin = [f.h_bin]
    rec_cnt = [f.h_cnt]
    n = f.n.copy()
    sums = {s: v.copy() for s, v in f.sums.items()}
    min_ts = None if f.min_ts is None else f.min_ts.copy()
    max_ts = None if f.max_ts is None else f.max_ts.copy()
    if have:
        oidx = [match[i] for i in have]
        orows = [old[j] for j in oidx]  # type: ignore[index]
        hv = np.asarray(have, dtype=np.int64)
        n[hv] += np.fromiter((int(o[4]) for o in orows), dtype=np.int64, count=len(orows))
        for k, s in enumerate(SUMS):
            col = [o[5 + k] for o in orows]
            dt = np.int64 if s in _INT_SUMS else np.float64
            sums[s][hv] += np.asarray(col, dtype=dt)
        hpos = 5 + len(SUMS)
        lens, bins, cnts = decode_many([o[hpos] for o in orows])
        rec_row.append(np.repeat(hv, lens))
        rec_bin.append(bins)
        rec_cnt.append(cnts)
        if min_ts is not None and max_ts is not None:
            omin = np.fromiter((o[hpos + 1] for o in orows), dtype=np.int64, count=len(orows))
            omax = np.fromiter((o[hpos + 2] for o in orows), dtype=np.int64, count=len(orows))
            min_ts[hv] = np.minimum(min_ts[hv], omin)
            max_ts[hv] = np.maximum(max_ts[hv], omax)
    row = np.concatenate(rec_row)
    bins_all = np.concatenate(rec_bin)
    cnt_all = np.concatenate(rec_cnt)
    pair = row * 65536 + bins_all
    up, inv = np.unique(pair, return_inverse=True)
    merged = np.bincount(inv, weights=cnt_all).astype(np.int64)
    blobs = _hist_blobs(up // 65536, up % 65536, merged, nd)
    unit, stype = f.unit, f.stype
    cols = [sums[s].tolist() for s in SUMS]
    nl = n.tolist()
    mins = min_ts.tolist() if min_ts is not None else None
    maxs = max_ts.tolist() if max_ts is not None else None
    for i, (k, bk, a, b) in enumerate(dkey):
        if bk in skip:
            continue
        out_rows.append(
            (
                unit,
                k,
                stype,
                bk,
                a,
                b,
                nl[i],
                *(c[i] for c in cols),
                blobs[i],
                None if mins is None else mins[i],
                None if maxs is None else maxs[i],
            )
        )


def give_up(conn: Connection, unit: int, stype: int, bucket: int) -> None:
    """Stop keeping (unit, stype) rows for one bucket: queries read it raw."""
    r = rollups.c
    conn.execute(delete(rollups).where(r.unit == unit, r.stype == stype, r.bucket == bucket))
    insert_ignore(conn, rollup_overflow, [{"unit": unit, "stype": stype, "bucket": bucket}])


def load_overflowed(conn: Connection, lo: int | None = None) -> set[tuple[int, int, int]]:
    o = rollup_overflow.c
    q = select(o.unit, o.stype, o.bucket)
    if lo is not None:
        q = q.where(o.bucket >= lo)
    return {(int(u), int(s), int(b)) for u, s, b in conn.execute(q)}


def _upsert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    cols = ", ".join(_ROW_COLS)
    if conn.dialect.name == "sqlite":
        raw: Any = conn.connection.driver_connection
        one = "(" + ", ".join("?" for _ in _ROW_COLS) + ")"
        cur = raw.cursor()
        i, total = 0, len(rows)
        while i < total:
            k = 256
            while k > total - i:
                k //= 2
            sql = f"INSERT OR REPLACE INTO rollups ({cols}) VALUES " + ", ".join([one] * k)
            cur.execute(sql, [x for r in rows[i : i + k] for x in r])
            i += k
        return
    sets = ", ".join(f"{c} = excluded.{c}" for c in _ROW_COLS[6:])
    sql = (
        f"INSERT INTO rollups ({cols}) VALUES ({', '.join('%s' for _ in _ROW_COLS)}) "
        f"ON CONFLICT (unit, kind, stype, bucket, v1, v2) DO UPDATE SET {sets}"
    )
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.executemany(sql, rows)


# -- the watermark and dirty days --------------------------------------------
WATERMARK = "rollup_seq"


def get_watermark(conn: Connection) -> int:
    v = conn.execute(select(store_state.c.value).where(store_state.c.key == WATERMARK)).scalar()
    return int(v or 0)


def set_watermark(conn: Connection, seq: int) -> None:
    n = conn.execute(
        store_state.update().where(store_state.c.key == WATERMARK).values(value=seq)
    ).rowcount
    if not n:
        conn.execute(insert(store_state).values(key=WATERMARK, value=seq))


def dirty_days(conn: Connection) -> dict[int, tuple[int, int]]:
    """Dirty day -> (when it became dirty, when events last arrived for it)."""
    d = rollup_dirty.c
    return {int(a): (int(b), int(c)) for a, b, c in conn.execute(select(d.day, d.since, d.touched))}


def mark_dirty(conn: Connection, days: Iterable[int], now: int) -> None:
    days = sorted(set(days))
    if not days:
        return
    d = rollup_dirty.c
    conn.execute(rollup_dirty.update().where(d.day.in_(days)).values(touched=now))
    insert_ignore(conn, rollup_dirty, [{"day": x, "since": now, "touched": now} for x in days])


# -- building -----------------------------------------------------------------
def _select_fold(where: str) -> str:
    return f"SELECT {', '.join(FOLD_COLUMNS)} FROM events WHERE {where}"


def build(conn: Connection, max_rows: int, now: int | None = None) -> tuple[int, set[int]]:
    """Fold the events past the watermark (at most max_rows, in seq order)
    into the rollups; returns (events read, days newly marked dirty)."""
    w = get_watermark(conn)
    rows = conn.exec_driver_sql(
        _select_fold("seq > ? ORDER BY seq LIMIT ?")
        if conn.dialect.name == "sqlite"
        else _select_fold("seq > %s ORDER BY seq LIMIT %s"),
        (w, max_rows),
    ).fetchall()
    if not rows:
        return 0, set()
    t = now_us() if now is None else now
    b = Batch(rows)
    day = b.col["ts"] - b.col["ts"] % DAY_US
    current = day >= current_from(t)
    dirty = {int(d) for d in np.unique(day[~current])}
    if dirty:
        mark_dirty(conn, dirty, t)
    hot = b if current.all() else b.take(current)
    if hot.n:
        over = load_overflowed(conn, current_from(t))
        merge_and_write(conn, fold_all(hot, t), over)
    set_watermark(conn, int(b.col["seq"][-1]))
    return len(rows), dirty


def recount_day(conn: Connection, day: int, now: int | None = None) -> int:
    """Recount one day's rollups from its raw events (every unit), inside the
    caller's write transaction, and clear its dirty mark. Events past the
    watermark are left to the next build. Returns the events read."""
    end = day + DAY_US
    conn.execute(delete(rollups).where(*bucket_range(day, end)))
    o = rollup_overflow.c
    conn.execute(delete(rollup_overflow).where(o.bucket >= day, o.bucket < end))
    w = get_watermark(conn)
    p = "?" if conn.dialect.name == "sqlite" else "%s"
    rows = conn.exec_driver_sql(
        _select_fold(f"ts >= {p} AND ts < {p} AND seq <= {p}"), (day, end, w)
    ).fetchall()
    if rows:
        merge_and_write(conn, fold_all(Batch(rows), now), set())
    conn.execute(delete(rollup_dirty).where(rollup_dirty.c.day == day))
    return len(rows)


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
    w = WIDTH[u]
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
    width: int | None,
    now: int | None = None,
) -> Plan:
    gdim = group if group in REF_COLUMN else None
    need = frozenset(flt) | ({gdim} if gdim else frozenset())
    stype = STYPE_OF.get(need)
    units: tuple[int, ...] = ()
    if stype is not None:
        units = tuple(
            u
            for u in COARSE_FIRST
            if stype in SERIES_BY_UNIT[u] and (width is None or width % WIDTH[u] == 0)
        )
    w = get_watermark(conn)
    dirty = sorted(d for d in dirty_days(conn) if d + DAY_US > lo and d < hi)
    mfloor = minute_floor(now)
    pieces: list[Piece] = []
    cur = lo
    for d in dirty:
        a, b = max(d, lo), min(d + DAY_US, hi)
        if cur < a:
            pieces += cover(cur, a, units, mfloor)
        pieces.append(Piece(None, a, b))
        cur = b
    if cur < hi:
        pieces += cover(cur, hi, units, mfloor)
    if stype is not None and DIMS_OF[stype]:
        over = _overflowed(conn, stype, lo, hi)
        if over:
            pieces = _split_overflowed(pieces, over)
    raw: list[tuple[int, int]] = []
    for p in pieces:
        if p.unit is None:
            if raw and raw[-1][1] == p.lo:
                raw[-1] = (raw[-1][0], p.hi)
            else:
                raw.append((p.lo, p.hi))
    return Plan(stype, w, [p for p in pieces if p.unit is not None], raw)


def _overflowed(conn: Connection, stype: int, lo: int, hi: int) -> set[tuple[int, int]]:
    o = rollup_overflow.c
    q = select(o.unit, o.bucket).where(
        o.unit.in_(list(COARSE_FIRST)), o.stype == stype, o.bucket >= lo - DAY_US, o.bucket < hi
    )
    return {(int(u), int(b)) for u, b in conn.execute(q)}


def _split_overflowed(pieces: list[Piece], over: set[tuple[int, int]]) -> list[Piece]:
    out: list[Piece] = []
    for p in pieces:
        if p.unit is None:
            out.append(p)
            continue
        w = WIDTH[p.unit]
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
    origin: int,
    width: int | None,
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
    w = WIDTH[p.unit]
    nb = (p.hi - p.lo) // w
    if flt and nb <= 400:
        # With a value filter, name each bucket: the primary key then seeks
        # straight to (bucket, v1) instead of reading every value's row.
        conds.append(r.bucket.in_([p.lo + i * w for i in range(nb)]))
    else:
        conds += [r.bucket >= p.lo, r.bucket < p.hi]
    for d, ref in flt.items():
        conds.append(col(d) == ref)
    if width is not None:
        gexpr: Any = ((r.bucket - origin) // width).label("g")
    elif group in REF_COLUMN:
        gexpr = col(group).label("g")
    else:
        gexpr = literal_column("0").label("g")
    return gexpr, conds


def raw_where(a: int, b: int) -> tuple[str, list[Any]]:
    return "ts >= {p} AND ts < {p}", [a, b]


def tail_where(
    watermark: int, lo: int, hi: int, raw: list[tuple[int, int]]
) -> tuple[str, list[Any]]:
    """The events past the watermark inside [lo, hi) but outside the ranges
    already read raw. `+ts` keeps SQLite from using the time index: the tail
    is read by seq, which is the table's own order."""
    sql = "seq > {p} AND +ts >= {p} AND +ts < {p}"
    params: list[Any] = [watermark, lo, hi]
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
    origin: int,
    width: int | None,
) -> tuple[str, list[Any]]:
    """SQL and parameters summing raw events per (group, latency bin)."""
    p = "?" if conn.dialect.name == "sqlite" else "%s"
    cond, params = where
    cond = cond.replace("{p}", p)
    if kind is not None:
        cond += f" AND kind = {p}"
        params = [*params, kind]
    for d, ref in flt.items():
        cond += f" AND {REF_COLUMN[d]} = {p}"
        params = [*params, ref]
    if width is not None:
        g = f"(ts - {int(origin)}) / {int(width)}"
    elif group in REF_COLUMN:
        g = REF_COLUMN[group]
    else:
        g = None
    sums = (
        "count(*), sum(status), sum(cost_usd), sum(latency_ms), "
        "sum(input_tokens), sum(output_tokens)"
    )
    if g is None:
        sql = f"SELECT 0, latency_bin, {sums} FROM events WHERE {cond} GROUP BY latency_bin"
    else:
        sql = f"SELECT {g}, latency_bin, {sums} FROM events WHERE {cond} GROUP BY {g}, latency_bin"
    return sql, params
