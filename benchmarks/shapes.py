"""Traffic shapes: ingest, disk, memory and query latency for the kinds of
traffic real users send, not only the friendly kind.

Every shape is sent over HTTP to a fresh server by --clients processes, each
POSTing prebuilt batches of --batch events on one keep-alive connection (a 200
means committed). While they run:

- the store's size on disk (SQLite: the database file, its WAL and shared
  memory file; PostgreSQL: pg_database_size) and the server's RSS are sampled
  every 250 ms;
- one more process loops over the dashboard's queries (summary, timeseries
  and breakdown for 24h, the feed) back to back, as a viewer would while the
  agents run (--no-concurrent-queries turns it off).

After the ingest: every metrics endpoint for every period, with and without an
agent filter, and breakdowns by model and by task, `--repeat` calls each
(p50/p95 in ms); then the server is stopped and the final size measured.

Shapes (ids: uuid7 as our SDK makes them, uuid4 as any other client does):

- friendly: uuid7, live (timestamps now, in order), 20 agents each with 5
  tasks of its own on 3 models (300 combinations);
- foreign: uuid4, otherwise as friendly;
- import: uuid4, every batch spread over the last 30 days (a backfill, an
  import, `migrate-db`);
- team: uuid7, live, 60 agents each running 5 tasks of its own on 2 of 25
  models (600 combinations);
- wide: uuid4, live, 60 agents x 300 tasks x 25 models drawn independently;
- idtasks: uuid4, live, 60 agents, task names holding ids (50,000 distinct),
  25 models.

    python benchmarks/shapes.py [--shapes friendly,import,...] [--events 300000,1000000]
                                [--clients 2] [--batch 1000] [--repeat 20] [--db URL]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    QueryLoop,
    Server,
    dashboard_queries,
    db_size,
    empty_pg,
    latency_stats,
    machine,
    nearest_rank,
)

MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-3.5-turbo",
    "gpt-5",
    "gpt-5-mini",
    "claude-opus-4-20250514",
    "claude-sonnet-4-20250514",
    "claude-haiku-3-5-20241022",
    "claude-3-7-sonnet-20250219",
    "claude-3-5-sonnet-20241022",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.0-flash",
    "mistral-large-latest",
    "mistral-small-latest",
    "llama-3.3-70b",
    "deepseek-chat",
    "deepseek-reasoner",
    "command-r-plus",
]

SHAPES = ("friendly", "foreign", "import", "team", "wide", "idtasks")


def _uuid7(ts: float, rng: random.Random) -> str:
    n = (int(ts * 1000) << 80) | rng.getrandbits(80)
    n = (n & ~(0xF << 76)) | (0x7 << 76)
    n = (n & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=n))


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Shape:
    """Draws (agent, task, model) combinations, ids and timestamps of a shape."""

    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.rng = rng
        self.uuid4 = name in ("foreign", "import", "wide", "idtasks")
        self.spread_days = 30.0 if name == "import" else 0.0
        if name in ("friendly", "foreign", "import"):
            self.combos = [
                (f"agent-{a:02d}", f"agent-{a:02d}-task-{t}", m)
                for a in range(20)
                for t in range(5)
                for m in rng.sample(MODELS[:12], 3)
            ]
        elif name == "team":
            self.combos = []
            for a in range(60):
                models = rng.sample(MODELS, 2)
                self.combos += [
                    (f"agent-{a:02d}", f"agent-{a:02d}-task-{t}", m)
                    for t in range(5)
                    for m in models
                ]
        else:
            self.combos = []
        self.agents = sorted({c[0] for c in self.combos}) or [f"agent-{a:02d}" for a in range(60)]

    def combo(self) -> tuple[str, str, str]:
        r = self.rng
        if self.name == "wide":
            return (
                f"agent-{r.randrange(60):02d}",
                f"task-{r.randrange(300):03d}",
                r.choice(MODELS),
            )
        if self.name == "idtasks":
            return (
                f"agent-{r.randrange(60):02d}",
                f"ticket-{r.randrange(50_000):05d}",
                r.choice(MODELS),
            )
        return r.choice(self.combos)


def make_bodies(shape: str, n: int, batch: int, seed: int) -> tuple[list[bytes], Shape]:
    rng = random.Random(seed)
    sh = Shape(shape, rng)
    now = time.time()
    bodies = []
    # Live shapes: timestamps in order over the last 10 minutes, ending now.
    live_span = 600.0
    for start in range(0, n, batch):
        events = []
        for i in range(start, min(n, start + batch)):
            if sh.spread_days:
                ts = now - rng.random() * sh.spread_days * 86400
            else:
                ts = now - live_span + live_span * i / n
            agent, task, model = sh.combo()
            err = rng.random() < 0.04
            events.append(
                {
                    "id": _uuid4(rng) if sh.uuid4 else _uuid7(ts, rng),
                    "task_name": task,
                    "agent_name": agent,
                    "model": model,
                    "input_tokens": int(rng.lognormvariate(6.5, 0.8)),
                    "output_tokens": int(rng.lognormvariate(5, 0.7)),
                    "latency_ms": round(rng.lognormvariate(6.8, 0.5), 2),
                    "status": "error" if err else "success",
                    "error_message": "RateLimitError: 429" if err else None,
                    "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
                    "metadata": {"run": rng.randint(1, 1000)},
                }
            )
        bodies.append(orjson.dumps({"events": events}))
    return bodies, sh


def _client(port: int, bodies: list[bytes], start: Any, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
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


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Disk size of the store and RSS of the server every `every` seconds."""

    def __init__(self, db: str, pids: list[int], every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.db, self.pids, self.every = db, pids, every
        self.stop_ev = threading.Event()
        self.disk: list[int] = []
        self.wal: list[int] = []
        self.rss: list[int] = []  # every process of the server: itself and its readers
        self.rss_server: list[int] = []  # the server's own process

    def run(self) -> None:
        wal = Path(self.db + "-wal")
        while not self.stop_ev.is_set():
            # A PostgreSQL sample may fail under load; it is skipped.
            with contextlib.suppress(Exception):
                self.disk.append(db_size(self.db))
            if "://" not in self.db:
                with contextlib.suppress(OSError):
                    self.wal.append(wal.stat().st_size)
            main = self.pids[0]  # its readers are looked up each time (they start late)
            self.rss.append(sum(_rss_kb(p) for p in [main, *_children(main)]))
            self.rss_server.append(_rss_kb(main))
            self.stop_ev.wait(self.every)

    def finish(self) -> None:
        self.stop_ev.set()
        self.join()


def pg_tables(url: str) -> dict[str, dict[str, float]]:
    """Per store table on PostgreSQL: its size with indexes (MB) and its live
    and dead tuples (bloat shows as dead tuples that autovacuum leaves)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(relid), n_live_tup, n_dead_tup "
            "FROM pg_stat_user_tables WHERE relname IN ('events', 'rollups', 'names', "
            "'rollup_raw', 'rollup_dirty')"
        ).fetchall()
    return {
        name: {"mb": round(size / 2**20, 1), "live": live, "dead": dead}
        for name, size, live, dead in rows
    }


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def query_latency(url: str, agent: str, repeat: int) -> list[dict[str, Any]]:
    """p50/p95 of every metrics endpoint, period and filter, and breakdowns by
    model and by task."""
    cases: list[tuple[str, dict[str, str]]] = []
    for period in ("1h", "24h", "7d", "30d", "all"):
        for who in (None, agent):
            base = {"period": period, **({"agent_name": who} if who else {})}
            cases.append(("summary", base))
            cases.append(("timeseries", base))
            cases.append(("breakdown", {**base, "group_by": "model"}))
            cases.append(("breakdown", {**base, "group_by": "task_name"}))
    out = []
    with httpx.Client(base_url=url, timeout=120) as c:
        for name, params in cases:
            path = f"/api/metrics/{name}?" + urlencode(params)
            c.get(path).raise_for_status()
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                c.get(path).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            out.append(
                {
                    "endpoint": name,
                    **params,
                    "p50_ms": round(statistics.median(times), 2),
                    "p95_ms": round(nearest_rank(times, 0.95), 2),
                }
            )
    return out


def run_shape(shape: str, n: int, a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    t = time.perf_counter()
    bodies, sh = make_bodies(shape, n, a.batch, a.seed)
    gen_s = time.perf_counter() - t
    db = a.db or str(Path(tmp) / f"{shape}-{n}.db")
    if "://" in db:
        empty_pg(db)
    srv = Server(db, "--read-workers", str(a.read_workers))
    try:
        t = time.perf_counter()  # measured with the readers up, as a server runs
        while (
            httpx.get(srv.url + "/api/health").json()["readers"]["up"] < a.read_workers
            and time.perf_counter() - t < 30
        ):
            time.sleep(0.1)
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
            None
            if a.no_concurrent_queries
            else QueryLoop(ctx, srv.port, dashboard_queries(("24h",)), start)
        )
        sampler = Sampler(db, [srv.proc.pid])
        sampler.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        start.set()
        lat: list[float] = []
        for _ in procs:
            lat.extend(out.get())
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - t0
        during = queries.finish() if queries else None
        sampler.finish()
        health = httpx.get(srv.url + "/api/health", timeout=60).json()
        stored = health["events"]
        size_loaded = db_size(db)
        # Queries are exact at once; fast once the rollups have caught up
        # (an import's days are recounted after it): timed until they have.
        t = time.perf_counter()
        while (pending := httpx.get(srv.url + "/api/health", timeout=60).json())[
            "rollups_pending"
        ] != {"events": 0, "dirty_days": 0} and time.perf_counter() - t < 600:
            time.sleep(0.25)
        catch_up = time.perf_counter() - t
        rss_quiet_kb = sum(_rss_kb(p) for p in [srv.proc.pid, *_children(srv.proc.pid)])
        readers = health.get("readers")
        tables = pg_tables(db) if "://" in db else None
        ql = query_latency(srv.url, sh.agents[0], a.repeat)
    finally:
        srv.stop()
    final = db_size(db)
    worst = max(ql, key=lambda r: r["p95_ms"])
    lat_ms = [x * 1000 for x in lat]
    return {
        "shape": shape,
        "events": n,
        "generate_s": round(gen_s, 1),
        "ingest": {
            "seconds": round(elapsed, 2),
            "events_per_second": round(n / elapsed),
            "requests": latency_stats(lat_ms),
        },
        "stored": stored,
        "rollups_caught_up_s": round(catch_up, 2),
        "rollups_pending_at_end": pending["rollups_pending"],
        "disk": {
            "max_while_ingesting_mb": round(max(sampler.disk or [0]) / 2**20, 1),
            "after_ingest_mb": round(size_loaded / 2**20, 1),
            "final_mb": round(final / 2**20, 1),
            "final_bytes_per_event": round(final / max(stored, 1), 1),
            "max_over_final": round(max(sampler.disk or [0]) / max(final, 1), 2),
            "max_wal_mb": round(max(sampler.wal or [0]) / 2**20, 1),
        },
        "rss_mb": {
            "max_while_ingesting": round(max(sampler.rss or [0]) / 1024, 1),
            "after_ingest": round(rss_quiet_kb / 1024, 1),
            "server_max_while_ingesting": round(max(sampler.rss_server or [0]) / 1024, 1),
        },
        "readers_at_end": readers,
        **({"postgresql_tables": tables} if tables else {}),
        "queries_during_ingest": during,
        "queries_after": {
            "worst_p95_ms": worst["p95_ms"],
            "worst": {k: v for k, v in worst.items() if k not in ("p50_ms", "p95_ms")},
            "all": ql,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--events", default="300000,1000000", help="comma-separated sizes")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--no-concurrent-queries", action="store_true")
    ap.add_argument("--db", help="a postgresql:// URL (emptied first); default: temp SQLite")
    ap.add_argument(
        "--read-workers", type=int, default=1, help="the server's --read-workers (0: none)"
    )
    ap.add_argument("--keep", help="a folder to keep the SQLite files in (default: removed)")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.keep or scratch
        for shape in a.shapes.split(","):
            if shape not in SHAPES:
                raise SystemExit(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
            for n in (int(x) for x in a.events.split(",")):
                r = run_shape(shape, n, a, tmp)
                print(
                    json.dumps({k: r[k] for k in ("shape", "events", "ingest", "disk")}),
                    file=sys.stderr,
                )
                results.append(r)
    backend = "postgresql" if a.db and "://" in a.db else "sqlite"
    print(
        json.dumps(
            {
                "benchmark": "shapes",
                "backend": backend,
                "clients": a.clients,
                "batch": a.batch,
                "results": results,
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
