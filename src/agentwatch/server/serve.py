"""The server process around the app: `serve(settings)` runs `agentwatch serve`.

It owns what a process needs and an app does not know about: the socket, the
store opened with one-line errors, uvicorn's config and server, the signal
mask held while threads start, the release of the signals once started, and
a graceful shutdown (streams ended at once, queued events committed, store
closed). The CLI parses arguments into `Settings` and calls it.

Only the standard library is imported here at load time: the CLI imports
this module for every command, and the heavy imports happen inside `serve()`
while the signals are held (see there).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

from agentwatch._version import __version__

if TYPE_CHECKING:
    from agentwatch.server.settings import Settings
    from agentwatch.store.sql import SqlStore

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}
# Settings that must be positive (HTTP limits, server/limits.py; alerts).
POSITIVE = (
    "max_header_bytes",
    "header_timeout",
    "body_timeout",
    "max_connections",
    "alert_interval",
    "alert_retry_base",
    "alert_retry_for",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class StartError(Exception):
    """A one-line reason the server (or a command on its store) cannot
    start; the CLI prints it and exits with 1."""


def shown_db(db: str) -> str:
    """The store's location as shown to a user: a URL's password masked."""
    from agentwatch.store.dialect import is_url

    if is_url(db):
        from sqlalchemy.engine import make_url

        return make_url(db).render_as_string(hide_password=True)
    return db


def open_store(db: str, migrate: bool = True, maintenance: bool = True) -> SqlStore:
    """The store at `db`, migrated, or a StartError naming what is wrong."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from agentwatch.store import StoreConfigError
    from agentwatch.store import open_store as open_
    from agentwatch.store.base import error_line

    try:
        shown = shown_db(db)
    except ArgumentError:
        raise StartError("cannot parse the database URL (expected postgresql://...)") from None
    try:
        return open_(db, migrate=migrate, maintenance=maintenance)
    except StoreConfigError as e:
        raise StartError(str(e)) from None
    except SQLAlchemyError as e:
        raise StartError(f"cannot open database {shown}: {error_line(e)}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a StartError (the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            msg = f"port {port} is already in use on {host}; choose another with --port"
            raise StartError(msg) from None
        raise StartError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check(settings: Settings) -> None:
    """Refuse settings the server cannot run with, in one line each."""
    from agentwatch.server.settings import SETTINGS

    for s in SETTINGS:
        if s.name in POSITIVE and not getattr(settings, s.name) > 0:
            raise StartError(f"{s.flag} must be a positive number")
    if settings.log_level.upper() not in LOG_LEVELS:
        raise StartError(f"unknown log level {settings.log_level!r}")
    if settings.auth not in ("on", "off"):
        raise StartError(f"--auth must be 'on' or 'off', not {settings.auth!r}")


def serve(settings: Settings) -> None:
    """Run the server until SIGINT or SIGTERM, then shut down gracefully:
    every in-flight request answered, every queued event committed, the
    store closed. Raises StartError when it cannot start."""
    # Libraries start helper threads at import (numpy's math pool does). Hold
    # SIGINT/SIGTERM while importing so that those threads inherit a mask that
    # blocks both and a signal can only ever land on the main thread (one that
    # landed on a helper thread raised KeyboardInterrupt at a random point of
    # startup). Released again before the database is opened.
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        import uvicorn

        from agentwatch.pricing import PriceBook, PriceFileError
        from agentwatch.server.app import create_app
        from agentwatch.server.limits import HttpLimits, connection_cap, limited_protocol

        check(settings)
        level = settings.log_level.upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            prices = PriceBook.from_file(settings.prices)
        except PriceFileError as e:
            raise StartError(str(e)) from None
    finally:
        # Ctrl+C while the database is opened (a migration can take a while on
        # a big one) stops the command at once; the migration rolls back.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    sock = bind(settings.host, settings.port)
    store = open_store(settings.db, maintenance=False)
    # Ctrl+C or SIGTERM that arrives before uvicorn has installed its own
    # handlers would be lost (asyncio's runner cancels a task uvicorn then
    # shields) and the server would keep running. Hold both signals until the
    # server has started (Server.startup below); one sent early is then
    # delivered to uvicorn and shuts the server down cleanly. Held before the
    # store's and the app's threads start, so that they all inherit the mask
    # and the signals can only land on the main thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    # Hand the GIL over every 1 ms instead of Python's 5 ms: the writer and the
    # query threads release it around every SQLite call and would otherwise
    # wait up to 5 ms to get it back from a busy event loop each time.
    # Measured under full ingest load (benchmarks/scale.py --under-load):
    # dashboard query p95 roughly halved, ingest no slower.
    sys.setswitchinterval(0.001)
    store.start_maintenance()
    app = create_app(settings, store, prices)
    limits = HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=connection_cap(settings.max_connections),
    )
    config = uvicorn.Config(
        app,
        # uvicorn's httptools protocol plus header, timeout and connection limits.
        http=limited_protocol(limits),
        ws="none",  # no route speaks WebSocket; an upgrade is a plain request
        log_level=settings.log_level.lower(),
        access_log=level == "DEBUG",  # an access line per ingest batch costs throughput
        timeout_graceful_shutdown=10,
        server_header=False,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().startup(sockets)
            finally:
                # Started (the app's startup done, the socket served), or
                # failed to: let the held signals reach uvicorn's handlers.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)

        def handle_exit(self, sig: int, frame: Any) -> None:
            # End live streams at once so shutdown does not wait on idle SSE clients.
            bc = app.state.aw.broadcaster
            loop = app.state.aw.loop
            if loop is not None:
                loop.call_soon_threadsafe(bc.close_all)
            super().handle_exit(sig, frame)

    shown_host = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    print(
        f"AgentWatch {__version__}: dashboard at http://{shown_host}:{settings.port}/ "
        f"({store.backend}: {shown_db(settings.db)})",
        flush=True,
    )
    # uvicorn re-raises the signal once it has shut down gracefully; by then
    # every in-flight request is answered and the writer has committed. For
    # SIGTERM the default action would end the process on the spot, skipping
    # the store's close (its final checkpoint), so SIGTERM ends like Ctrl+C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            Server(config).run(sockets=[sock])
    finally:
        store.close()
        sock.close()
    print("AgentWatch stopped; all acknowledged events are stored.", flush=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
