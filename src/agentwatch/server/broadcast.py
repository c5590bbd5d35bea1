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
from typing import Any

import orjson

from agentwatch.store.base import Store
from agentwatch.store.codec import to_api

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


def sse_messages(rows: list[tuple[Any, ...]]) -> list[str]:
    """Stored or logical rows as Server-Sent-Events messages, one per event:
    the one place that writes the stream's line format."""
    return ["data: " + orjson.dumps(to_api(r)).decode() + "\n\n" for r in rows]


class LiveFeed:
    """Committed events to the live-stream clients: the writer's own commits
    (SQLite: one process writes), or on PostgreSQL every server's commits
    read back from the table in commit order (store/pgtail.py), paced.

    `on_commit` runs on the writer thread, `publish_paced` on the tail's;
    both hand messages to the Broadcaster on the event loop. Rows are
    serialised only while someone is listening."""

    def __init__(self, broadcaster: Broadcaster, buffer: int) -> None:
        self.broadcaster = broadcaster
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tailing = False
        # The tail may bring thousands of rows at once (several commits, from
        # every server). Handed over in one piece they would overflow a
        # healthy client's buffer (--sse-buffer) and get it dropped as if it
        # had stalled, so they go in slices, each published and followed by
        # one turn of the event loop for the streams to drain it before the
        # next. Rows wait in the database, not in memory; a client that
        # really stalls is still dropped.
        self.tail_slice = max(1, min(256, buffer // 4))

    def on_commit(self, rows: list[tuple[Any, ...]]) -> None:
        if self.tailing or not self.broadcaster.active or not rows:
            return
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self.broadcaster.publish, sse_messages(rows))

    async def _deliver(self, msgs: list[str]) -> None:
        self.broadcaster.publish(msgs)
        await asyncio.sleep(0.001)

    def publish_paced(self, rows: list[tuple[Any, ...]]) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        for i in range(0, len(rows), self.tail_slice):
            msgs = sse_messages(rows[i : i + self.tail_slice])
            fut = asyncio.run_coroutine_threadsafe(self._deliver(msgs), loop)
            try:
                fut.result(timeout=5)
            except Exception:  # shutting down, or a stuck loop: do not wait forever
                return

    async def start(self, store: Store) -> None:
        """On the event loop, before the writer starts."""
        self.loop = asyncio.get_running_loop()
        self.tailing = await asyncio.to_thread(
            store.start_tail, self.publish_paced, lambda: self.broadcaster.active
        )

    async def stop(self, store: Store) -> None:
        self.broadcaster.close_all()
        await asyncio.to_thread(store.stop_tail)
