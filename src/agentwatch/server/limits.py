"""HTTP limits at the connection: header size, read timeouts, a connection cap.

uvicorn's httptools protocol has none of these: it buffers a request header of
any size (a 64 MB header was read whole), it waits for ever for a header or a
body that never comes (a POST declaring 10 MB and sending 10 bytes was held
open indefinitely), and it accepts connections until the process runs out of
file descriptors (19,990 half-open connections locked every other client
out). `limited_protocol(limits)` returns uvicorn's protocol with those limits
added; `agentwatch serve` passes it as uvicorn's `http` class.

A connection is, at any time, in one of three phases:

- WAIT: waiting for a complete request header (a new connection, or an idle
  keep-alive one). The header must be complete within `header_timeout` of the
  phase starting and at most `max_header_bytes` long, or the connection gets
  408 or 431 and is closed. A connection that sent nothing is closed silently.
- BODY: the header is in and the body is arriving. If no byte of it arrives
  for `body_timeout` (while the server is ready to read), it gets 408 and is
  closed, and the request handler sees a disconnect.
- APP: the request is complete and the application is answering (a live
  stream stays here): no timeout applies.

At most `max_connections` are open at once. One over the cap closes the
connection that has been waiting longest in WAIT (a half-open attacker or an
idle keep-alive client, which simply reconnects); if every connection is busy
answering, the newcomer gets 503 instead. So connections that never finish a
request cannot lock working clients out, and the process never runs out of
file descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("agentwatch.server")

_WAIT, _BODY, _APP = "wait", "body", "app"
# How often a burst of refusals is summed up in the log.
LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


class _Counts:
    """Refusals by kind, logged as one line per kind and minute at most."""

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def note(self, kind: str) -> None:
        self.pending[kind] = self.pending.get(kind, 0) + 1
        now = time.monotonic()
        if now - self.last.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            n = self.pending.pop(kind)
            self.last[kind] = now
            log.warning("closed %d connection(s): %s", n, kind)


def _response(status: int, reason: str, detail: str) -> bytes:
    body = ('{"detail":"' + detail + '"}').encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `HttpLimits`."""

    limits: ClassVar[HttpLimits]
    # Connections in WAIT, oldest first (a dict keeps insertion order): the
    # candidates for closing when the cap is reached. One per server.
    waiting: ClassVar[dict[LimitedHttpProtocol, None]]
    counts: ClassVar[_Counts]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _WAIT
        self._since = 0.0  # loop time the current WAIT began
        self._last_read = 0.0  # loop time of the last bytes received
        self._head_bytes = 0  # bytes received towards the current header
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._refused = False

    # -- phases -------------------------------------------------------------

    def _enter_wait(self) -> None:
        self._phase = _WAIT
        self._since = self.loop.time()
        self.waiting.pop(self, None)
        self.waiting[self] = None  # newest last
        self._arm(self._since + self.limits.header_timeout)

    def _leave_wait(self, phase: str) -> None:
        self._phase = phase
        self._head_bytes = 0
        self.waiting.pop(self, None)
        if phase == _BODY:
            self._arm(self._last_read + self.limits.body_timeout)

    def _arm(self, when: float) -> None:
        """Make sure the deadline check runs no later than `when`."""
        if self._timer is not None:
            if self._timer_at <= when:
                return  # an earlier check re-arms for the rest
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._phase == _WAIT:
            deadline = self._since + self.limits.header_timeout
            if now < deadline:
                self._arm(deadline)
            elif self._head_bytes:
                self._refuse(408, "Request Timeout", "request header not received in time")
            else:  # an idle or silent connection: nothing to answer
                self.counts.note("no request within the header timeout")
                self._close()
        elif self._phase == _BODY:
            if self.flow.read_paused:
                # The application is not reading yet: not the client's delay.
                self._arm(now + self.limits.body_timeout)
                return
            deadline = self._last_read + self.limits.body_timeout
            if now < deadline:
                self._arm(deadline)
            elif self.cycle is not None and self.cycle.response_started:
                self.counts.note("request body stalled")
                self._close()
            else:
                self._refuse(408, "Request Timeout", "request body not received in time")

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self.counts.note(detail)
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_response(status, reason, detail))
        self._close()

    def _close(self) -> None:
        self.waiting.pop(self, None)
        # No longer counted towards the cap, though the socket closes a little later.
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._last_read = self.loop.time()
        self._enter_wait()
        if len(self.connections) > self.limits.max_connections:
            oldest = next((c for c in self.waiting if c is not self), None)
            if oldest is not None:
                self.counts.note("connection limit reached: closed the longest waiting")
                oldest._close()
            else:
                self._refuse(503, "Service Unavailable", "too many connections")

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, with the header bytes counted and a
        # refused request stopped where it stands.
        if self._refused:
            return
        self._last_read = self.loop.time()
        # Outside a body, every byte belongs to a request header (the next
        # one, when it comes while this one is being answered).
        if self._phase != _BODY:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade is served (`agentwatch serve` runs uvicorn with
            # ws="none"); uvicorn's handling only logs a warning.
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refused:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if (
            self._phase != _BODY
            and self._head_bytes > self.limits.max_header_bytes
            and not self._refused
        ):
            cycle = self.cycle
            if cycle is not None and cycle.response_started and not cycle.response_complete:
                # Mid-answer (a live stream): no room for a 431 in it.
                self.counts.note("request header too large")
                self._close()
            else:
                self._refuse(431, "Request Header Fields Too Large", "request header too large")

    # -- parser callbacks -----------------------------------------------------

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.limits.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large", "request header too large")
            raise _Refused
        self._leave_wait(_BODY)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._phase == _BODY:
            # The whole request is in. If it was answered already (a 413 sent
            # before the body was read), the connection waits for the next one.
            done = self.cycle is not None and self.cycle.response_complete
            if done and not self.pipeline:
                self._enter_wait()
            else:
                self._leave_wait(_APP)

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # The next request starts from a fresh WAIT, unless it was already
        # pipelined behind this one or this request's body is still arriving.
        if not pipelined and self._phase == _APP and not self.transport.is_closing():
            self._enter_wait()


# Open files the process needs besides its client sockets: the SQLite files
# of each pooled connection, PostgreSQL's pool, static files being sent, logs.
FD_RESERVE = 128


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer if the process may not open that many files.

    Raises the soft limit on open files towards the hard one when it is too
    low (as Go's runtime does at start), so that the default cap holds on
    systems whose soft limit is 1024."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    unlimited = resource.RLIM_INFINITY
    if soft != unlimited and soft < need:
        target = need if hard == unlimited else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != unlimited and soft - FD_RESERVE < wanted:
        cap = max(1, soft - FD_RESERVE)
        log.warning(
            "open-file limit is %d: serving at most %d connections (not %d)", soft, cap, wanted
        )
        return cap
    return wanted


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """A protocol class for one server, with its limits and its own registry."""
    return type(
        "AgentWatchHttpProtocol",
        (LimitedHttpProtocol,),
        {"limits": limits, "waiting": {}, "counts": _Counts()},
    )
