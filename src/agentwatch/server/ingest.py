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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from agentwatch.store.base import Store, error_line
from agentwatch.store.sql import BUILD_ROWS
from agentwatch.store.tables import INSERT_COLUMNS

log = logging.getLogger("agentwatch.ingest")

# One transaction takes at most this many rows: large enough to amortise the
# commit, small enough that a transaction never holds the write lock for long.
MAX_ROWS_PER_COMMIT = 20_000

# Rollups are built (store.build_rollups) this often while ingest runs: each
# build rewrites every rollup row the events since the last one touched, so
# its cost follows the distinct rows touched, not the events, and a longer
# wait makes each event cheaper. Measured with 60 agents x 300 tasks x 25
# models drawn independently (every event a pair of its own): builds of
# 6,000 events cost 55 us per event, of 50,000 events 14 us. Two seconds
# keeps the raw tail that queries add up themselves to two seconds of
# traffic. When ingest pauses they are built at once (IDLE_BUILD_S), so a
# quiet server has no tail at all.
BUILD_EVERY_S = 2.0
IDLE_BUILD_S = 0.05
# Under load a build never takes more than about a third of the writer's
# time: the next one waits at least BUILD_SHARE times as long as the last
# took (up to BUILD_EVERY_MAX_S; a longer wait would leave queries a tail of
# more than a few seconds' worth of events to add up raw).
BUILD_SHARE = 3.0
BUILD_EVERY_MAX_S = 5.0
# SQLite's WAL is copied back into the database and truncated by this thread
# between its own transactions, this often: the WAL never holds more than
# about a second of writes (store.checkpoint). And sooner, after a commit
# that leaves the WAL larger than CHECKPOINT_WAL_SHARE of the database (and
# than CHECKPOINT_WAL_MIN): events with old timestamps (an import) land all
# over the time index, so every commit rewrites most of its pages, and a
# second of such commits made a WAL of 55-75 MB beside a 21 MB database at
# 100,000 events (3x the final size on disk). With the share the disk stays
# within about 1.5x the database whatever the traffic; the pages a checkpoint
# copies were written to the WAL anyway, so it at most doubles what is written.
CHECKPOINT_EVERY_S = 1.0
CHECKPOINT_WAL_SHARE = 0.5
CHECKPOINT_WAL_MIN = 4 << 20
# Days made dirty by old-dated events are recounted when quiet, and at least
# this often under continuous load (store.recount_dirty decides which is due).
# While no ingest waits, one day after another, without a pause between them
# (a day is recounted in slices of a few seconds' work at most, so a request
# that arrives meanwhile waits for one day's recount at worst).
RECOUNT_EVERY_S = 5.0

_TS = INSERT_COLUMNS.index("ts")
_ID = INSERT_COLUMNS.index("id")


@dataclass
class _Job:
    rows: list[tuple[Any, ...]]
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)


class StorageUnavailable(RuntimeError):
    """The store could not commit; the client should retry (503)."""


class BatchRefused(ValueError):
    """The store refused this batch's own data (422): a retry cannot help."""


# Errors that mean the data, not the database, is at fault.
_DATA_ERRORS: tuple[type[BaseException], ...] = (DataError, IntegrityError)


class Writer:
    """The single thread that writes to the store: group commit of ingest,
    rollup builds, recounts of dirty days and (SQLite) WAL checkpoints, all
    on one thread so they never contend for the write lock."""

    def __init__(
        self,
        store: Store,
        on_commit: Callable[[list[tuple[Any, ...]]], None] | None = None,
        observe: Callable[[list[tuple[Any, ...]], float, int], None] | None = None,
    ) -> None:
        self.store = store
        # Called on the writer thread after each commit, in commit order:
        # on_commit(new rows) for the live stream; observe(new rows, seconds
        # the insert took, rows offered) for the server's own metrics.
        self.on_commit = on_commit
        self.observe = observe
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="agentwatch-writer", daemon=True)
        self.committed_events = 0
        self.commits = 0
        self.builds = 0
        self._upkeep_errors = 0

    def start(self) -> None:
        self._thread.start()

    async def submit(self, rows: list[tuple[Any, ...]]) -> int:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._q.put(_Job(rows, fut, loop))
        return await fut

    def queue_depth(self) -> int:
        """Batches waiting for the writer (for /metrics)."""
        return self._q.qsize()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything queued, build the rollups, then end the thread."""
        self._q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        now = time.monotonic()
        last_build = last_ckpt = last_recount = now
        every = BUILD_EVERY_S
        to_build = True  # events left past the watermark by an earlier run
        recount_more = False  # the last recount found a day due: others may be
        stopping = False
        while not stopping:
            wait = IDLE_BUILD_S if to_build or recount_more else 1.0
            try:
                job = self._q.get(timeout=wait)
                idle = False
            except queue.Empty:
                job, idle = None, True
            else:
                if job is None:
                    break
            if job is not None:
                stopping = self._commit_group(job)
                to_build = True
            now = time.monotonic()
            if to_build and (idle or now - last_build >= every):
                to_build = self._upkeep(self.store.build_rollups) == BUILD_ROWS
                took = time.monotonic() - now
                every = min(BUILD_EVERY_MAX_S, max(BUILD_EVERY_S, BUILD_SHARE * took))
                last_build = now
            pause = (0.0 if recount_more else 1.0) if idle else RECOUNT_EVERY_S
            if now - last_recount >= pause:
                day = self._upkeep(self.store.recount_dirty)
                recount_more = day is not None and day != -1
                self._upkeep(self.store.close_days)
                last_recount = now
            if now - last_ckpt >= CHECKPOINT_EVERY_S or (job is not None and self._wal_large()):
                self._upkeep(self.store.checkpoint)
                last_ckpt = now
        # Stopping: what was committed gets built before the process goes.
        while self._upkeep(self.store.build_rollups) == BUILD_ROWS:
            pass

    def _wal_large(self) -> bool:
        """The WAL has outgrown its share of the database (SQLite)."""
        db, wal = self.store.disk_bytes()
        return wal > max(CHECKPOINT_WAL_MIN, CHECKPOINT_WAL_SHARE * db)

    def _commit_group(self, job: _Job) -> bool:
        """Commit `job` and every job already queued behind it (up to
        MAX_ROWS_PER_COMMIT rows) in one transaction; True if a stop request
        was among them."""
        jobs = [job]
        n = len(job.rows)
        stopping = False
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
        return stopping

    def _upkeep(self, step: Any) -> Any:
        """Run one upkeep step; a failure (the database briefly away) is
        logged, never fatal: the next turn tries again."""
        try:
            out = step()
        except Exception as e:
            self._upkeep_errors += 1
            if self._upkeep_errors <= 3 or self._upkeep_errors % 100 == 0:
                log.warning(
                    "store upkeep (%s) failed: %s", getattr(step, "__name__", step), error_line(e)
                )
            return None
        if step == self.store.build_rollups:
            self.builds += 1
        return out

    def _commit(self, jobs: list[_Job]) -> None:
        rows = [r for j in jobs for r in j.rows]
        if len(jobs) > 1:  # one event in two requests of one commit: keep the first
            first: dict[tuple[int, str], tuple[Any, ...]] = {}
            for r in rows:
                first.setdefault((r[_TS], r[_ID]), r)
            rows = list(first.values())
        t0 = time.perf_counter()
        try:
            result = self.store.insert_events(rows)
        except Exception as e:
            if len(jobs) > 1:
                # One request's data may be at fault: commit each alone, so
                # that only the one at fault fails and the others go through.
                for j in jobs:
                    self._commit([j])
                return
            msg = error_line(e)
            exc: Exception
            if isinstance(e, _DATA_ERRORS):
                log.warning("batch of %d events refused by the store: %s", len(rows), msg)
                exc = BatchRefused(f"the store refused this batch: {msg}")
            else:  # the store is down or broken
                log.error("commit of %d events failed: %s", len(rows), msg)
                exc = StorageUnavailable(f"storage unavailable: {msg}")
            for j in jobs:
                _resolve(j, exc=exc)
            return
        self.commits += 1
        self.committed_events += result.inserted
        for j in jobs:
            _resolve(j, value=len(j.rows))
        if self.on_commit is None and self.observe is None:
            return
        took = time.perf_counter() - t0
        new = rows
        keys = result.new_keys
        if keys is not None:
            new = [r for r in rows if (r[_TS], r[_ID]) in keys]
        if self.observe is not None:
            try:
                self.observe(new, took, len(rows))
            except Exception:  # counting must never take ingest down
                log.exception("counting a commit failed")
        if self.on_commit is not None:
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
