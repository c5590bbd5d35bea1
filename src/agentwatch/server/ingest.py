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
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.store.base import Store
from agentwatch.store.sketch import latency_bin

log = logging.getLogger("agentwatch.ingest")

_EVENTS = TypeAdapter(list[Event])

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


def _loc(loc: tuple[Any, ...]) -> tuple[int | None, str]:
    index = loc[0] if loc and isinstance(loc[0], int) else None
    rest = [str(p) for p in (loc[1:] if index is not None else loc)]
    return index, ".".join(rest) or "(event)"


def parse_batch(body: bytes, max_events: int) -> list[Event]:
    """Parse and validate a request body; raise BatchError with a clear message."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BatchError(422, f"request body is not valid JSON: {e}") from None
    if isinstance(data, dict):
        if set(data) != {"events"}:
            extra = sorted(set(data) - {"events"})
            what = f"unexpected key(s) {extra}" if extra else "missing key 'events'"
            raise BatchError(422, f'body must be {{"events": [...]}}: {what}')
        data = data["events"]
    if not isinstance(data, list):
        raise BatchError(422, "'events' must be a list of event objects")
    if len(data) > max_events:
        raise BatchError(
            413, f"batch has {len(data)} events; the limit is {max_events} per request"
        )
    try:
        return _EVENTS.validate_python(data)
    except ValidationError as e:
        errors = []
        for err in e.errors(include_url=False, include_input=False):
            index, fld = _loc(tuple(err["loc"]))
            errors.append({"index": index, "field": fld, "message": err["msg"]})
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        msg = f"events[{first['index']}].{first['field']}: {first['message']}{more}"
        raise BatchError(422, msg, errors) from None


def to_records(events: list[Event], prices: PriceBook) -> tuple[list[tuple[Any, ...]], list[dict]]:
    """Rows for the store (tuples in INSERT_COLUMNS order) and the API-shaped
    events (what GET /api/events and the live stream return)."""
    rows: list[tuple[Any, ...]] = []
    api: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ev in events:
        ev.fill_defaults()
        assert ev.id is not None and ev.timestamp is not None
        if ev.id in seen:  # the same id twice in one batch is stored once
            continue
        seen.add(ev.id)
        cost = ev.cost_usd
        if cost is None:
            cost = prices.cost(
                ev.model,
                ev.input_tokens,
                ev.output_tokens,
                ev.cache_read_tokens,
                ev.cache_write_tokens,
                ev.provider,
            )
        ts_us = int(ev.timestamp.timestamp() * 1_000_000)
        meta = ev.metadata or {}
        rows.append(
            (
                ev.id,
                ev.task_name,
                ev.agent_name,
                ev.model,
                ev.input_tokens,
                ev.output_tokens,
                ev.cache_read_tokens,
                ev.cache_write_tokens,
                ev.reasoning_tokens,
                ev.latency_ms,
                cost,
                ev.status,
                ev.error_message,
                ts_us,
                orjson.dumps(meta).decode() if meta else None,
                ev.kind,
                ev.trace_id,
                ev.parent_id,
                ev.provider,
                ev.user_id,
                ev.session_id,
                latency_bin(ev.latency_ms),
            )
        )
        api.append(
            {
                "id": ev.id,
                "task_name": ev.task_name,
                "agent_name": ev.agent_name,
                "model": ev.model,
                "input_tokens": ev.input_tokens,
                "output_tokens": ev.output_tokens,
                "cache_read_tokens": ev.cache_read_tokens,
                "cache_write_tokens": ev.cache_write_tokens,
                "reasoning_tokens": ev.reasoning_tokens,
                "latency_ms": ev.latency_ms,
                "cost_usd": cost,
                "status": ev.status,
                "error_message": ev.error_message,
                "timestamp": datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat(),
                "metadata": meta,
                "kind": ev.kind,
                "trace_id": ev.trace_id,
                "parent_id": ev.parent_id,
                "provider": ev.provider,
                "user_id": ev.user_id,
                "session_id": ev.session_id,
            }
        )
    return rows, api


@dataclass
class _Job:
    rows: list[tuple[Any, ...]]
    events: list[dict[str, Any]]
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)


class StorageUnavailable(RuntimeError):
    """The store could not commit; the client should retry (503)."""


class Writer:
    """The single thread that writes to the store (group commit)."""

    def __init__(self, store: Store, on_commit: Any = None) -> None:
        self.store = store
        # Called on the writer thread with the API-shaped events that were new.
        self.on_commit = on_commit
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="agentwatch-writer", daemon=True)
        self.committed_events = 0
        self.commits = 0

    def start(self) -> None:
        self._thread.start()

    async def submit(self, rows: list[tuple[Any, ...]], events: list[dict[str, Any]]) -> int:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._q.put(_Job(rows, events, fut, loop))
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
        try:
            result = self.store.insert_events(rows)
        except Exception as e:  # the store is down or broken: tell every waiter
            log.error("commit of %d events failed: %s", len(rows), e)
            for j in jobs:
                _resolve(j, exc=StorageUnavailable(f"storage unavailable: {e}"))
            return
        self.commits += 1
        self.committed_events += result.inserted
        for j in jobs:
            _resolve(j, value=len(j.rows))
        if self.on_commit is not None:
            new = [e for j in jobs for e in j.events]
            if result.new_ids is not None:
                new = [e for e in new if e["id"] in result.new_ids]
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
