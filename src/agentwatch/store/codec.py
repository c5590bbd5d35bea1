"""Logical rows <-> stored rows: the names dictionary, id packing, codes.

Ingest builds logical rows (tables.INSERT_COLUMNS: names as strings); the
events table stores references into `names`, kind and status as codes, and on
SQLite canonical UUIDs as 16 bytes. This module is the one place that knows
both shapes, and the one place that turns a stored or logical row into the
API's event dict (`to_api`), for GET /api/events and the live stream alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from agentwatch.schema import EVENT_FIELDS
from agentwatch.store.tables import (
    INSERT_COLUMNS,
    KIND_CODES,
    KIND_NAMES,
    STATUS_CODES,
    STATUS_NAMES,
    STORED_COLUMNS,
    names,
)

Row = tuple[Any, ...]

_L = {n: i for i, n in enumerate(INSERT_COLUMNS)}
_S = {n: i for i, n in enumerate(STORED_COLUMNS)}
L_TS = _L["ts"]
L_ID = _L["id"]
# Logical name columns and the stored reference column each maps to.
NAME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("agent_name", "agent_ref"),
    ("task_name", "task_ref"),
    ("model", "model_ref"),
    ("provider", "provider_ref"),
    ("user_id", "user_ref"),
    ("session_id", "session_ref"),
)
_L_NAMES = tuple(_L[n] for n, _ in NAME_COLUMNS)
_S_REFS = tuple(_S[r] for _, r in NAME_COLUMNS)


# -- ids ---------------------------------------------------------------------
# SQLite stores an id (and a trace or parent id) that is a UUID in canonical
# form (lowercase hex with hyphens: what the SDK and the server make) as its
# 16 raw bytes instead of 36 characters. The mapping is exact both ways; any
# other id is stored as the text it is.
def pack_id(value: str) -> str | bytes:
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


def _pack_opt(value: str | None) -> str | bytes | None:
    return None if value is None else pack_id(value)


def _unpack_opt(value: str | bytes | None) -> str | None:
    return None if value is None else unpack_id(value)


# -- the names dictionary ----------------------------------------------------
class NameCache:
    """name <-> reference, cached per process.

    A reference never changes once committed, so a cache entry can never go
    stale, on any number of servers. New names are inserted inside the
    caller's write transaction; their references only enter the cache after
    that transaction commits (`commit_pending`), so a rolled-back insert can
    never leave a reference in the cache that the database does not hold.
    The cache is bounded (names can be unbounded: session ids); past
    `max_entries` it starts over and refills from the table on demand.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._ref: dict[str, int] = {}
        self._name: dict[int, str] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def _put(self, value: str, ref: int) -> None:
        if len(self._ref) >= self.max_entries:
            self._ref.clear()
            self._name.clear()
        self._ref[value] = ref
        self._name[ref] = value

    def refs(self, conn: Connection, values: Iterable[str]) -> dict[str, int]:
        """The reference of every value, inserting the new ones (writer only)."""
        want = set(values)
        out = {v: r for v in want if (r := self._ref.get(v)) is not None}
        missing = [v for v in want if v not in out]
        if not missing:
            return out
        found = self._lookup(conn, missing)
        new = [v for v in missing if v not in found]
        if new:
            conn.execute(insert(names), [{"value": v} for v in new])
            made = self._lookup(conn, new)
            self._pending.update(made)
            found.update(made)
        with self._lock:
            for v, r in found.items():
                if v not in self._pending:
                    self._put(v, r)
        out.update(found)
        return out

    def commit_pending(self) -> None:
        with self._lock:
            for v, r in self._pending.items():
                self._put(v, r)
            self._pending.clear()

    def discard_pending(self) -> None:
        self._pending.clear()

    @staticmethod
    def _lookup(conn: Connection, values: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(values), 500):
            part = values[i : i + 500]
            q = select(names.c.value, names.c.ref).where(names.c.value.in_(part))
            out.update((v, int(r)) for v, r in conn.execute(q))
        return out

    def find_ref(self, conn: Connection, value: str) -> int | None:
        """The reference of a name, or None if no event ever had it (readers)."""
        r = self._ref.get(value)
        if r is not None:
            return r
        found = self._lookup(conn, [value])
        r = found.get(value)
        if r is not None:
            with self._lock:
                self._put(value, r)
        return r

    def names(self, conn: Connection, refs: Iterable[int | None]) -> dict[int, str]:
        """The name of every reference (readers and the writer)."""
        want = {r for r in refs if r is not None}
        out = {r: n for r in want if (n := self._name.get(r)) is not None}
        missing = [r for r in want if r not in out]
        for i in range(0, len(missing), 500):
            part = missing[i : i + 500]
            q = select(names.c.ref, names.c.value).where(names.c.ref.in_(part))
            got = {int(r): v for r, v in conn.execute(q)}
            with self._lock:
                for r, v in got.items():
                    self._put(v, r)
            out.update(got)
        return out


# -- row conversions ---------------------------------------------------------
# encode() unpacks logical rows by position: this is the order it expects.
assert INSERT_COLUMNS == (
    "id", "task_name", "agent_name", "model", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "latency_ms", "cost_usd",
    "status", "error_message", "ts", "metadata", "kind", "trace_id", "parent_id", "provider",
    "user_id", "session_id", "latency_bin", "flags",
)  # fmt: skip


def encode(conn: Connection, cache: NameCache, rows: Sequence[Row], pack: bool) -> list[Row]:
    """Logical rows -> stored rows (STORED_COLUMNS order), inside the writer's
    transaction (new names are inserted there). A missing provider, user or
    session is reference 0 (no name has it), which costs SQLite no more than
    NULL and keeps every reference an integer."""
    values: set[str] = set()
    add = values.add
    for r in rows:
        for i in _L_NAMES:
            v = r[i]
            if v is not None:
                add(v)
    ref = cache.refs(conn, values)
    ref[None] = 0  # type: ignore[index]
    p = pack_id if pack else _same
    po = _pack_opt if pack else _same
    kinds, statuses = KIND_CODES, STATUS_CODES
    out: list[Row] = []
    append = out.append
    for (
        rid, task, agent, model, tin, tout, cr, cw, rt, lat, cost, status, err, ts, meta,
        kind, trace, parent, prov, user, sess, lbin, flags,
    ) in rows:  # fmt: skip
        append(
            (
                ts, p(rid), kinds[kind], statuses[status], ref[agent], ref[task], ref[model],
                ref[prov], ref[user], ref[sess], tin, tout, cr, cw, rt, lat, cost, lbin, err,
                meta, po(trace), po(parent), flags,
            )
        )  # fmt: skip
    return out


def _same(x: Any) -> Any:
    return x


_SI = {n: _S[n] for n in STORED_COLUMNS}


def decode(conn: Connection, cache: NameCache, stored: Sequence[Row]) -> list[Row]:
    """Stored rows (STORED_COLUMNS order) -> logical rows (INSERT_COLUMNS order)."""
    refs: set[int] = set()
    for s in stored:
        for i in _S_REFS:
            if s[i]:
                refs.add(s[i])
    name = cache.names(conn, refs)
    out = []
    g = _SI
    for s in stored:
        prov, user, sess = s[g["provider_ref"]], s[g["user_ref"]], s[g["session_ref"]]
        # (0 and NULL both mean none: NULL in databases written before 0 was.)
        out.append(
            (
                unpack_id(s[g["id"]]),
                name[s[g["task_ref"]]],
                name[s[g["agent_ref"]]],
                name[s[g["model_ref"]]],
                s[g["input_tokens"]],
                s[g["output_tokens"]],
                s[g["cache_read_tokens"]],
                s[g["cache_write_tokens"]],
                s[g["reasoning_tokens"]],
                s[g["latency_ms"]],
                s[g["cost_usd"]],
                STATUS_NAMES[s[g["status"]]],
                s[g["error_message"]],
                s[g["ts"]],
                s[g["metadata"]],
                KIND_NAMES[s[g["kind"]]],
                _unpack_opt(s[g["trace_id"]]),
                _unpack_opt(s[g["parent_id"]]),
                name[prov] if prov else None,
                name[user] if user else None,
                name[sess] if sess else None,
                s[g["latency_bin"]],
                s[g["flags"]],
            )
        )
    return out


def iso_from_us(us: int) -> str:
    """Epoch microseconds as ISO 8601 UTC (`+00:00`, microseconds when not
    zero). Ingest refuses timestamps outside 2000-01-01 .. now + 1 day, but a
    database written by an older version may hold any 64-bit value: outside
    years 1..9999 the date is written from the calendar arithmetic itself
    (ISO 8601's expanded years) instead of failing the whole page."""
    try:
        return (_EPOCH + timedelta(microseconds=us)).isoformat()  # exact, unlike us / 1e6
    except OverflowError:
        return _iso_any_year(us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_any_year(us: int) -> str:
    days, rest = divmod(us, 86_400_000_000)
    secs, frac = divmod(rest, 1_000_000)
    # Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    y = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    t = f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    return f"{y}-{month:02d}-{day:02d}T{t}{f'.{frac:06d}' if frac else ''}+00:00"


_API_INDEX = [(n, _L["ts" if n == "timestamp" else n]) for n in EVENT_FIELDS]
_L_META = _L["metadata"]


def to_api(row: Row) -> dict[str, Any]:
    """A logical row as GET /api/events and the live stream show it
    (timestamp ISO 8601 with +00:00, metadata an object)."""
    d = {n: row[i] for n, i in _API_INDEX}
    d["timestamp"] = iso_from_us(row[L_TS])
    meta = row[_L_META]
    d["metadata"] = orjson.loads(meta) if meta else {}
    return d
