"""Pre-aggregated rollups: what keeps the metrics queries fast at any data size.

Every committed event is also added, in the same transaction, to five rollup
rows: its minute, its ten minutes, its hour, its four hours and its day, keyed
by (kind, agent, task, model), and to the same five rows of its kind's
totals (agent, task and model all ''; see TOTAL). Minute rows are only kept
for recent data (see MINUTE_HORIZON_US): they serve the 1-hour and 24-hour
windows, and older ones would cost more disk than all the other units
together. A rollup row holds
counts and sums and a sparse latency histogram over the log-scale bins of
store/sketch.py, so percentiles merge by adding counts.

A query over [start, end] is cut into pieces: whole days from day rows, then
the leftover whole four-hour spans, hours, ten minutes and (when recent)
minutes at each end, and what is left (seconds, or minutes for old data) from
the raw events. Results are exact for counts and sums; percentiles keep the
sketch's error bound. The raw events stay the source of truth: the rollups can
be rebuilt from them at any time (`agentwatch rebuild-rollups`).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentwatch.store.tables import INSERT_COLUMNS

MINUTE_US = 60_000_000
TEN_MINUTES_US = 600_000_000
HOUR_US = 3_600_000_000
FOUR_HOURS_US = 4 * HOUR_US
DAY_US = 86_400_000_000
# Largest first; each unit divides the one before it. A piece is covered by
# the coarsest unit that fits it: days keep a 30-day summary to ~30 rows per
# series, four-hour rows serve 30-day charts (4- and 12-hour buckets), hours
# 7-day charts, ten-minute rows 24-hour charts (10- and 20-minute buckets),
# minutes 1-hour windows and the ragged ends of longer recent ones.
UNITS_US: tuple[int, ...] = (DAY_US, FOUR_HOURS_US, HOUR_US, TEN_MINUTES_US, MINUTE_US)

# Minute rows are kept for buckets of the last two days only. At a steady
# trickle of events nearly every event has a minute row of its own, so keeping
# them for the whole history would add ~60 bytes per event on disk (measured at
# 1M events over 30 days); past two days a window's ragged ends (under ten
# minutes each) are read from the raw events instead. Readers use minute rows
# only inside the horizon; writers keep writing them a little past it
# (HORIZON_SLACK_US), and pruning deletes only what lies beyond that slack, so
# servers whose clocks differ by less than the slack never read a minute row
# that one of them skipped or pruned.
MINUTE_HORIZON_US = 2 * DAY_US
HORIZON_SLACK_US = HOUR_US

# Totals rows: agent_name (and task_name, model) '' holds the sum over every
# agent, task and model of that kind in the bucket. Real agent names are never
# empty (the contract wants at least one character), so a totals row can
# never be mistaken for an agent's. Unfiltered queries (the dashboard's usual
# view) read one totals row per bucket instead of one row per combination of
# agent, task and model: about twenty times fewer histograms to merge for a
# 30-day chart. Every other query excludes them.
TOTAL = ""


def now_us() -> int:
    return time.time_ns() // 1000


def minute_floor(now: int | None = None) -> int:
    """The oldest minute bucket a reader may use at `now`."""
    return (now_us() if now is None else now) - MINUTE_HORIZON_US


def minute_write_floor(now: int | None = None) -> int:
    """Minute buckets older than this are neither written nor kept."""
    return minute_floor(now) - HORIZON_SLACK_US


_I = {name: INSERT_COLUMNS.index(name) for name in INSERT_COLUMNS}
_TS, _KIND, _AGENT, _TASK, _MODEL = (
    _I[c] for c in ("ts", "kind", "agent_name", "task_name", "model")
)
_STATUS, _COST, _LAT, _BIN = (_I[c] for c in ("status", "cost_usd", "latency_ms", "latency_bin"))
_IN, _OUT, _CR, _CW, _RT = (
    _I[c]
    for c in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
)


# -- histogram codec ----------------------------------------------------------
# A histogram is stored as packed little-endian records of (uint16 bin,
# uint32 count), bins ascending: 6 bytes per occupied bin. Records (rather
# than all bins then all counts) let a query decode thousands of rows with one
# numpy call on their concatenation.
_PAIR = struct.Struct("<HI")
_REC = np.dtype([("b", "<u2"), ("c", "<u4")])


def encode_hist(h: dict[int, int]) -> bytes:
    n = len(h)
    if n > 32:  # numpy wins past a few dozen bins
        bins = np.fromiter(h.keys(), dtype=np.uint16, count=n)
        counts = np.fromiter(h.values(), dtype=np.uint32, count=n)
        order = np.argsort(bins, kind="stable")
        rec = np.empty(n, dtype=_REC)
        rec["b"] = bins[order]
        rec["c"] = counts[order]
        return rec.tobytes()
    flat: list[int] = []
    for b in sorted(h):
        flat.append(b)
        flat.append(h[b])
    return struct.pack("<" + "HI" * len(h), *flat)


def decode_hist(blob: bytes | None) -> dict[int, int]:
    if not blob:
        return {}
    return dict(_PAIR.iter_unpack(blob))


def merge_hist(a: bytes | None, b: bytes | None) -> bytes:
    """Sum of two encoded histograms (registered in SQLite as aw_merge_hist).

    Runs for every rollup row a commit touches: small histograms (most of an
    import's) merge as dicts, large ones (an hour or day row's hundreds of
    bins) in numpy.
    """
    if not a:
        return b or b""
    if not b:
        return a
    if len(a) + len(b) <= 6 * 64:  # small ones (a backfill's usual case): plain dicts
        h = decode_hist(a)
        for k, n in _PAIR.iter_unpack(b):
            h[k] = h.get(k, 0) + n
        return encode_hist(h)
    rec = np.frombuffer(a + b, dtype=_REC)
    bins, inv = np.unique(rec["b"], return_inverse=True)
    out = np.empty(len(bins), dtype=_REC)
    out["b"] = bins
    out["c"] = np.bincount(inv, weights=rec["c"]).astype(np.uint32)
    return out.tobytes()


def decode_many(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode many rows' histograms with one numpy call on their concatenation:
    (records per row, bins, counts), the records in row order."""
    lens = np.fromiter((len(x) // 6 for x in blobs), dtype=np.int64, count=len(blobs))
    rec = np.frombuffer(b"".join(blobs), dtype=_REC)
    return lens, rec["b"], rec["c"]


# -- ingest side --------------------------------------------------------------
@dataclass(slots=True)
class Delta:
    n: int = 0
    errors: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    hist: dict[int, int] = field(default_factory=dict)


# (width_us, bucket_us, kind, agent_name, task_name, model)
Key = tuple[int, int, str, str, str, str]


def deltas(rows: Iterable[tuple[Any, ...]], now: int | None = None) -> dict[Key, Delta]:
    """Aggregate ingest rows (INSERT_COLUMNS order) into per-rollup-row deltas.

    This runs on the ingest path for every event: rows are folded into minute
    deltas in one flat loop, and the coarser deltas are then made from the far
    fewer minute deltas. Minute deltas older than the horizon are dropped
    (they still count in the coarser units).
    """
    minutes: dict[Key, Delta] = {}
    get = minutes.get
    for r in rows:
        ts = r[_TS]
        key = (MINUTE_US, ts - ts % MINUTE_US, r[_KIND], r[_AGENT], r[_TASK], r[_MODEL])
        d = get(key)
        if d is None:
            d = minutes[key] = Delta()
        d.n += 1
        if r[_STATUS] == "error":
            d.errors += 1
        d.cost += r[_COST]
        d.latency_sum += r[_LAT]
        d.input_tokens += r[_IN]
        d.output_tokens += r[_OUT]
        if r[_CR]:
            d.cache_read_tokens += r[_CR]
        if r[_CW]:
            d.cache_write_tokens += r[_CW]
        if r[_RT]:
            d.reasoning_tokens += r[_RT]
        h = d.hist
        lb = r[_BIN]
        h[lb] = h.get(lb, 0) + 1
    # Coarser levels, and the totals of each level, are folded from the level
    # below; a coarser row fed by a single finer one shares its Delta (in
    # live traffic almost all of them: a commit rarely spans two minutes).
    floor = minute_write_floor(now)
    tot = _fold(minutes, _total_key)
    out = {k: d for k, d in minutes.items() if k[1] >= floor}
    out.update((k, d) for k, d in tot.items() if k[1] >= floor)
    finer = minutes
    for unit in reversed(UNITS_US[:-1]):

        def up(k: Key, unit: int = unit) -> Key:
            return (unit, k[1] - k[1] % unit, k[2], k[3], k[4], k[5])

        finer = _fold(finer, up)
        tot = _fold(tot, up)
        out.update(finer)
        out.update(tot)
    return out


def _total_key(k: Key) -> Key:
    return (k[0], k[1], k[2], TOTAL, TOTAL, TOTAL)


def _fold(level: dict[Key, Delta], key_of: Any) -> dict[Key, Delta]:
    """Sum deltas by key_of(key). The Delta objects are never changed after
    folding, so a group of one keeps its only member instead of a copy."""
    out: dict[Key, Delta] = {}
    owned: set[Key] = set()  # groups whose Delta was made here (safe to add to)
    for k, m in level.items():
        k2 = key_of(k)
        d = out.get(k2)
        if d is None:
            out[k2] = m
            continue
        if k2 not in owned:
            d = out[k2] = _copy(d)
            owned.add(k2)
        _add(d, m)
    return out


def _copy(m: Delta) -> Delta:
    return Delta(
        m.n,
        m.errors,
        m.cost,
        m.latency_sum,
        m.input_tokens,
        m.output_tokens,
        m.cache_read_tokens,
        m.cache_write_tokens,
        m.reasoning_tokens,
        dict(m.hist),
    )


def _add(d: Delta, m: Delta) -> None:
    d.n += m.n
    d.errors += m.errors
    d.cost += m.cost
    d.latency_sum += m.latency_sum
    d.input_tokens += m.input_tokens
    d.output_tokens += m.output_tokens
    d.cache_read_tokens += m.cache_read_tokens
    d.cache_write_tokens += m.cache_write_tokens
    d.reasoning_tokens += m.reasoning_tokens
    h = d.hist
    for b, n in m.hist.items():
        h[b] = h.get(b, 0) + n


# -- query side ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a time range: `unit` is a rollup width, or 0 for raw events.
    The range is half-open: lo <= ts < hi (epoch microseconds)."""

    unit: int
    lo: int
    hi: int


def cover(
    lo: int, hi: int, units: Sequence[int] = UNITS_US, minutes_from: int | None = None
) -> list[Piece]:
    """Cut [lo, hi) into rollup pieces (coarsest first) and raw leftovers.

    Minute rows are used only at or after `minutes_from` (the horizon, see
    minute_floor); before it, what no coarser unit covers is read raw.
    """
    if lo >= hi:
        return []
    if not units:
        return [Piece(0, lo, hi)]
    u, rest = units[0], units[1:]
    if u == MINUTE_US and minutes_from is not None and lo < minutes_from:
        if hi <= minutes_from:
            return cover(lo, hi, rest)
        return [*cover(lo, minutes_from, rest), *cover(minutes_from, hi, units)]
    a = -(-lo // u) * u  # first unit boundary at or after lo
    b = hi // u * u  # last unit boundary at or before hi
    if a >= b:
        return cover(lo, hi, rest, minutes_from)
    return [
        *cover(lo, a, rest, minutes_from),
        Piece(u, a, b),
        *cover(b, hi, rest, minutes_from),
    ]


# -- applying deltas ----------------------------------------------------------
_KEY_COLS = ("width", "bucket", "kind", "agent_name", "task_name", "model")
_SUM_COLS = (
    "n",
    "errors",
    "cost",
    "latency_sum",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _upsert_sql() -> str:
    cols = (*_KEY_COLS, *_SUM_COLS, "hist")
    sets = ", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in _SUM_COLS)
    return (
        f"INSERT INTO rollups ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT ({', '.join(_KEY_COLS)}) DO UPDATE SET {sets}, "
        "hist = aw_merge_hist(rollups.hist, excluded.hist)"
    )


_SQLITE_UPSERT = _upsert_sql()


def apply_deltas(conn: Any, ds: dict[Key, Delta]) -> None:
    """Add deltas to the rollup rows, inside the caller's transaction."""
    if not ds:
        return
    if conn.dialect.name == "sqlite":
        # One upsert per row; the histogram merge runs in the aw_merge_hist
        # function registered on every connection (store/dialect.py).
        conn.exec_driver_sql(
            _SQLITE_UPSERT,
            [(*k, *(getattr(d, c) for c in _SUM_COLS), encode_hist(d.hist)) for k, d in ds.items()],
        )
        return
    _apply_pg(conn, ds)


# PostgreSQL branch. Each step is one statement over the whole batch, the
# deltas travelling as one array per column:
#   1. insert every key that is new, with its delta as the starting value
#      (ON CONFLICT DO NOTHING; RETURNING says which keys that was);
#   2. lock the rows of the other keys (SELECT ... FOR UPDATE) and read their
#      histograms;
#   3. add the sums and write back the histograms merged here.
# Keys go in sorted order, so two transactions touching the same keys lock them
# in the same order. The writer lock (dialect.begin_write) already serializes
# AgentWatch writers; the steps stay correct without it: a concurrent insert of
# the same new key waits in step 1 for the other to commit, then conflicts and
# is merged in step 3 under the row lock.
_PG_KEY_TYPES = ("int8", "int8", "text", "text", "text", "text")
_PG_SUM_TYPES = ("int8", "int8", "float8", "float8", "int8", "int8", "int8", "int8", "int8")
_PG_KEYS = ", ".join(_KEY_COLS)
_PG_ARGS = ", ".join(f"%s::{t}[]" for t in (*_PG_KEY_TYPES, *_PG_SUM_TYPES, "bytea"))
_PG_INSERT = (
    f"INSERT INTO rollups ({_PG_KEYS}, {', '.join(_SUM_COLS)}, hist) "
    f"SELECT * FROM unnest({_PG_ARGS}) ON CONFLICT ({_PG_KEYS}) DO NOTHING RETURNING {_PG_KEYS}"
)
_PG_KEY_ARGS = ", ".join(f"%s::{t}[]" for t in _PG_KEY_TYPES)
_PG_KEY_MATCH = " AND ".join(f"r.{k} = d.{k}" for k in _KEY_COLS)
_PG_LOCK = (
    f"SELECT {', '.join('r.' + k for k in _KEY_COLS)}, r.hist FROM rollups r "
    f"JOIN unnest({_PG_KEY_ARGS}) AS d({_PG_KEYS}) ON {_PG_KEY_MATCH} "
    f"ORDER BY {', '.join('r.' + k for k in _KEY_COLS)} FOR UPDATE OF r"
)
_PG_UPDATE = (
    "UPDATE rollups r SET "
    + ", ".join(f"{c} = r.{c} + d.{c}" for c in _SUM_COLS)
    + f", hist = d.hist FROM unnest({_PG_ARGS}) AS d({_PG_KEYS}, {', '.join(_SUM_COLS)}, hist) "
    + f"WHERE {_PG_KEY_MATCH}"
)


def _columns(items: list[tuple[Key, Delta]], hists: list[bytes]) -> tuple[list[Any], ...]:
    keys = [k for k, _ in items]
    cols: list[list[Any]] = [list(x) for x in zip(*keys, strict=True)]
    cols += [[getattr(d, c) for _, d in items] for c in _SUM_COLS]
    cols.append(hists)
    return tuple(cols)


def _apply_pg(conn: Any, ds: dict[Key, Delta]) -> None:
    items = sorted(ds.items(), key=lambda kv: kv[0])
    created = {
        tuple(x)
        for x in conn.exec_driver_sql(
            _PG_INSERT, _columns(items, [encode_hist(d.hist) for _, d in items])
        )
    }
    rest = [(k, d) for k, d in items if k not in created]
    if not rest:
        return
    keys = tuple(list(x) for x in zip(*(k for k, _ in rest), strict=True))
    old = {tuple(x[:6]): x[6] for x in conn.exec_driver_sql(_PG_LOCK, keys)}
    merged = [merge_hist(old.get(k), encode_hist(d.hist)) for k, d in rest]
    conn.exec_driver_sql(_PG_UPDATE, _columns(rest, merged))


def rebuild(conn: Any, lo: int | None = None, hi: int | None = None, chunk: int = 50_000) -> int:
    """Recompute the rollups of [lo, hi) (widened to whole days) from raw
    events, inside the caller's write transaction. Returns events read.

    Run it while nothing ingests into the range: the CLI command wants the
    server stopped; prune rebuilds only the day it cut through, in the past.
    """
    from sqlalchemy import delete, select

    from agentwatch.store.tables import INSERT_COLUMNS as cols
    from agentwatch.store.tables import events as e
    from agentwatch.store.tables import rollups as r

    big = UNITS_US[0]
    lo_h = None if lo is None else lo // big * big
    hi_h = None if hi is None else -(-hi // big) * big
    r_conds, e_conds = [], []
    if lo_h is not None:
        r_conds.append(r.c.bucket >= lo_h)
        e_conds.append(e.c.ts >= lo_h)
    if hi_h is not None:
        r_conds.append(r.c.bucket < hi_h)
        e_conds.append(e.c.ts < hi_h)
    conn.execute(delete(r).where(*r_conds))
    total = 0
    last_seq = 0
    while True:
        q = (
            select(e.c.seq, *[e.c[c] for c in cols])
            .where(e.c.seq > last_seq, *e_conds)
            .order_by(e.c.seq)
            .limit(chunk)
        )
        rows = [tuple(x) for x in conn.execute(q)]
        if not rows:
            return total
        last_seq = int(rows[-1][0])
        apply_deltas(conn, deltas(x[1:] for x in rows))
        total += len(rows)
