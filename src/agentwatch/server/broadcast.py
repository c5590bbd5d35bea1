"""Fan-out of ingested events to live-stream (SSE) clients.

Each client has its own bounded queue. Publishing never waits: a client whose
queue is full is dropped (its stream ends and the browser reconnects), so a
slow or stalled client can never slow ingest or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("agentwatch.stream")

_CLOSE = None  # sentinel telling a subscriber's stream to end


class Subscriber:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=maxsize + 1)
        self.maxsize = maxsize
        self.dropped = False

    def offer(self, message: str) -> bool:
        if self.dropped:
            return False
        if self.queue.qsize() >= self.maxsize:
            # Keep one slot for the close marker so the stream ends promptly.
            self.dropped = True
            self.queue.put_nowait(_CLOSE)
            return False
        self.queue.put_nowait(message)
        return True

    def close(self) -> None:
        if not self.dropped:
            self.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(_CLOSE)


class Broadcaster:
    """Lives on the server's event loop; publish() must be called from it."""

    def __init__(self, buffer: int = 1000) -> None:
        self.buffer = buffer
        self.subscribers: set[Subscriber] = set()
        self.dropped_total = 0

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.buffer)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    @property
    def active(self) -> bool:
        return bool(self.subscribers)

    def publish(self, messages: list[str]) -> None:
        for sub in list(self.subscribers):
            for m in messages:
                if not sub.offer(m):
                    self.dropped_total += 1
                    log.info("live-stream client fell %d messages behind; dropped", sub.maxsize)
                    self.subscribers.discard(sub)
                    break

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            sub.close()
        self.subscribers.clear()
