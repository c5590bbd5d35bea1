"""Ingest: validate a batch, price it, and commit it through one writer thread.

Group commit: request handlers hand their rows to the writer and wait; the
writer takes everything queued at that moment, inserts it in ONE transaction
and commits once, then wakes every waiting handler. Under load many requests
share a commit, so acknowledging after commit stays cheap. A handler answers
200 only after its rows are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from agentwatch._ids import new_id
from agentwatch.pricing import PriceBook, Rates
from agentwatch.schema import EVENT_FIELDS, Event, EventBatch
from agentwatch.store.base import Store
from agentwatch.store.sketch import latency_bin
from agentwatch.store.tables import INSERT_COLUMNS

log = logging.getLogger("agentwatch.ingest")

_BATCH = TypeAdapter(EventBatch)

# One transaction takes at most this many rows: large enough to amortise the
# commit, small enough that a transaction never holds the write lock for long.
MAX_ROWS_PER_COMMIT = 20_000


class BatchError(ValueError):
    """A batch was rejected; `errors` name the index and the field."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def _reject(errors: list[dict[str, Any]]) -> BatchError:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"events[{first['index']}]." if first["index"] is not None else ""
    return BatchError(422, f"{where}{first['field']}: {first['message']}{more}", errors)


def parse_batch(body: bytes, max_events: int) -> list[Event]:
    """Parse and validate a request body; raise BatchError with a clear message.

    The body is validated straight from JSON bytes by pydantic-core, which
    keeps validation of a 500-event batch to a few milliseconds.
    """
    try:
        batch = _BATCH.validate_json(body)
    except ValidationError as e:
        errors = []
        for err in e.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            if err["type"] == "json_invalid":
                raise BatchError(422, f"request body is not valid JSON: {err['msg']}") from None
            if loc[:1] == ("events",) and len(loc) >= 2 and isinstance(loc[1], int):
                index, fld = loc[1], ".".join(str(p) for p in loc[2:]) or "(event)"
            else:
                index, fld = None, ".".join(str(p) for p in loc) or "(body)"
                if fld == "(body)" or err["type"] == "model_type":
                    err["msg"] = 'body must be a JSON object {"events": [...]}'
            errors.append({"index": index, "field": fld, "message": err["msg"]})
        raise _reject(errors) from None
    if len(batch.events) > max_events:
        raise BatchError(
            413, f"batch has {len(batch.events)} events; the limit is {max_events} per request"
        )
    missing = [
        {"index": i, "field": "model", "message": "model is required for kind 'llm'"}
        for i, ev in enumerate(batch.events)
        if ev.kind == "llm" and not ev.model
    ]
    if missing:
        raise _reject(missing)
    return batch.events


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_rows(events: list[Event], prices: PriceBook) -> list[tuple[Any, ...]]:
    """Store rows (tuples in INSERT_COLUMNS order): defaults filled, priced, binned.

    This is the hot path of ingest (every event, on the event loop), so it
    touches each event once, looks rates up once per model per batch, and does
    no formatting that only a reader would need.
    """
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    seen: set[str] = set()
    now = datetime.now(UTC)
    rates_of = prices.rates
    rates: dict[tuple[str, str | None], Rates] = {}
    dumps = orjson.dumps
    for ev in events:
        eid = ev.id or new_id()
        if eid in seen:  # the same id twice in one batch is stored once
            continue
        seen.add(eid)
        ts = ev.timestamp or now
        if ts.tzinfo is None:  # naive means UTC
            ts = ts.replace(tzinfo=UTC)
        meta = ev.metadata
        extra = ev.__pydantic_extra__
        if extra:  # unknown top-level keys are kept, under metadata
            meta = {**extra, **(meta or {})}
        tin = ev.input_tokens
        tout = ev.output_tokens
        cr = ev.cache_read_tokens
        cw = ev.cache_write_tokens
        cost = ev.cost_usd
        if cost is None:
            key = (ev.model, ev.provider)
            r = rates.get(key)
            if r is None:
                r = rates[key] = rates_of(ev.model, ev.provider)
            cost = r.cost(tin, tout, cr, cw)
        lat = ev.latency_ms
        append(
            (
                eid,
                ev.task_name,
                ev.agent_name,
                ev.model,
                tin,
                tout,
                cr,
                cw,
                ev.reasoning_tokens,
                lat,
                cost,
                ev.status,
                ev.error_message,
                (ts - _EPOCH) // _MICROSECOND,  # exact, unlike float seconds
                dumps(meta).decode() if meta else None,
                ev.kind,
                ev.trace_id,
                ev.parent_id,
                ev.provider,
                ev.user_id,
                ev.session_id,
                latency_bin(lat),
            )
        )
    return rows


_API_INDEX = [
    (name, INSERT_COLUMNS.index("ts" if name == "timestamp" else name)) for name in EVENT_FIELDS
]
_TS = INSERT_COLUMNS.index("ts")
_META = INSERT_COLUMNS.index("metadata")


def row_to_api(row: tuple[Any, ...]) -> dict[str, Any]:
    """An ingested row as GET /api/events and the live stream show it."""
    d = {name: row[i] for name, i in _API_INDEX}
    d["timestamp"] = datetime.fromtimestamp(row[_TS] / 1_000_000, UTC).isoformat()
    d["metadata"] = orjson.loads(row[_META]) if row[_META] else {}
    return d


@dataclass
class _Job:
    rows: list[tuple[Any, ...]]
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)


class StorageUnavailable(RuntimeError):
    """The store could not commit; the client should retry (503)."""


class Writer:
    """The single thread that writes to the store (group commit)."""

    def __init__(self, store: Store, on_commit: Any = None) -> None:
        self.store = store
        # Called on the writer thread with the rows that were new, in commit order.
        self.on_commit = on_commit
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="agentwatch-writer", daemon=True)
        self.committed_events = 0
        self.commits = 0

    def start(self) -> None:
        self._thread.start()

    async def submit(self, rows: list[tuple[Any, ...]]) -> int:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._q.put(_Job(rows, fut, loop))
        return await fut

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything queued, then end the thread."""
        self._q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            job = self._q.get()
            if job is None:
                break
            jobs = [job]
            n = len(job.rows)
            while n < MAX_ROWS_PER_COMMIT:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
                n += len(nxt.rows)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        rows = [r for j in jobs for r in j.rows]
        if len(jobs) > 1:  # the same id in two requests of one commit: keep the first
            first: dict[str, tuple[Any, ...]] = {}
            for r in rows:
                first.setdefault(r[0], r)
            rows = list(first.values())
        try:
            result = self.store.insert_events(rows)
        except Exception as e:  # the store is down or broken: tell every waiter
            # The driver's own first line: SQLAlchemy's text would add the
            # statement and, on PostgreSQL, the whole batch as parameters.
            orig = getattr(e, "orig", None) or e
            msg = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
            log.error("commit of %d events failed: %s", len(rows), msg)
            for j in jobs:
                _resolve(j, exc=StorageUnavailable(f"storage unavailable: {msg}"))
            return
        self.commits += 1
        self.committed_events += result.inserted
        for j in jobs:
            _resolve(j, value=len(j.rows))
        if self.on_commit is not None:
            new = rows
            if result.new_ids is not None:
                new = [r for r in rows if r[0] in result.new_ids]
            try:
                self.on_commit(new)
            except Exception:  # the live stream must never take ingest down
                log.exception("live-stream publish failed")


def _resolve(job: _Job, value: int = 0, exc: BaseException | None = None) -> None:
    def done() -> None:
        if job.future.done():  # the client went away meanwhile
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(value)

    # RuntimeError: the loop closed during shutdown; nobody is waiting.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(done)
