"""Shared pieces of the benchmark scripts: a server process, a data generator
and the dashboard's query loop (run beside an ingest load)."""

from __future__ import annotations

import http.client
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

AGENTS = {
    "research-bot": (["search", "summarize", "cite"], ["gpt-4o", "claude-sonnet-4-20250514"]),
    "support-agent": (["triage", "reply"], ["gpt-4o-mini", "claude-haiku-3-5-20241022"]),
    "code-reviewer": (["review", "explain"], ["claude-opus-4-20250514", "gpt-4o"]),
    "data-pipeline": (["extract", "classify"], ["gpt-3.5-turbo", "gpt-4o-mini"]),
    "sales-assistant": (["draft-email", "qualify-lead"], ["gpt-4o-mini", "gpt-4o"]),
}


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`agentwatch serve` on a free port of 127.0.0.1, ready once `ready`
    answers 200; `started_s` is the time from process start to that answer."""

    def __init__(
        self, db: str, *args: str, ready: str = "/api/health", timeout: float = 30
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "agentwatch",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            db,
            "--log-level",
            "warning",
            *args,
        ]
        # stderr to a file, not a pipe that nobody reads (a full one blocks the server).
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + ready, timeout=5).status_code == 200:
                    self.started_s = time.perf_counter() - t0
                    return
            except httpx.HTTPError:
                time.sleep(0.01)
        self.proc.kill()
        self.log.seek(0)
        raise RuntimeError(f"server did not start: {self.log.read().decode()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def _event_id(ts: float, rng: random.Random, random_ids: bool) -> str:
    if random_ids:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    n = (int(ts * 1000) << 80) | rng.getrandbits(80)
    n = (n & ~(0xF << 76)) | (0x7 << 76)  # version 7
    n = (n & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=n))


def make_events(
    n: int,
    days: float,
    seed: int = 7,
    end: float | None = None,
    ordered: bool = False,
    random_ids: bool = False,
) -> list[dict]:
    """n LLM-call events spread over `days` days ending now, realistic shapes.

    ordered=True sorts them by time, as a live system sends them; otherwise
    they come in random time order, as a backfill or an import would.
    """
    rng = random.Random(seed)
    end = end or time.time()
    span = days * 86400
    names = list(AGENTS)
    out = []
    for _ in range(n):
        agent = rng.choice(names)
        tasks, models = AGENTS[agent]
        ts = end - rng.random() * span
        err = rng.random() < 0.04
        out.append(
            {
                # UUIDv7 layout, as the SDK makes them: Unix ms, then random bits
                # (version and variant bits set). --random-ids sends v4-style ones.
                "id": _event_id(ts, rng, random_ids),
                "task_name": rng.choice(tasks),
                "agent_name": agent,
                "model": rng.choice(models),
                "input_tokens": int(rng.lognormvariate(6.5, 0.8)),
                "output_tokens": int(rng.lognormvariate(5, 0.7)),
                "latency_ms": round(rng.lognormvariate(6.8, 0.5), 2),
                "status": "error" if err else "success",
                "error_message": "RateLimitError: 429" if err else None,
                "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
                "metadata": {"run": rng.randint(1, 1000)},
            }
        )
    if ordered:
        out.sort(key=lambda e: e["timestamp"])
    return out


def load(url: str, events: list[dict], batch: int = 1000) -> None:
    with httpx.Client(timeout=120) as c:
        for i in range(0, len(events), batch):
            r = c.post(url + "/api/events", json={"events": events[i : i + batch]})
            r.raise_for_status()


def empty_pg(url: str) -> None:
    """Empty an AgentWatch PostgreSQL database before a run (schema kept)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = [
            t
            for t in ("events", "names", "rollups", "rollup_raw", "rollup_dirty", "store_state")
            if (r := conn.execute("SELECT to_regclass(%s) IS NOT NULL", (t,)).fetchone()) and r[0]
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")


def db_size(path: str | Path) -> int:
    """Bytes on disk of a SQLite file (with its WAL) or of a PostgreSQL database."""
    if "://" in str(path):
        import psycopg

        url = str(path).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    p = Path(path)
    return sum(f.stat().st_size for f in p.parent.glob(p.name + "*") if f.is_file())


# -- the dashboard's queries, looped while something else loads the server ----

# What one refresh of the dashboard asks for (server/static/js/main.js): the
# cards, the charts at that range's bucket width, the breakdown's default tab
# and the newest events of the feed.
DASHBOARD_BUCKETS = {"1h": 1, "24h": 20, "7d": 120, "30d": 720}


def dashboard_queries(periods: tuple[str, ...] = ("24h",)) -> list[tuple[str, str]]:
    """(label, path and query string) of a dashboard refresh for each period,
    plus the feed's GET /api/events?limit=50 (period-independent, once)."""
    out = []
    for p in periods:
        out += [
            (f"summary {p}", "/api/metrics/summary?" + urlencode({"period": p})),
            (
                f"timeseries {p}",
                "/api/metrics/timeseries?"
                + urlencode({"period": p, "bucket": DASHBOARD_BUCKETS[p]}),
            ),
            (
                f"breakdown {p}",
                "/api/metrics/breakdown?" + urlencode({"group_by": "agent_name", "period": p}),
            ),
        ]
    out.append(("events limit=50", "/api/events?limit=50"))
    return out


def nearest_rank(sorted_xs: list[float], q: float) -> float:
    """The q-quantile of an ascending list, nearest-rank (as the server's)."""
    return sorted_xs[max(1, math.ceil(q * len(sorted_xs))) - 1]


METRIC_PERIODS = ("1h", "24h", "7d", "30d", "all")


def metrics_latency(c: Any, repeat: int, agent: str = "research-bot") -> list[dict[str, Any]]:
    """p50/p95 (ms) of every metrics endpoint for every period, with and
    without an agent filter, `repeat` calls each after one warm-up call;
    `c` is an httpx.Client on the server."""
    results = []
    for name in ("summary", "timeseries", "breakdown"):
        for period in METRIC_PERIODS:
            for who in (None, agent):
                params: dict[str, str] = {"period": period}
                if name == "breakdown":
                    params["group_by"] = "model"
                if who:
                    params["agent_name"] = who
                c.get(f"/api/metrics/{name}", params=params).raise_for_status()
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    c.get(f"/api/metrics/{name}", params=params).raise_for_status()
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                results.append(
                    {
                        "endpoint": name,
                        "period": period,
                        "agent_filter": bool(who),
                        "p50_ms": round(statistics.median(times), 2),
                        "p95_ms": round(nearest_rank(times, 0.95), 2),
                    }
                )
    return results


def latency_stats(ms: list[float]) -> dict[str, Any]:
    """n, p50, p95 and max of request times in milliseconds."""
    if not ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    s = sorted(ms)
    return {
        "n": len(s),
        "p50_ms": round(nearest_rank(s, 0.5), 2),
        "p95_ms": round(nearest_rank(s, 0.95), 2),
        "max_ms": round(s[-1], 2),
    }


def _query_loop(port: int, queries: list[tuple[str, str]], start: Any, stop: Any, out: Any) -> None:
    # Back to back, one request at a time, on one keep-alive connection: a
    # dashboard refreshing without pause, the worst a single viewer does (the
    # real one refreshes every 30 s). stdlib http.client keeps the client's
    # own overhead out of the figures.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times: dict[str, list[float]] = {label: [] for label, _ in queries}
    errors = 0
    start.wait()
    while not stop.is_set():
        for label, path in queries:
            t = time.perf_counter()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
            except (OSError, http.client.HTTPException):  # counted, then a new connection
                errors += 1
                conn.close()
                time.sleep(0.05)
                continue
            if r.status == 200:
                times[label].append((time.perf_counter() - t) * 1000)
            else:
                errors += 1
            if stop.is_set():
                break
    conn.close()
    out.put((times, errors))


class QueryLoop:
    """The dashboard's queries looped in a child process between `start` being
    set (shared with the load it runs beside) and finish()."""

    def __init__(self, ctx: Any, port: int, queries: list[tuple[str, str]], start: Any) -> None:
        self._stop = ctx.Event()
        self._out = ctx.Queue()
        self._proc = ctx.Process(
            target=_query_loop, args=(port, queries, start, self._stop, self._out), daemon=True
        )  # daemon: a run that fails before finish() still exits
        self._proc.start()

    def finish(self) -> dict[str, Any]:
        """Stop the loop; p50/p95 per query and the worst p95 of them."""
        self._stop.set()
        times, errors = self._out.get(timeout=300)
        self._proc.join()
        per = {label: latency_stats(ms) for label, ms in times.items()}
        p95s = [(v["p95_ms"], k) for k, v in per.items() if v["p95_ms"] is not None]
        worst = max(p95s) if p95s else (None, None)
        return {
            "rounds": min(v["n"] for v in per.values()),
            "errors": errors,
            "worst_p95_ms": worst[0],
            "worst": worst[1],
            "queries": per,
        }
