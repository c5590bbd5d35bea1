"""Scale: storage, start time, memory and metrics latency/accuracy at N events.

Events (5 agents, 10 tasks, 6 models, 30 days, realistic shapes and a daily
rhythm) are written straight into a fresh store through the same code the
ingest path uses (validation skipped), so a million rows load in about a
minute. Then a real server is started on that database and measured:

- bytes on disk per event (database file, WAL checkpointed, every index and
  rollup included);
- time from process start to the first answered request;
- p50/p95 of summary, timeseries and breakdown for every period, with and
  without an agent filter;
- p50/p95 accuracy against exact nearest-rank values computed from raw rows;
- server RSS after the queries.

    python benchmarks/scale.py [--events 1000000] [--days 30] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import db_size, free_port, machine

from agentwatch.pricing import PriceBook
from agentwatch.store import open_store
from agentwatch.store.sketch import latency_bin

AGENTS = {
    "research-bot": (["search", "summarize"], ["gpt-4o", "claude-sonnet-4-20250514"]),
    "support-agent": (["triage", "reply"], ["gpt-4o-mini", "claude-haiku-3-5-20241022"]),
    "code-reviewer": (["review", "explain"], ["claude-opus-4-20250514", "gpt-4o"]),
    "data-pipeline": (["extract", "classify"], ["gpt-3.5-turbo", "gpt-4o-mini"]),
    "sales-assistant": (["draft-email", "qualify-lead"], ["gpt-4o-mini", "o3-mini"]),
}
PERIODS = ("1h", "24h", "7d", "30d", "all")


def generate(store, n: int, days: float, seed: int = 1) -> float:  # type: ignore[no-untyped-def]
    """Write n events in time order in chunks; returns seconds taken."""
    rng = random.Random(seed)
    prices = PriceBook()
    now_us = int(time.time() * 1e6)
    span = int(days * 86_400e6)
    start = now_us - span
    step = span / n
    names = list(AGENTS)
    t0 = time.perf_counter()
    chunk: list[tuple] = []
    for i in range(n):
        ts = int(start + i * step + rng.random() * step)
        agent = rng.choice(names)
        tasks, models = AGENTS[agent]
        model = rng.choice(models)
        tin, tout = int(rng.lognormvariate(6.5, 0.8)), int(rng.lognormvariate(5, 0.7))
        lat = round(rng.lognormvariate(6.8, 0.5), 2)
        err = rng.random() < 0.04
        chunk.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128))),
                rng.choice(tasks),
                agent,
                model,
                tin,
                tout,
                0,
                0,
                0,
                lat,
                prices.cost(model, tin, tout),
                "error" if err else "success",
                "RateLimitError" if err else None,
                ts,
                None,
                "llm",
                None,
                None,
                None,
                None,
                None,
                latency_bin(lat),
            )
        )
        if len(chunk) == 5000:
            store.insert_events(chunk)
            chunk = []
    if chunk:
        store.insert_events(chunk)
    return time.perf_counter() - t0


def exact(db: str, lo_us: int, hi_us: int) -> tuple[float, float]:
    con = sqlite3.connect(db)
    lat = [
        r[0]
        for r in con.execute(
            "SELECT latency_ms FROM events WHERE kind='llm' AND ts>=? AND ts<=? "
            "ORDER BY latency_ms",
            (lo_us, hi_us),
        )
    ]
    con.close()
    return lat[math.ceil(0.5 * len(lat)) - 1], lat[math.ceil(0.95 * len(lat)) - 1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--keep", help="keep the database at this path (reused if it exists)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = a.keep or str(Path(tmp.name) / "scale.db")
    load_s = None
    if not Path(db).exists():
        store = open_store(db)
        load_s = generate(store, a.events, a.days)
        store.close()
    size = db_size(db)
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentwatch",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            db,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/api/metrics/summary", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.01)
    first_answer_s = time.perf_counter() - t0
    results = []
    accuracy = []
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            for name in ("summary", "timeseries", "breakdown"):
                for period in PERIODS:
                    for agent in (None, "research-bot"):
                        params: dict[str, str] = {"period": period}
                        if name == "breakdown":
                            params["group_by"] = "model"
                        if agent:
                            params["agent_name"] = agent
                        c.get(f"/api/metrics/{name}", params=params).raise_for_status()
                        times = []
                        for _ in range(a.repeat):
                            t = time.perf_counter()
                            c.get(f"/api/metrics/{name}", params=params).raise_for_status()
                            times.append((time.perf_counter() - t) * 1000)
                        times.sort()
                        results.append(
                            {
                                "endpoint": name,
                                "period": period,
                                "agent_filter": bool(agent),
                                "p50_ms": round(statistics.median(times), 2),
                                "p95_ms": round(times[max(0, math.ceil(0.95 * len(times)) - 1)], 2),
                            }
                        )
            for period, secs in (("24h", 86_400), ("7d", 7 * 86_400)):
                now = int(time.time() * 1e6)
                s = c.get("/api/metrics/summary", params={"period": period}).json()
                e50, e95 = exact(db, now - secs * 1_000_000, now)
                accuracy.append(
                    {
                        "period": period,
                        "p50": s["latency_p50"],
                        "exact_p50": e50,
                        "p95": s["latency_p95"],
                        "exact_p95": e95,
                        "p50_rel_err": round(abs(s["latency_p50"] - e50) / e50, 5),
                        "p95_rel_err": round(abs(s["latency_p95"] - e95) / e95, 5),
                    }
                )
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        tmp.cleanup()
    worst = max(results, key=lambda r: r["p95_ms"])
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "events": a.events,
                "days": a.days,
                "load_seconds": None if load_s is None else round(load_s, 1),
                "load_events_per_second": None if load_s is None else round(a.events / load_s),
                "db_bytes": size,
                "db_bytes_per_event": round(size / a.events, 1),
                "first_answer_seconds": round(first_answer_s, 3),
                "server_rss_mb": round(rss, 1),
                "worst_p95_ms": worst["p95_ms"],
                "worst": "{endpoint} {period} agent_filter={agent_filter}".format(**worst),
                "accuracy": accuracy,
                "results": results,
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
