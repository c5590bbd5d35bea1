"""The writer keeps SQLite's WAL within its share of the database while an
import runs: old timestamps land all over the time index, so every commit
rewrites most of its pages, and a second of such commits once made a WAL of
three times the database."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from pathlib import Path

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server import ingest
from agentwatch.server.validate import to_rows
from agentwatch.store import open_store

DAY_S = 86_400


def batches(n: int, size: int) -> list[list[tuple[object, ...]]]:
    rng = random.Random(8)
    now = time.time()
    prices = PriceBook()
    out = []
    for _ in range(n):
        evs = [
            Event(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                task_name=f"task-{rng.randrange(10)}",
                agent_name=f"agent-{rng.randrange(5)}",
                model=rng.choice(["gpt-4o", "o3"]),
                input_tokens=rng.randrange(900),
                output_tokens=rng.randrange(90),
                latency_ms=rng.lognormvariate(6, 0.7),
                timestamp=f"{now - rng.random() * 30 * DAY_S}",
            )
            for _ in range(size)
        ]
        out.append(to_rows(evs, prices))
    return out


def size(p: str) -> int:
    try:
        return os.stat(p).st_size
    except OSError:
        return 0


def test_an_import_keeps_the_wal_within_its_share_of_the_database(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    store = open_store(db)
    work = batches(90, 1000)
    writer = ingest.Writer(store)
    writer.start()
    over: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        # The bound: the share, plus the commit the writer has just made and
        # not yet checkpointed (at most every page of the database once,
        # plus the new ones).
        while not stop.is_set():
            d, w = size(db), size(db + "-wal")
            if w > max(ingest.CHECKPOINT_WAL_MIN, ingest.CHECKPOINT_WAL_SHARE * d) + d + (2 << 20):
                over.append((d, w))
            stop.wait(0.005)

    async def send(part: list[list[tuple[object, ...]]]) -> None:
        for rows in part:
            assert await writer.submit(rows) == len(rows)

    async def main() -> None:
        await asyncio.gather(send(work[0::2]), send(work[1::2]))

    sampler = threading.Thread(target=watch, daemon=True)
    sampler.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        sampler.join()
        writer.stop()
        store.close()
    assert size(db) > 8 << 20  # large enough that the share, not the floor, is the bound
    assert over == []
