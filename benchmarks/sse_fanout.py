"""Live-stream fan-out: C SSE clients while events are ingested at R events/s.

Every client must receive every event. Delivery latency (POST sent -> line
received) is measured on a 10 % sample of events, whose ids carry their send
time; all events are counted. One extra client connects and never reads, to
show that a stalled client slows nobody.

    python benchmarks/sse_fanout.py [--clients 200] [--rate 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import Server, machine

MARK = re.compile(rb'"id":"m(\d+)-')


async def client(
    host: str, port: int, stats: dict, ready: asyncio.Event, stop: asyncio.Event, counter: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    await writer.drain()
    counter[0] += 1
    if counter[0] == stats["clients"]:
        ready.set()
    tail = b""
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            continue
        if not chunk:
            break
        now = time.time_ns()
        data = tail + chunk
        cut = data.rfind(b"\n")
        tail, data = data[cut + 1 :], data[: cut + 1]
        stats["received"] += data.count(b"\ndata: ") + data.startswith(b"data: ")
        for m in MARK.finditer(data):
            stats["latencies_ms"].append((now - int(m.group(1))) / 1e6)
    writer.close()


def ingest(url: str, rate: int, seconds: float, sent: list[int]) -> None:
    batch = max(1, rate // 20)  # 20 posts a second
    interval = batch / rate
    base = {
        "task_name": "t",
        "agent_name": "fanout",
        "model": "gpt-4o-mini",
        "input_tokens": 100,
        "output_tokens": 20,
        "latency_ms": 400.0,
    }
    with httpx.Client(timeout=30) as c:
        t_end = time.monotonic() + seconds
        n = 0
        nxt = time.monotonic()
        while time.monotonic() < t_end:
            now = time.time_ns()
            evs = []
            for _ in range(batch):
                prefix = "m" if n % 10 == 0 else "e"
                evs.append({**base, "id": f"{prefix}{now}-{n}"})
                n += 1
            c.post(
                url + "/api/events",
                content=orjson.dumps({"events": evs}),
                headers={"content-type": "application/json"},
            ).raise_for_status()
            sent[0] += len(evs)
            nxt += interval
            time.sleep(max(0.0, nxt - time.monotonic()))


async def run(a: argparse.Namespace, url: str, port: int) -> dict:
    stats = {"clients": a.clients, "received": 0, "latencies_ms": []}
    ready, stop = asyncio.Event(), asyncio.Event()
    counter = [0]
    # the stalled client: connects, asks for the stream, never reads
    _stalled_r, stalled_w = await asyncio.open_connection("127.0.0.1", port)
    stalled_w.write(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    tasks = [
        asyncio.create_task(client("127.0.0.1", port, stats, ready, stop, counter))
        for _ in range(a.clients)
    ]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(1.0)
    sent = [0]
    th = threading.Thread(target=ingest, args=(url, a.rate, a.seconds, sent))
    t0 = time.perf_counter()
    th.start()
    while th.is_alive():
        await asyncio.sleep(0.1)
    send_s = time.perf_counter() - t0
    deadline = time.monotonic() + 15
    while stats["received"] < sent[0] * a.clients and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    stalled_w.close()
    lat = sorted(stats["latencies_ms"])
    return {
        "sent": sent[0],
        "send_seconds": round(send_s, 2),
        "achieved_rate": round(sent[0] / send_s),
        "expected_deliveries": sent[0] * a.clients,
        "delivered": stats["received"],
        "every_client_got_every_event": stats["received"] == sent[0] * a.clients,
        "latency_samples": len(lat),
        "delivery_p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
        "delivery_p95_ms": round(lat[int(len(lat) * 0.95) - 1], 1) if lat else None,
        "delivery_max_ms": round(lat[-1], 1) if lat else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(str(Path(tmp) / "fan.db"), "--sse-buffer", "5000")
        try:
            res = asyncio.run(run(a, srv.url, srv.port))
        finally:
            srv.stop()
    print(
        json.dumps(
            {
                "benchmark": "sse_fanout",
                "clients": a.clients,
                "rate": a.rate,
                "seconds": a.seconds,
                **res,
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
