"""Pre-aggregated rollups: what keeps the metrics queries fast at any data size.

Every committed event is also added, in the same transaction, to two rollup
rows: its minute and its hour, keyed by (kind, agent, task, model). A rollup
row holds counts and sums and a sparse latency histogram over the log-scale
bins of store/sketch.py, so percentiles merge by adding counts.

A query over [start, end] is cut into pieces: whole hours from hour rows, the
leftover whole minutes at each end from minute rows, and the leftover seconds
from the raw events. Results are exact for counts and sums; percentiles keep
the sketch's error bound. The raw events stay the source of truth: the rollups
can be rebuilt from them at any time (`agentwatch rebuild-rollups`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentwatch.store.tables import INSERT_COLUMNS

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
# Largest first: a piece is covered by the coarsest unit that fits it.
UNITS_US: tuple[int, ...] = (HOUR_US, MINUTE_US)

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
def encode_hist(h: dict[int, int]) -> bytes:
    """Sparse histogram as bytes: uint16 bins then uint32 counts, bins ascending."""
    bins = sorted(h)
    return array("H", bins).tobytes() + array("I", [h[b] for b in bins]).tobytes()


def decode_hist(blob: bytes | None) -> dict[int, int]:
    if not blob:
        return {}
    n = len(blob) // 6
    bins = array("H")
    bins.frombytes(blob[: 2 * n])
    counts = array("I")
    counts.frombytes(blob[2 * n :])
    return dict(zip(bins, counts, strict=True))


def merge_hist(a: bytes | None, b: bytes | None) -> bytes:
    """Sum of two encoded histograms (registered in SQLite as aw_merge_hist)."""
    h = decode_hist(a)
    for k, v in decode_hist(b).items():
        h[k] = h.get(k, 0) + v
    return encode_hist(h)


def hist_arrays(blobs: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Decode many histograms at once into (bins, counts) arrays."""
    bins: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for blob in blobs:
        if not blob:
            continue
        n = len(blob) // 6
        bins.append(np.frombuffer(blob, dtype=np.uint16, count=n))
        counts.append(np.frombuffer(blob, dtype=np.uint32, offset=2 * n, count=n))
    if not bins:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(bins).astype(np.int64), np.concatenate(counts).astype(np.int64)


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


def deltas(rows: Iterable[tuple[Any, ...]]) -> dict[Key, Delta]:
    """Aggregate ingest rows (INSERT_COLUMNS order) into per-rollup-row deltas.

    This runs on the ingest path for every event, so it is one flat loop.
    """
    out: dict[Key, Delta] = {}
    get = out.get
    for r in rows:
        ts = r[_TS]
        dims = (r[_KIND], r[_AGENT], r[_TASK], r[_MODEL])
        err = r[_STATUS] == "error"
        lb = r[_BIN]
        for key in ((MINUTE_US, ts - ts % MINUTE_US, *dims), (HOUR_US, ts - ts % HOUR_US, *dims)):
            d = get(key)
            if d is None:
                d = out[key] = Delta()
            d.n += 1
            if err:
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
            h[lb] = h.get(lb, 0) + 1
    return out


# -- query side ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a time range: `unit` is a rollup width, or 0 for raw events.
    The range is half-open: lo <= ts < hi (epoch microseconds)."""

    unit: int
    lo: int
    hi: int


def cover(lo: int, hi: int, units: Sequence[int] = UNITS_US) -> list[Piece]:
    """Cut [lo, hi) into rollup pieces (coarsest first) and raw leftovers."""
    if lo >= hi:
        return []
    if not units:
        return [Piece(0, lo, hi)]
    u, rest = units[0], units[1:]
    a = -(-lo // u) * u  # first unit boundary at or after lo
    b = hi // u * u  # last unit boundary at or before hi
    if a >= b:
        return cover(lo, hi, rest)
    return [*cover(lo, a, rest), Piece(u, a, b), *cover(b, hi, rest)]


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
    _apply_locked(conn, ds)


def _apply_locked(conn: Any, ds: dict[Key, Delta]) -> None:
    """Portable path: read each existing row under a row lock, merge, write."""
    from sqlalchemy import and_, bindparam, insert, select, update

    from agentwatch.store.tables import rollups as r

    key_match = and_(*[r.c[c] == bindparam(f"k_{c}") for c in _KEY_COLS])
    lookup = select(r.c.hist).where(key_match).with_for_update()
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for k, d in ds.items():
        keyp = {f"k_{c}": v for c, v in zip(_KEY_COLS, k, strict=True)}
        old = conn.execute(lookup, keyp).scalar()
        vals = {c: getattr(d, c) for c in _SUM_COLS}
        if old is None:
            inserts.append(
                {**dict(zip(_KEY_COLS, k, strict=True)), **vals, "hist": encode_hist(d.hist)}
            )
        else:
            updates.append(
                {
                    **keyp,
                    **{f"d_{c}": v for c, v in vals.items()},
                    "d_hist": merge_hist(old, encode_hist(d.hist)),
                }
            )
    if updates:
        stmt = (
            update(r)
            .where(key_match)
            .values(
                {
                    **{c: r.c[c] + bindparam(f"d_{c}") for c in _SUM_COLS},
                    "hist": bindparam("d_hist"),
                }
            )
        )
        conn.execute(stmt, updates)
    if inserts:
        conn.execute(insert(r), inserts)


def rebuild(conn: Any, lo: int | None = None, hi: int | None = None, chunk: int = 50_000) -> int:
    """Recompute the rollups of [lo, hi) (widened to whole hours) from raw
    events, inside the caller's write transaction. Returns events read.

    Run it while nothing ingests into the range: the CLI command wants the
    server stopped; prune rebuilds only the hour it cut through, in the past.
    """
    from sqlalchemy import delete, select

    from agentwatch.store.tables import INSERT_COLUMNS as cols
    from agentwatch.store.tables import events as e
    from agentwatch.store.tables import rollups as r

    lo_h = None if lo is None else lo // HOUR_US * HOUR_US
    hi_h = None if hi is None else -(-hi // HOUR_US) * HOUR_US
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
