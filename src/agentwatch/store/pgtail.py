"""PostgreSQL only: the live stream across servers (LISTEN/NOTIFY + tailing).

Several servers share one database, and each must stream every event that any
of them commits. Every write transaction ends with `NOTIFY agentwatch_events,
'<highest seq>'` (store/sql.py), which PostgreSQL delivers at commit. Each
server runs one `PgTail` thread that LISTENs on its own connection and, on a
notification, reads the new rows from the table by `seq > last_seen` in `seq`
order. The notification is only a wake-up marker: the rows come from the table,
so the 8,000-byte payload limit never matters and a lost or coalesced
notification loses nothing (a poll every second catches up too).

Tailing by `seq` is exact because writers hold one advisory lock for their
whole transaction (dialect.begin_write): sequence values are taken and
committed in the same order, so once seq N is visible, no row with a smaller
seq can still appear. Nothing is missed, nothing is streamed twice.

When no live-stream client is connected, rows are not read at all; the
cursor just moves to the notified seq.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine

from agentwatch.store.dialect import NOTIFY_CHANNEL
from agentwatch.store.tables import STORED_COLUMNS

log = logging.getLogger("agentwatch.stream")

# Rows read per query when catching up; bounds one read's memory.
_CHUNK = 5000
# Wake at least this often: the stop flag is checked, and a missed
# notification (a reconnect) is caught up within a second.
_POLL_S = 1.0
# Reconnect delay after the database went away.
_RETRY_S = 1.0

_SELECT = (
    f"SELECT seq, {', '.join(STORED_COLUMNS)} FROM events WHERE seq > %s ORDER BY seq LIMIT %s"
)


class PgTail:
    def __init__(
        self,
        engine: Engine,
        on_rows: Callable[[list[tuple[Any, ...]]], None],
        decode: Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]],
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.on_rows = on_rows
        # Stored rows (name references) -> logical rows (names).
        self.decode = decode
        # Whether anyone listens; when not, rows are skipped instead of read.
        self.wanted = wanted or (lambda: True)
        self.last_seen: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentwatch-tail", daemon=True)
        self._started = threading.Event()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        # Serve only once listening, so nothing committed after start is missed.
        self._started.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(_POLL_S * 3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    self._listen(conn)
            except psycopg.Error as e:
                log.warning("live stream: database connection lost (%s); retrying", e)
                self._stop.wait(_RETRY_S)
            except Exception:  # never let the tail thread die silently
                log.exception("live stream tail failed; restarting")
                self._stop.wait(_RETRY_S)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        if self.last_seen is None:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            self.last_seen = int(row[0]) if row else 0
        self._started.set()
        # After a reconnect: whatever committed meanwhile is read now.
        self._catch_up(conn, None)
        while not self._stop.is_set():
            top: int | None = None
            for n in conn.notifies(timeout=_POLL_S, stop_after=1):
                top = int(n.payload)
            # Take every notification already queued too (one read for all).
            for n in conn.notifies(timeout=0):
                top = max(top or 0, int(n.payload))
            self._catch_up(conn, top)

    def _catch_up(self, conn: psycopg.Connection[Any], top: int | None) -> None:
        assert self.last_seen is not None
        if not self.wanted():
            if top is None:  # a poll, or a reconnect: notifications may be missed
                row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
                top = int(row[0]) if row else 0
            self.last_seen = max(self.last_seen, top)
            return
        while True:
            rows = conn.execute(_SELECT, (self.last_seen, _CHUNK)).fetchall()
            if not rows:
                return
            self.last_seen = int(rows[-1][0])
            self.on_rows(self.decode([tuple(r[1:]) for r in rows]))
            if len(rows) < _CHUNK:
                return
