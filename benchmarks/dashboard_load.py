"""How long the dashboard takes to draw with a large store.

Starts `agentwatch serve` on a temporary SQLite file, stores --events events
(the demo generator's traffic spread over 30 days) through the public API,
then opens the dashboard in Chromium and measures, in the browser, the time
from navigation start until the four cards, both charts and the breakdown
table have drawn and the frame holding them has been produced (the page's
`agentwatch:painted` performance mark; `ready` is when the drawing finished).
Also reports the server's own time for each metrics request, for context.

The goal is 1 s at 100,000 events. Prints one JSON object.

    python benchmarks/dashboard_load.py                 # 100,000 events
    python benchmarks/dashboard_load.py --events 5000   # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from agentwatch import demo

sys.path.insert(0, str(Path(__file__).parent))
from _common import Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PARTS = ("cards", "cost-chart", "latency-chart", "breakdown", "ready", "painted")
GOAL_MS = 1000.0
# Events per POST while loading the store.
BATCH = 2_000


def fill(url: str, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    events = demo.backfill_events(seed=42, days=30, target=n)[:n]
    t1 = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(events), BATCH):
            r = client.post(url + "/api/events", json={"events": events[i : i + BATCH]})
            r.raise_for_status()
    t2 = time.perf_counter()
    return {
        "generated": len(events),
        "generate_s": round(t1 - t0, 2),
        "ingest_s": round(t2 - t1, 2),
        "ingest_events_per_s": round(len(events) / (t2 - t1)),
    }


def measure(url: str, ranges: list[str], runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        for rng in ranges:
            samples: list[dict[str, float]] = []
            for _ in range(runs):
                page = context.new_page()
                page.goto(f"{url}/?range={rng}")
                page.wait_for_selector('html[data-painted="true"]', timeout=60_000)
                marks = page.evaluate(
                    "() => Object.fromEntries(performance.getEntriesByType('mark')"
                    ".filter(m => m.name.startsWith('agentwatch:'))"
                    ".map(m => [m.name.slice(11), m.startTime]))"
                )
                samples.append({p: round(marks[p], 1) for p in PARTS})
                page.close()
            # "painted": the frame with cards, charts and breakdown drawn was produced.
            painted = [s["painted"] for s in samples]
            out[rng] = {
                "first_load_ms": painted[0],
                "median_ms": round(statistics.median(painted), 1),
                "max_ms": max(painted),
                "min_ms": min(painted),
                "runs_ms": painted,
                "median_parts_ms": {
                    p: round(statistics.median(s[p] for s in samples), 1) for p in PARTS
                },
            }
        browser.close()
    return out


BUCKETS = {"1h": 1, "24h": 20, "7d": 120, "30d": 720}  # as the dashboard asks (js/main.js)


def api_times(url: str, ranges: list[str]) -> dict[str, dict[str, float]]:
    """Median server time per request the dashboard makes, one at a time."""
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        for rng in ranges:
            paths = {
                "summary": f"/api/metrics/summary?period={rng}",
                "timeseries": f"/api/metrics/timeseries?period={rng}&bucket={BUCKETS[rng]}",
                "breakdown": f"/api/metrics/breakdown?period={rng}&group_by=agent_name",
                "events": "/api/events?limit=50",
            }
            out[rng] = {}
            for name, path in paths.items():
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    c.get(path).raise_for_status()
                    times.append((time.perf_counter() - t0) * 1000)
                out[rng][name] = round(statistics.median(times), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="events to store (100000)")
    ap.add_argument("--runs", type=int, default=5, help="page loads per range (5)")
    ap.add_argument("--ranges", default="24h,7d,30d", help="ranges to load (24h,7d,30d)")
    ap.add_argument("--server", help="measure an already running server instead (no fill)")
    args = ap.parse_args(argv)

    result: dict[str, Any] = {"benchmark": "dashboard_load", "goal_ms": GOAL_MS}
    srv = None
    tmp = tempfile.TemporaryDirectory(prefix="agentwatch-bench-")
    try:
        if args.server:
            url = args.server.rstrip("/")
        else:
            srv = Server(str(Path(tmp.name) / "bench.db"))
            url = srv.url
            result["fill"] = fill(url, args.events)
        health = httpx.get(url + "/api/health", timeout=10).json()
        result["events_stored"] = health.get("events")
        result["backend"] = health.get("backend")
        result["ranges"] = measure(url, args.ranges.split(","), args.runs)
        result["api_ms"] = api_times(url, args.ranges.split(","))
        worst = max(r["median_ms"] for r in result["ranges"].values())
        result["worst_median_ms"] = worst
        result["meets_goal"] = worst <= GOAL_MS
        result["machine"] = {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}
    finally:
        if srv is not None:
            srv.stop()
        tmp.cleanup()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
