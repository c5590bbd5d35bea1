"""The sender: a bounded in-memory queue drained by one daemon thread.

The caller's thread only appends a plain dict to a deque (no locks on the
happy path, no JSON, no I/O). The sender thread gives each event its id and
ISO timestamp, encodes batches to JSON and POSTs them to ``/api/events`` over
one keep-alive ``http.client`` connection (stdlib only: the provider SDKs ship
their own HTTP stacks, and an app must not pay for a third one).

Delivery rules follow the server's contract. Every event ends in exactly one
counter of :func:`Sender.stats`: ``sent`` or one of the ``dropped_*``.

* 200: committed (``sent``).
* 429 and network errors: retried with exponential backoff and full jitter,
  for as long as it takes (the server is busy or away, not refusing the
  data). Ingest is idempotent on the event id, so a retry never counts twice.
* 5xx: retried the same way, but a batch the server keeps failing for
  ``FAILING_BATCH_MAX_AGE_S`` is dropped (``dropped_rejected``, logged once
  with the server's answer), so one batch the server cannot take never holds
  up the queue behind it.
* 413: the batch is split in half and each half sent; a single event that is
  still too large is dropped (``dropped_rejected``).
* 401 and 403: the server refused the API key (``Authorization: Bearer``):
  the batch is dropped (``dropped_auth``), logged once in plain words.
* 400 and 422: the server refuses a batch as a whole, so the batch is bisected
  to isolate the bad events; only those are dropped (``dropped_rejected``,
  logged once per reason). Other 4xx say nothing about the data (a wrong URL,
  a method not allowed): the batch is dropped whole.

At shutdown (and at interpreter exit) the queue is flushed until a deadline; a
request still waiting on the network then is cut, and whatever was not
delivered is counted in ``dropped_shutdown``, so a dead or hung server never
holds up the host's exit. After ``os.fork()`` the child starts an empty queue
and a thread of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import math
import os
import random
import socket
import threading
import time
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import Literal, TypedDict
from urllib.parse import urlsplit

from agentwatch._ids import new_id
from agentwatch.sdk.config import Config
from agentwatch.sdk.events import Event
from agentwatch.sdk.safety import internal_error, log, log_once

# The server's per-request limits (10,000 events, 10 MiB); we stay under both
# so a batch is never refused for its size alone.
MAX_BATCH_EVENTS = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
# Backoff: start small so a blip costs little, cap so a long outage still
# probes the server twice a minute.
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 30.0
# One POST must not wait forever on a hung server; 10 s is far above the
# server's group-commit latency.
REQUEST_TIMEOUT_S = 10.0
# A batch answered 5xx for this long is dropped. Long enough to ride out a
# server restart or a database failover (tens of seconds; about seven
# attempts with the backoff above), short enough that a batch the server can
# never take costs a minute of delay, not the whole queue.
FAILING_BATCH_MAX_AGE_S = 60.0
# After the shutdown deadline, how long the thread gets to notice and count
# what is left before shutdown() counts it itself and returns.
SHUTDOWN_GRACE_S = 0.25


class _Marker:
    """A flush() request travelling through the queue behind the events it covers."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_iso_cache: tuple[int, str] = (-1, "")


def _iso(ts: float | datetime) -> str:
    """Event timestamps travel as epoch floats until here, off the caller's thread."""
    global _iso_cache
    if not isinstance(ts, datetime):
        # Events of one batch mostly share their second: format it once.
        sec = math.floor(ts)  # not int(): before 1970 that would round up
        cached_sec, prefix = _iso_cache
        if sec != cached_sec:
            prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            _iso_cache = (sec, prefix)
        micros = min(999_999, round((ts - sec) * 1_000_000))
        return f"{prefix}.{micros:06d}+00:00"
    if ts.tzinfo is None:  # naive means UTC, per the contract
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat()


class Stats(TypedDict):
    """What ``agentwatch.stats()`` returns (docs/sdk.md explains each counter)."""

    queued: int
    sent: int
    batches: int
    dropped_queue_full: int
    dropped_invalid: int
    dropped_rejected: int
    dropped_auth: int
    dropped_shutdown: int
    retries: int
    last_error: str | None


Counter = Literal[
    "sent",
    "batches",
    "dropped_queue_full",
    "dropped_invalid",
    "dropped_rejected",
    "dropped_auth",
    "dropped_shutdown",
    "retries",
]
# The counters an event ends in (each event in exactly one of them).
_FINAL: frozenset[Counter] = frozenset(
    {"sent", "dropped_rejected", "dropped_auth", "dropped_shutdown"}
)


def empty_stats() -> Stats:
    """The counters of a client that has sent nothing (also: no client at all)."""
    return {
        "queued": 0,
        "sent": 0,
        "batches": 0,
        "dropped_queue_full": 0,
        "dropped_invalid": 0,
        "dropped_rejected": 0,
        "dropped_auth": 0,
        "dropped_shutdown": 0,
        "retries": 0,
        "last_error": None,
    }


def _reason(data: bytes) -> str:
    """The server's own words: the JSON ``detail`` when there is one, else the body."""
    text = data[:2000].decode("utf-8", "replace")
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text[:500]
    if detail is None:
        return text[:500]
    return (detail if isinstance(detail, str) else json.dumps(detail))[:500]


class Sender:
    """Bounded queue + batching daemon thread for one AgentWatch client."""

    def __init__(self, config: Config) -> None:
        self.server_url = config.server_url.rstrip("/")
        parts = urlsplit(self.server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server_url must be http(s)://host[:port], got {config.server_url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "") + "/api/events"
        self._headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if config.api_key is not None:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._has_key = config.api_key is not None
        self.batch_size = max(1, min(int(config.batch_size), MAX_BATCH_EVENTS))
        self.flush_interval = max(0.01, float(config.flush_interval))
        self.max_queue = max(1, int(config.max_queue))
        self.shutdown_timeout = max(0.0, float(config.shutdown_timeout))
        self.failing_batch_max_age_s = FAILING_BATCH_MAX_AGE_S
        self._exporter = config.exporter
        self._init_state()
        self._closed = False
        self._atexit_registered = False
        # Fork safety: the child must not share the parent's lock states, socket
        # or queued events. A weakref keeps the hook from pinning the sender.
        ref = weakref.ref(self)

        def _child() -> None:
            s = ref()
            if s is not None:
                s._after_fork_in_child()

        os.register_at_fork(after_in_child=_child)

    # -- state -------------------------------------------------------------

    def _init_state(self) -> None:
        self._queue: deque[Event | _Marker] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._deadline: float | None = None
        self._pid = os.getpid()
        self._counts = empty_stats()  # "queued" is read from the queue itself
        # Events taken off the queue and not yet in a final counter.
        self._in_flight = 0
        # Set when shutdown() gave up waiting for the thread and counted what
        # it held: from then on the thread counts nothing more.
        self._abandoned = False

    def _after_fork_in_child(self) -> None:
        was_running = self._thread is not None and not self._closed
        self._init_state()  # parent's queued events stay with the parent
        if was_running:
            self._ensure_thread()

    def stats(self) -> Stats:
        """Counters for this process (they reset in a forked child)."""
        with self._stats_lock:
            st = self._counts.copy()
        st["queued"] = sum(1 for e in list(self._queue) if not isinstance(e, _Marker))
        return st

    def count(self, counter: Counter, n: int = 1) -> int:
        """Add `n` to a counter; returns its new value. Final counters settle in-flight events."""
        with self._stats_lock:
            if self._abandoned and counter in _FINAL:
                return self._counts[counter]
            self._counts[counter] += n
            if counter in _FINAL:
                self._in_flight -= n
            return self._counts[counter]

    def _note(self, error: str) -> None:
        self._counts["last_error"] = error

    # -- caller side (hot path) --------------------------------------------

    def enqueue(self, event: Event) -> bool:
        """Queue one event; never blocks. False when it was dropped (queue full or closed)."""
        q = self._queue
        n = len(q)
        if n >= self.max_queue or self._closed:
            first = self.count("dropped_queue_full") == 1
            if first and not self._closed:
                log_once(
                    "queue_full",
                    logging.WARNING,
                    "agentwatch: event queue full (%d); dropping events (see agentwatch.stats())",
                    self.max_queue,
                )
            return False
        q.append(event)
        if self._thread is None:
            self._ensure_thread()
        # is_set() first: Event.set() takes a lock even when already set.
        if n + 1 >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; True if it was all handled within `timeout`."""
        if self._thread is None or self._closed:
            return not self._queue
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush until `timeout` (default shutdown_timeout) passes, then stop; never longer.

        True if everything queued was handled. A request still waiting on the
        network at the deadline is cut; undelivered events are counted in
        ``dropped_shutdown``.
        """
        if self._closed:
            return True
        timeout = self.shutdown_timeout if timeout is None else max(0.0, timeout)
        self._deadline = time.monotonic() + timeout
        self._closed = True
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if self._atexit_registered:
            atexit.unregister(self._atexit)
            self._atexit_registered = False
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            self._cut_request()
            thread.join(SHUTDOWN_GRACE_S)
        if thread.is_alive():
            self._abandon()
            return False
        return True

    def _cut_request(self) -> None:
        """Unblock a request waiting on the network (called from another thread)."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _abandon(self) -> None:
        """The thread is stuck past the deadline (a connect, an exporter): count for it."""
        with self._stats_lock:
            if self._abandoned:
                return
            self._abandoned = True
            left = list(self._queue)
            n = self._in_flight + sum(1 for e in left if not isinstance(e, _Marker))
            self._counts["dropped_shutdown"] += n
        for e in left:
            if isinstance(e, _Marker):
                e.done.set()
        if n:
            log.warning("agentwatch: %d event(s) not sent before shutdown timeout", n)

    def _atexit(self) -> None:
        try:
            self.shutdown()
        except Exception as exc:  # never turn a clean exit into a traceback
            internal_error("sender.atexit", exc)

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            t = threading.Thread(target=self._run, name="agentwatch-sender", daemon=True)
            self._thread = t
            t.start()
            if not self._atexit_registered:
                atexit.register(self._atexit)
                self._atexit_registered = True

    # -- sender thread -----------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            internal_error("sender.loop", exc)
        finally:
            self._close_conn()
            # Whatever is left (deadline passed, or a crash) is counted, and any
            # flush() waiter is released rather than left to its timeout.
            self._drop_remaining()
            with self._stats_lock:
                n = 0 if self._abandoned else self._counts["dropped_shutdown"]
            if n:
                log.warning("agentwatch: %d event(s) not sent before shutdown timeout", n)

    def _loop(self) -> None:
        q = self._queue
        while True:
            if not self._stop.is_set() and len(q) < self.batch_size:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            self._drain_once()
            if self._stop.is_set() and (not q or self._past_deadline()):
                return

    def _take(self) -> tuple[list[Event], _Marker | None]:
        """Pop up to one batch, stopping at a flush marker; its events are now in flight."""
        q = self._queue
        batch: list[Event] = []
        marker = None
        with self._stats_lock:  # so that _abandon() sees each event queued or in flight
            while q and len(batch) < self.batch_size:
                item = q.popleft()
                if isinstance(item, _Marker):
                    marker = item
                    break
                batch.append(item)
            self._in_flight += len(batch)
        return batch, marker

    def _drain_once(self) -> None:
        """Deliver up to one batch, and every flush marker reached on the way."""
        while True:
            batch, marker = self._take()
            if batch:
                self._deliver(batch)
            if marker is None:
                return
            marker.done.set()

    def _drop_remaining(self) -> None:
        q = self._queue
        n = 0
        with self._stats_lock:
            while q:
                item = q.popleft()
                if isinstance(item, _Marker):
                    item.done.set()
                else:
                    n += 1
            self._in_flight += n
        if n:
            self.count("dropped_shutdown", n)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    @staticmethod
    def _finalize(ev: Event) -> Event:
        # Done here, not on the caller's thread: uuid4 and ISO formatting cost
        # microseconds. The id is fixed before the first attempt, so retries of
        # this event are deduplicated by the server.
        if not ev.get("id"):
            ev["id"] = new_id()
        ts = ev.get("timestamp")
        if isinstance(ts, float | int | datetime) and not isinstance(ts, bool):
            ev["timestamp"] = _iso(ts)
        return ev

    def _deliver(self, batch: list[Event]) -> None:
        for ev in batch:
            self._finalize(ev)
        if self._exporter is not None:
            try:
                self._exporter(batch)
            except Exception as exc:
                self.count("dropped_rejected", len(batch))
                internal_error("sender.exporter", exc)
                return
            self.count("sent", len(batch))
            self.count("batches")
            return
        self._send(batch)

    def _encode(self, batch: list[Event]) -> tuple[list[Event], bytes]:
        try:
            body = json.dumps({"events": batch}, default=str, separators=(",", ":"))
            return batch, body.encode()
        except (TypeError, ValueError):
            # One event with unencodable metadata must not sink its batch-mates.
            good: list[Event] = []
            for ev in batch:
                try:
                    json.dumps(ev, default=str)
                    good.append(ev)
                except (TypeError, ValueError) as exc:
                    self._reject(1, f"unencodable event: {exc}")
            body = json.dumps({"events": good}, default=str, separators=(",", ":"))
            return good, body.encode()

    def _send(self, batch: list[Event]) -> None:
        """Deliver one batch; every event in it ends in exactly one final counter."""
        batch, body = self._encode(batch)
        if not batch:
            return
        if len(body) > MAX_BODY_BYTES:
            self._split_or_drop(batch, "batch over 10 MiB")
            return
        attempt = 0
        failing_since: float | None = None
        while True:
            status, reason, retry_after = self._post(body)
            if status == 200:
                self.count("sent", len(batch))
                self.count("batches")
                return
            if status == 413:
                self._split_or_drop(batch, "413 payload too large")
                return
            if status in (401, 403):
                self._refused_key(len(batch), status, reason)
                return
            if status in (400, 422):
                # The server refuses a bad batch as a whole: bisect to keep the good events.
                self._split_or_drop(batch, f"{status} {reason}")
                return
            if status is not None and 400 <= status < 500 and status != 429:
                self._reject(len(batch), f"{status} {reason}")
                return
            # 5xx, 429 or no answer: retry, within the bounds below.
            error = f"{status} {reason}" if status is not None else reason
            self._note(error)
            if status is not None and status >= 500:
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.failing_batch_max_age_s:
                    self._give_up(batch, attempt + 1, now - failing_since, error)
                    return
            log_once(
                "send_retry",
                logging.WARNING,
                "agentwatch: cannot deliver events to %s (%s); retrying with backoff",
                self.server_url,
                error,
            )
            if self._past_deadline():
                self.count("dropped_shutdown", len(batch))
                return
            delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt)))
            if retry_after is not None:
                delay = max(delay, min(retry_after, BACKOFF_CAP_S))
            if self._deadline is not None:
                delay = min(delay, max(0.0, self._deadline - time.monotonic()))
            attempt = min(attempt + 1, 16)
            self.count("retries")
            if self._deadline is None:
                # Wakes early only for shutdown; flush() waits for the retry like anyone.
                self._stop.wait(delay)
            else:
                time.sleep(delay)

    def _give_up(self, batch: list[Event], attempts: int, seconds: float, error: str) -> None:
        self.count("dropped_rejected", len(batch))
        log_once(
            "gave_up:" + error[:40],
            logging.WARNING,
            "agentwatch: dropped %d event(s) the server kept failing for %.0f s "
            "(%d attempts; see agentwatch.stats()); it answered: %s",
            len(batch),
            seconds,
            attempts,
            error,
        )

    def _refused_key(self, n: int, status: int, reason: str) -> None:
        # Every batch would meet the same answer: no bisecting, no retrying.
        self.count("dropped_auth", n)
        self._note(f"{status} {reason}")
        hint = (
            ""
            if self._has_key
            else " (no key is set: pass api_key= to init() or set AGENTWATCH_API_KEY)"
        )
        log_once(
            f"auth:{status}",
            logging.WARNING,
            "agentwatch: the server refused the key: %s%s; events are dropped and "
            "counted in agentwatch.stats()['dropped_auth']",
            reason,
            hint,
        )

    def _split_or_drop(self, batch: list[Event], why: str) -> None:
        if len(batch) <= 1:
            self._reject(len(batch), why)
            return
        mid = len(batch) // 2
        self._send(batch[:mid])
        self._send(batch[mid:])

    def _reject(self, n: int, why: str) -> None:
        self.count("dropped_rejected", n)
        self._note(why)
        log_once(
            "rejected:" + why[:40],
            logging.WARNING,
            "agentwatch: dropped event(s) the server will not accept: %s",
            why,
        )

    # -- HTTP ----------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self._host, self._port, timeout=REQUEST_TIMEOUT_S)
        return self._conn

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _post(self, body: bytes) -> tuple[int | None, str, float | None]:
        """One POST; (status or None for a network error, the server's reason, Retry-After)."""
        for fresh_try in (False, True):
            reused = self._conn is not None
            conn = self._connect()
            timeout = REQUEST_TIMEOUT_S
            if self._deadline is not None:
                timeout = max(0.05, min(timeout, self._deadline - time.monotonic()))
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request("POST", self._path, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._close_conn()
                if reused and not fresh_try and not self._past_deadline():
                    # A keep-alive connection the server closed while idle: one
                    # immediate retry on a fresh connection, no backoff needed.
                    continue
                return None, f"{type(exc).__name__}: {exc}", None
            if resp.getheader("Connection", "").lower() == "close":
                self._close_conn()
            retry_after: float | None = None
            ra = resp.getheader("Retry-After")
            if ra:
                try:
                    retry_after = float(ra)
                except ValueError:
                    retry_after = None
            return resp.status, _reason(data), retry_after
        return None, "unreachable", None  # pragma: no cover
