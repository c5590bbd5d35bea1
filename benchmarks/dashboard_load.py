"""How long the dashboard and its explorer take with a large store.

Starts `agentwatch serve` on a temporary SQLite file, stores --events events
(the demo generator's traffic spread over 30 days) through the public API,
then opens the dashboard in Chromium and measures, in the browser, the time
from navigation start until the four cards, the three charts and the
breakdown table have drawn and the frame holding them has been produced (the
page's `agentwatch:painted` performance mark; `ready` is when the drawing
finished). Also reports the server's own time for each metrics request.

The explorer: every query shape the explorer view issues (each filter, each
sort, a first page and a cursor page, 50 rows) is timed from the client,
--explore-runs times each, with p50 and p95; and the explorer view's own load
in the browser (navigation to its first page drawn). The breakdowns by
provider, user and session, a session view and a page of run totals too.

Goals (issue 15): the page drawn under 1 s at 1M events; an explorer page
(50 rows, any filter) under 100 ms p95 at 1M. Prints one JSON object.

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
from datetime import UTC, datetime
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
PARTS = ("cards", "cost-chart", "latency-chart", "requests-chart", "breakdown", "ready", "painted")
GOAL_MS = 1000.0
EXPLORE_GOAL_MS = 100.0  # p95 of one explorer page
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


BUCKETS = {
    "1h": 1,
    "24h": 20,
    "7d": 120,
    "30d": 720,
}  # as the dashboard asks (js/views/overview.js)


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


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def explore_shapes(c: httpx.Client) -> dict[str, dict[str, Any]]:
    """The explorer's query shapes (docs/dashboard.md lists them), with values
    taken from the stored data so that each filter matches something."""
    now = time.time()
    sample = c.get("/api/events", params={"limit": 1000}).json()["events"]
    first = next((e for e in sample if e.get("user_id")), sample[0])
    run = next((e for e in sample if e["kind"] == "task"), sample[0])
    day = {"since": _iso(now - 2 * 86400), "until": _iso(now - 86400)}
    last24 = {"since": _iso(now - 86400)}
    shapes: dict[str, dict[str, Any]] = {
        "all, by time": {},
        "all, by cost": {"sort": "cost"},
        "all, by latency": {"sort": "latency"},
        "all, by tokens": {"sort": "tokens"},
        "all, oldest first": {"order": "asc"},
        "24h, by time": last24,
        "24h, by cost": {**last24, "sort": "cost"},
        "agent, 24h": {**last24, "agent_name": first["agent_name"]},
        "task, 24h": {**last24, "task_name": first["task_name"]},
        "model, by cost": {"model": first["model"], "sort": "cost"},
        "status=error": {"status": "error"},
        "kind=task": {"kind": "task"},
        "failed runs, yesterday": {**day, "status": "error", "kind": "task"},
        "provider": {"provider": first.get("provider") or "openai"},
        "user": {"user_id": first["user_id"]},
        "session": {"session_id": first.get("session_id") or "none"},
        "error search": {"error_contains": "timeout"},
        "error search + status": {"error_contains": "rate", "status": "error"},
        "trace": {"trace_id": run.get("trace_id") or run["id"]},
        "id": {"id": first["id"]},
    }
    return {name: {"limit": 50, **p} for name, p in shapes.items()}


def _timed(c: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = c.get(path, params=params)
    ms = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return ms, r.json()


def _pcts(times: list[float]) -> dict[str, float]:
    s = sorted(times)
    p95 = s[min(len(s) - 1, max(0, round(0.95 * len(s)) - 1))]
    return {
        "p50_ms": round(statistics.median(s), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(s[-1], 1),
    }


def explore_api(url: str, runs: int) -> dict[str, Any]:
    """Client-side time of each explorer page (first page and the next by cursor)."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        for name, params in explore_shapes(c).items():
            firsts, nexts = [], []
            rows = 0
            for _ in range(runs):
                ms, body = _timed(c, "/api/events", params)
                firsts.append(ms)
                rows = len(body["events"])
                if body["next_cursor"]:
                    ms, _ = _timed(c, "/api/events", {**params, "cursor": body["next_cursor"]})
                    nexts.append(ms)
            out[name] = {
                "rows": rows,
                "first": _pcts(firsts),
                **({"next": _pcts(nexts)} if nexts else {}),
            }
        sample = c.get("/api/events", params={"limit": 200, "kind": "task"}).json()["events"]
        sid = next((e["session_id"] for e in sample if e.get("session_id")), None)
        extra: dict[str, tuple[str, dict[str, Any]]] = {
            "breakdown by provider, 24h": ("/api/metrics/breakdown", {"group_by": "provider"}),
            "breakdown by user, 24h": (
                "/api/metrics/breakdown",
                {"group_by": "user_id", "limit": 100},
            ),
            "breakdown by session, 24h": (
                "/api/metrics/breakdown",
                {"group_by": "session_id", "limit": 100},
            ),
            "breakdown by user, 30d": (
                "/api/metrics/breakdown",
                {"group_by": "user_id", "limit": 100, "period": "30d"},
            ),
            "run totals, 50 runs": ("/api/runs/totals", {"id": [e["id"] for e in sample[:50]]}),
        }
        if sid:
            extra["session view"] = (f"/api/sessions/{sid}", {})
        for name, (path, params) in extra.items():
            out[name] = _pcts([_timed(c, path, params)[0] for _ in range(max(3, runs // 4))])
    worst = max(v["first"]["p95_ms"] for v in out.values() if "first" in v)
    worst_next = max((v["next"]["p95_ms"] for v in out.values() if "next" in v), default=0.0)
    return {
        "pages": out,
        "worst_p95_ms": max(worst, worst_next),
        "meets_goal": max(worst, worst_next) <= EXPLORE_GOAL_MS,
    }


def explore_view(url: str, runs: int) -> dict[str, Any]:
    """Navigation to the explorer's first page drawn, in Chromium."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        for i in range(runs):
            page = context.new_page()
            query = "&status=error" if i % 2 else ""
            page.goto(f"{url}/?view=explore{query}")
            page.wait_for_selector(
                "section[data-view='explore'][data-state='ready']", timeout=60_000
            )
            times.append(page.evaluate("() => performance.now()"))
            page.close()
        browser.close()
    return {
        "runs_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="events to store (100000)")
    ap.add_argument("--runs", type=int, default=5, help="page loads per range (5)")
    ap.add_argument("--ranges", default="24h,7d,30d", help="ranges to load (24h,7d,30d)")
    ap.add_argument("--server", help="measure an already running server instead (no fill)")
    ap.add_argument(
        "--explore-runs",
        type=int,
        default=None,
        help="timings per explorer query (20; 3 with --runs 1, a smoke run)",
    )
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
        explore_runs = args.explore_runs or (20 if args.runs > 1 else 3)
        result["explorer_api"] = explore_api(url, explore_runs)
        result["explorer_view"] = explore_view(url, max(2, args.runs))
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
