"""Ingest: commit validated rows through one writer thread (group commit).

Request handlers hand their rows (built by server/validate.py) to the writer
and wait; the writer takes everything queued at that moment, inserts it in
ONE transaction and commits once, then wakes every waiting handler. Under
load many requests share a commit, so acknowledging after commit stays cheap.
A handler answers 200 only after its rows are committed.
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

from agentwatch.schema import EVENT_FIELDS
from agentwatch.store.base import Store, error_line
from agentwatch.store.tables import INSERT_COLUMNS

log = logging.getLogger("agentwatch.ingest")

# One transaction takes at most this many rows: large enough to amortise the
# commit, small enough that a transaction never holds the write lock for long.
MAX_ROWS_PER_COMMIT = 20_000

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
            msg = error_line(e)
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
