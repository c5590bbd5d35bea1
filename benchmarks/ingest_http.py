"""HTTP ingest throughput: events acknowledged per second (200 = committed).

Prebuilt JSON batches are POSTed over loopback by several client threads with
keep-alive connections to a fresh server on a temporary SQLite file.

--mode live: timestamps in time order over the last 10 minutes (what agents
send as they run). --mode backfill: random times over the last 7 days (an
import or `demo.py --backfill`), which touches many more rollup rows.

--with-queries: while the ingest runs, one more process loops over the
dashboard's queries (summary, timeseries and breakdown for 24h, the feed's
/api/events?limit=50) back to back; their p50/p95 go under "queries".

    python benchmarks/ingest_http.py [--events 200000] [--batch 500] [--clients 2]
                                     [--mode live|backfill] [--with-queries]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    QueryLoop,
    Server,
    dashboard_queries,
    db_size,
    empty_pg,
    machine,
    make_events,
)


def _client(port: int, bodies: list[bytes], start: Any, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    lat = []
    start.wait()
    for body in bodies:
        t = time.perf_counter()
        conn.request("POST", "/api/events", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status}")
        lat.append(time.perf_counter() - t)
    out.put(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--mode", choices=("live", "backfill"), default="live")
    ap.add_argument(
        "--random-ids",
        action="store_true",
        help="random UUIDv4 ids instead of the time-ordered UUIDv7 the SDK sends",
    )
    ap.add_argument(
        "--with-queries",
        action="store_true",
        help="loop over the dashboard's queries during the ingest and report their latency",
    )
    ap.add_argument(
        "--db",
        help="store to benchmark: a postgresql:// URL (a fresh, empty database: its events "
        "are deleted first) or a SQLite path; default: a new SQLite file in a temp dir",
    )
    a = ap.parse_args()
    if a.mode == "live":
        events = make_events(a.events, days=10 / 1440, ordered=True, random_ids=a.random_ids)
    else:
        events = make_events(a.events, days=7, random_ids=a.random_ids)
    bodies = [
        orjson.dumps({"events": events[i : i + a.batch]}) for i in range(0, len(events), a.batch)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        db = a.db or str(Path(tmp) / "bench.db")
        if "://" in db:
            empty_pg(db)
        srv = Server(db)
        try:
            # Each client is its own process on one keep-alive connection
            # (stdlib http.client: the cheapest client, so the figure is the
            # server's, not the load generator's).
            ctx = mp.get_context("fork")
            out: mp.Queue = ctx.Queue()
            start = ctx.Event()
            procs = [
                ctx.Process(target=_client, args=(srv.port, bodies[k :: a.clients], start, out))
                for k in range(a.clients)
            ]
            for p in procs:
                p.start()
            queries = (
                QueryLoop(ctx, srv.port, dashboard_queries(("24h",)), start)
                if a.with_queries
                else None
            )
            time.sleep(0.5)
            t0 = time.perf_counter()
            start.set()
            lat: list[float] = []
            for _ in procs:
                lat.extend(out.get())
            for p in procs:
                p.join()
            elapsed = time.perf_counter() - t0
            query_stats = queries.finish() if queries else None
            stored = httpx.get(srv.url + "/api/health").json()["events"]
        finally:
            srv.stop()
        size = db_size(db)
    backend = "postgresql" if "://" in db else "sqlite"
    lat.sort()
    print(
        json.dumps(
            {
                "benchmark": "ingest_http",
                "mode": a.mode,
                "ids": "uuid4" if a.random_ids else "uuid7",
                "backend": backend,
                "events": a.events,
                "batch": a.batch,
                "clients": a.clients,
                "seconds": round(elapsed, 3),
                "events_per_second": round(a.events / elapsed),
                "request_p50_ms": round(statistics.median(lat) * 1000, 2),
                "request_p95_ms": round(lat[int(len(lat) * 0.95) - 1] * 1000, 2),
                "stored": stored,
                "db_bytes_per_event": round(size / max(stored, 1), 1),
                # Present with --with-queries: the dashboard's latency during the ingest.
                **({"queries": query_stats} if query_stats else {}),
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
