"""Latency of the metrics endpoints over HTTP with N events stored over D days.

Each endpoint (summary, timeseries, breakdown) is called for every period,
with and without an agent filter, `--repeat` times; p50/p95 per combination
and the worst p95 are printed as JSON.

    python benchmarks/query_metrics.py [--events 100000] [--days 7] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import Server, db_size, empty_pg, load, machine, make_events, metrics_latency


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument(
        "--db",
        help="store to benchmark: a postgresql:// URL (a fresh, empty database: its events "
        "are deleted first) or a SQLite path; default: a new SQLite file in a temp dir",
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = a.db or str(Path(tmp) / "bench.db")
        if "://" in db:
            empty_pg(db)
        srv = Server(db)
        try:
            t0 = time.perf_counter()
            load(srv.url, make_events(a.events, a.days))
            load_s = time.perf_counter() - t0
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                results = metrics_latency(c, a.repeat)
        finally:
            srv.stop()
        size = db_size(db)
    backend = "postgresql" if "://" in db else "sqlite"
    worst = max(results, key=lambda r: r["p95_ms"])
    print(
        json.dumps(
            {
                "benchmark": "query_metrics",
                "backend": backend,
                "events": a.events,
                "days": a.days,
                "repeat": a.repeat,
                "load_seconds": round(load_s, 2),
                "db_bytes_per_event": round(size / a.events, 1),
                "worst_p95_ms": worst["p95_ms"],
                "worst": "{endpoint} {period} agent_filter={agent_filter}".format(**worst),
                "results": results,
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
