"""What GET /metrics costs ingest (issue 14): the per-event work of counting
a commit (server/prom.py, Metrics.committed, on the writer thread), and the
time of one scrape, for a few label combinations and for wide traffic whose
task names hold ids (the cardinality guard at work).

    python benchmarks/metrics_overhead.py --events 200000

Rows are real ingest rows (server/validate.py from JSON batches), counted
in commits of 1,000 as the writer does. CPU time (process_time), so the
figure holds on a shared machine. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, make_events

from agentwatch.pricing import PriceBook
from agentwatch.server.prom import Metrics, exposition
from agentwatch.server.validate import batch_rows


def rows_of(events: list[dict]) -> list[tuple]:
    book = PriceBook()
    out: list[tuple] = []
    for i in range(0, len(events), 10_000):
        body = orjson.dumps({"events": events[i : i + 10_000]})
        rows, _ = batch_rows(body, 10_000, book)
        out += rows
    return out


def measure(rows: list[tuple], max_series: int, commit: int = 1000) -> dict[str, float]:
    m = Metrics(max_series)
    t = time.process_time()
    for i in range(0, len(rows), commit):
        m.committed(rows[i : i + commit], 0.002, commit)
    per_event = (time.process_time() - t) / len(rows)
    t = time.perf_counter()
    text = exposition(m)
    scrape = time.perf_counter() - t
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return {
        "us_per_event": round(per_event * 1e6, 2),
        "scrape_ms": round(scrape * 1000, 1),
        "scrape_kb": round(len(text) / 1024, 1),
        "series": series,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    a = ap.parse_args()
    friendly = rows_of(make_events(a.events, 1))
    wide_events = make_events(a.events, 1, seed=3)
    for i, e in enumerate(wide_events):
        e["agent_name"] = f"agent-{i % 60}"
        e["model"] = f"model-{i % 25}"
        if i % 2:  # half are task runs whose names hold ids
            e["kind"] = "task"
            e["task_name"] = f"job-{uuid.uuid4()}"
    wide = rows_of(wide_events)
    out = {
        "benchmark": "metrics_overhead",
        "machine": machine(),
        "events": a.events,
        "friendly": measure(friendly, 2000),
        "wide_guarded": measure(wide, 2000),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
