"""Fan-out of ingested events to live-stream (SSE) clients.

Each publish (one commit's new events) becomes one text chunk, built once and
shared by every client. Each client has its own queue of chunks. Publishing
never waits: a client that has fallen behind is dropped (its stream ends and
the browser reconnects), so a slow or stalled client can never slow ingest or
the other clients.

"Fallen behind" means: it still holds an earlier, unsent chunk AND more than
`buffer` messages are waiting for it. A client that has sent everything
always takes the next chunk, however large, so a burst (a big batch, a group
commit of many requests) never drops a healthy client; a stalled one is
dropped at its second pending publish past the limit, which bounds its memory
to one commit plus `buffer` messages.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("agentwatch.stream")

# A queue item: (text chunk, number of events in it), or None for "end".
Item = tuple[str, int] | None


class Subscriber:
    def __init__(self, buffer: int) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.buffer = buffer
        self.pending = 0  # events queued and not yet handed to the socket
        self.dropped = False

    def offer(self, chunk: str, n: int) -> bool:
        if self.dropped:
            return False
        if self.pending and self.pending + n > self.buffer:
            self.close()
            return False
        self.pending += n
        self.queue.put_nowait((chunk, n))
        return True

    def taken(self, n: int) -> None:
        self.pending -= n

    def close(self) -> None:
        if not self.dropped:
            self.dropped = True
            self.queue.put_nowait(None)


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
        if not messages:
            return
        chunk = "".join(messages)
        n = len(messages)
        for sub in list(self.subscribers):
            if not sub.offer(chunk, n):
                self.dropped_total += 1
                log.info("live-stream client fell more than %d events behind; dropped", sub.buffer)
                self.subscribers.discard(sub)

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            sub.close()
        self.subscribers.clear()
