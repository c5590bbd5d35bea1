"""The dashboard's reads in a process of their own (issue 10).

The server is one Python process: while events pour in, the writer, the
request parsing and validation hold the GIL most of the time, and a metrics
query running beside them waits for it at every step. A reader process has
its own interpreter and its own connection to the same database: SQLite in
WAL mode lets any number of processes read while one writes, and every read
sees each transaction committed before it began, so a query answered there
sees every event that has had its 200. The store keeps nothing a query needs
in the writer's memory: the rollups, their watermark and the raw tail past
it are all in the database, and the names cache fills itself from the
`names` table on a miss.

`ReadRouted` is the store the routers see. The queries in `ROUTED` (the
dashboard's summary, charts, breakdowns and event lists) go to a reader;
every other attribute is the store itself. Until a reader is up, and while
one that died is replaced, the queries run in the server as before: readers
make them faster, never make them fail.

A reader is `python -m agentwatch.server.reads`, started and talked to as
server/children.py says: a request is a pickled (method, arguments), the
answer a pickled ("ok", result) or ("err", exception).
"""

from __future__ import annotations

import logging
import pickle
import queue
import sys
import threading
import time
from typing import Any

from agentwatch.server.children import child_socket, end, recv, send, spawn

log = logging.getLogger("agentwatch.server")

ROUTED = frozenset(
    {
        "summary",
        "timeseries",
        "breakdown",
        "breakdown_raw",
        "first_timestamp_us",
        "explore_events",
    }
)

# A reader that dies this soon after it started is not started again: the
# cause (a database it cannot open, a broken install) would only repeat.
MIN_LIFE_S = 10.0
# A query waits this long for a busy reader before the server answers it itself.
READER_WAIT_S = 30.0


class _Reader:
    """One reader process and its end of the socket; one request at a time."""

    def __init__(self, db: str) -> None:
        self.started = time.monotonic()
        self.proc, self.sock = spawn("agentwatch.server.reads", db)

    def wait_ready(self) -> bool:
        msg = recv(self.sock)
        return msg is not None and pickle.loads(msg) == ("ready", None)

    def call(self, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        """("ok", result) or ("err", exception); OSError/EOFError if the reader died."""
        send(self.sock, pickle.dumps((name, args), pickle.HIGHEST_PROTOCOL))
        msg = recv(self.sock)
        if msg is None:
            raise EOFError("the reader closed its socket")
        out: tuple[str, Any] = pickle.loads(msg)
        return out

    def close(self, wait: float = 5.0) -> None:
        end(self.proc, self.sock, wait)


class ReadRouted:
    """The store for the routers: ROUTED reads in reader processes, the rest here."""

    def __init__(self, store: Any, db: str, workers: int) -> None:
        self._store = store
        self._db = db
        self._workers = max(0, workers)
        self._idle: queue.SimpleQueue[_Reader] = queue.SimpleQueue()
        self._all: list[_Reader] = []
        self._lock = threading.Lock()
        self._stopping = False
        self.answered = 0  # queries the readers answered (GET /api/health shows it)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start the readers in the background; queries run here until one answers."""
        for _ in range(self._workers):
            self._spawn()

    def _spawn(self) -> None:
        threading.Thread(target=self._bring_up, name="agentwatch-reader-start", daemon=True).start()

    def _bring_up(self) -> None:
        try:
            r = _Reader(self._db)
        except OSError as e:
            log.warning("could not start a reader process (%s); queries run in the server", e)
            return
        try:
            ok = r.wait_ready()
        except OSError:
            ok = False
        with self._lock:
            if ok and not self._stopping:
                self._all.append(r)
                self._idle.put(r)
                return
        r.close()
        if not ok:
            log.warning("a reader process did not start; queries run in the server")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            readers, self._all = self._all, []
        for r in readers:
            r.close()

    def health(self) -> dict[str, int]:
        """Readers answering now, and how many queries they have answered."""
        with self._lock:
            return {"up": len(self._all), "answered": self.answered}

    # -- calls -------------------------------------------------------------
    def _free_reader(self) -> _Reader | None:
        """An idle reader, waiting for one while any is up (at most
        READER_WAIT_S); None when none is up or all stay busy. Waits in short
        steps: a reader that dies while others wait is never put back, and
        they must notice when it was the last."""
        deadline = time.monotonic() + READER_WAIT_S
        while self._all and time.monotonic() < deadline:
            try:
                return self._idle.get(timeout=0.25)
            except queue.Empty:
                continue
        return None

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        if self._all:
            r = self._free_reader()
            if r is not None:
                try:
                    status, value = r.call(name, args)
                except (OSError, EOFError, pickle.UnpicklingError) as e:
                    self._lost(r, e)
                else:
                    self._idle.put(r)
                    if status == "err":
                        raise value
                    with self._lock:
                        self.answered += 1
                    return value
        return getattr(self._store, name)(*args)

    def _lost(self, r: _Reader, e: BaseException) -> None:
        with self._lock:
            if r in self._all:
                self._all.remove(r)
            again = not self._stopping and time.monotonic() - r.started >= MIN_LIFE_S
        log.warning("a reader process stopped (%s); %s", e, "starting another" if again else "")
        r.close(wait=1.0)
        if again:
            self._spawn()

    def __getattr__(self, name: str) -> Any:
        if name in ROUTED:
            return lambda *args: self._call(name, args)
        return getattr(self._store, name)


def main(argv: list[str]) -> int:
    """The reader: open the store, then answer requests until the socket closes."""
    sock, db = child_socket(argv)
    logging.basicConfig(level=logging.WARNING, format="agentwatch reader: %(message)s")
    from agentwatch.store.sql import SqlStore

    store = SqlStore(db)  # no migrations, no upkeep: the server does both
    send(sock, pickle.dumps(("ready", None)))
    while (msg := recv(sock)) is not None:
        name, args = pickle.loads(msg)
        try:
            if name not in ROUTED:
                raise ValueError(f"not a routed read: {name}")
            out: tuple[str, Any] = ("ok", getattr(store, name)(*args))
        except Exception as e:
            out = ("err", e)
        try:
            data = pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # an exception that does not pickle
            data = pickle.dumps(("err", RuntimeError(f"{out[1]!r} ({e})")))
        send(sock, data)
    store.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BrokenPipeError, ConnectionResetError):  # the server went first
        sys.exit(0)
