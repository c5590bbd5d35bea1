"""Scale: storage, start time, memory and metrics latency/accuracy at N events,
quiet and under an ingest load.

Events (5 agents, 10 tasks, 6 models, over --days days ending now, lognormal
tokens and latency, ~4% errors, busier afternoons and quieter weekends) are
written in time order straight into a fresh store through its own
insert_events, the code the ingest path commits with (HTTP validation
skipped), in chunks drawn with numpy, so neither the generator's time nor its
memory grows with N (progress on stderr every million). Ids are UUIDv7 built
from each event's timestamp, as the SDK makes them; the same --seed gives the
same database. Then a real server is started on that database and measured:

- bytes on disk per event (database file, WAL checkpointed, every index and
  rollup included);
- time from process start to the first answered request;
- p50/p95 of summary, timeseries and breakdown for every period, with and
  without an agent filter;
- p50/p95 accuracy against exact nearest-rank values, computed in SQL over the
  rows the server aggregates (kind 'llm' in the period's range);
- server RSS after the queries;
- with --under-load S: for S seconds, --load-clients processes POST prebuilt
  live batches to /api/events as fast as they are acknowledged while another
  process loops over the dashboard's queries (24h and 7d, and the feed);
  reported under "under_load": events/s acknowledged, the queries' p50/p95,
  and the server's peak RSS sampled every 0.5 s.

--keep PATH keeps the database (generated there once, reused afterwards), so a
10M-event store is built once and measured several times. The under-load
phase adds its events to that database, and the periods are relative to now:
"events" and "newest_event_age_s" in the output say what was measured.

    python benchmarks/scale.py [--events 1000000] [--days 30] [--repeat 20]
                               [--under-load 20] [--load-clients 4] [--keep PATH]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    QueryLoop,
    Server,
    dashboard_queries,
    db_size,
    latency_stats,
    machine,
    make_events,
    metrics_latency,
)

from agentwatch.pricing import PER_MILLION, PriceBook
from agentwatch.store import open_store
from agentwatch.store.sketch import latency_bin
from agentwatch.store.tables import INSERT_COLUMNS

# agent -> (its two tasks, its two models): 5 agents, 10 tasks, 6 models.
AGENTS = {
    "research-bot": (["search", "summarize"], ["gpt-4o", "claude-sonnet-4-20250514"]),
    "support-agent": (["triage", "reply"], ["gpt-4o-mini", "claude-haiku-3-5-20241022"]),
    "code-reviewer": (["review", "explain"], ["claude-opus-4-20250514", "gpt-4o"]),
    "data-pipeline": (["extract", "classify"], ["gpt-3.5-turbo", "gpt-4o-mini"]),
    "sales-assistant": (["draft-email", "qualify-lead"], ["gpt-4o-mini", "gpt-4o"]),
}
PERIOD_SECONDS = {"1h": 3_600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
ACCURACY_PERIODS = ("1h", "24h", "7d", "30d")
FILTER_AGENT = "research-bot"
# Rows per insert_events call: one server commit groups up to 20,000.
CHUNK = 10_000
MINUTE_US = 60_000_000


# -- the generator ---------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES = (8, 13, 18, 23)
_HEX_POS = [i for i in range(36) if i not in _DASHES]


def uuid7_ids(ts_ms: np.ndarray, rng: np.random.Generator) -> list[str]:
    """UUIDv7 strings for millisecond timestamps, laid out as the SDK's (and
    _common._event_id's): 48-bit Unix ms, version 7, 12 random bits, variant
    0b10, 62 random bits. Built as hex digits in numpy, a chunk at a time."""
    n = len(ts_ms)
    nib = np.empty((n, 32), dtype=np.uint8)
    for k in range(12):  # the timestamp, most significant nibble first
        nib[:, k] = (ts_ms >> (44 - 4 * k)) & 0xF
    nib[:, 12] = 7
    nib[:, 13:] = rng.integers(0, 16, size=(n, 19), dtype=np.uint8)
    nib[:, 16] = 8 | (nib[:, 16] & 3)  # the variant's two top bits are 10
    chars = np.empty((n, 36), dtype=np.uint8)
    chars[:, _DASHES] = ord("-")
    chars[:, _HEX_POS] = _HEX[nib]
    return chars.view("S36").ravel().astype("U36").tolist()


def arrival_curve(start_us: int, end_us: int) -> tuple[np.ndarray, np.ndarray]:
    """Minute edges over [start, end] and the cumulative share of the traffic
    reached at each: a daily rhythm (peak 14:00 UTC, a quarter of it at 02:00)
    and weekends at 60%. Event i of n lands where the share is (i + U) / n."""
    minutes = max(1, -(-(end_us - start_us) // MINUTE_US))
    edges = np.linspace(start_us, end_us, minutes + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    hour = (mid / 3.6e9) % 24
    weekday = (mid // 86_400e6 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weight = (1 + 0.6 * np.cos(2 * np.pi * (hour - 14) / 24)) * np.where(weekday >= 5, 0.6, 1.0)
    cum = np.concatenate(([0.0], np.cumsum(weight)))
    return edges, cum / cum[-1]


def event_chunks(n: int, days: float, seed: int, end_us: int) -> Iterator[list[tuple[Any, ...]]]:
    """n events as store rows (INSERT_COLUMNS order), time-ordered, CHUNK at a
    time: only one chunk is ever held, so memory is flat in n."""
    rng = np.random.default_rng(seed)
    prices = PriceBook()
    names = list(AGENTS)
    tasks = np.array([t for a in names for t in AGENTS[a][0]], dtype=object)
    models = sorted({m for a in names for m in AGENTS[a][1]})
    model_names = np.array(models, dtype=object)
    # agent index, 0/1 -> index in models
    agent_models = np.array([[models.index(m) for m in AGENTS[a][1]] for a in names])
    # Per-million rates, looked up once per model (cost is linear in tokens,
    # the same float operations as Rates.cost with no cache tokens).
    rates = [prices.rates(m, None) for m in models]
    in_rate = np.array([r.input for r in rates])
    out_rate = np.array([r.output for r in rates])
    agent_names = np.array(names, dtype=object)
    edges, cum = arrival_curve(end_us - int(days * 86_400e6), end_us)
    for i0 in range(0, n, CHUNK):
        k = min(CHUNK, n - i0)
        ts = np.interp((np.arange(i0, i0 + k) + rng.random(k)) / n, cum, edges).astype(np.int64)
        agent = rng.integers(0, len(names), k)
        task = agent * 2 + rng.integers(0, 2, k)
        model = agent_models[agent, rng.integers(0, 2, k)]
        tin = rng.lognormal(6.5, 0.8, k).astype(np.int64)
        tout = rng.lognormal(5.0, 0.7, k).astype(np.int64)
        lat = np.round(rng.lognormal(6.8, 0.5, k), 2).tolist()
        err = rng.random(k) < 0.04
        cost = (tin * in_rate[model] + tout * out_rate[model]) / PER_MILLION
        cols: dict[str, Any] = {
            "id": uuid7_ids(ts // 1000, rng),
            "task_name": tasks[task].tolist(),
            "agent_name": agent_names[agent].tolist(),
            "model": model_names[model].tolist(),
            "input_tokens": tin.tolist(),
            "output_tokens": tout.tolist(),
            "cache_read_tokens": itertools.repeat(0),
            "cache_write_tokens": itertools.repeat(0),
            "reasoning_tokens": itertools.repeat(0),
            "latency_ms": lat,
            "cost_usd": cost.tolist(),
            "status": np.where(err, "error", "success").tolist(),
            "error_message": [("RateLimitError: 429" if e else None) for e in err.tolist()],
            "ts": ts.tolist(),
            "metadata": itertools.repeat(None),
            "kind": itertools.repeat("llm"),
            "trace_id": itertools.repeat(None),
            "parent_id": itertools.repeat(None),
            "provider": itertools.repeat(None),
            "user_id": itertools.repeat(None),
            "session_id": itertools.repeat(None),
            # The store's own binning, per event, as ingest does it.
            "latency_bin": list(map(latency_bin, lat)),
            "flags": itertools.repeat(0),  # priced by the server's price book
        }
        unknown = [c for c in INSERT_COLUMNS if c not in cols]
        if unknown:
            raise SystemExit(f"scale.py: no generator for the events column(s) {unknown}")
        # Not strict: the constant columns are endless repeats; the lists set the length.
        yield list(zip(*(cols[c] for c in INSERT_COLUMNS), strict=False))


def generate(db: str, n: int, days: float, seed: int) -> dict[str, float]:
    """Write n events into a new store at db. Built as db + '.partial' and
    renamed when complete, so an interrupted run never leaves a short
    database for --keep to reuse."""
    partial = db + ".partial"
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(partial + suffix).unlink(missing_ok=True)
    store = open_store(partial)
    t0 = time.perf_counter()
    gen_s = 0.0
    done = 0
    chunks = event_chunks(n, days, seed, int(time.time() * 1e6))
    while True:
        t = time.perf_counter()
        rows = next(chunks, None)
        gen_s += time.perf_counter() - t
        if rows is None:
            break
        store.insert_events(rows)
        before, done = done, done + len(rows)
        if done // 1_000_000 > before // 1_000_000 or (done == n and n >= 1_000_000):
            took = time.perf_counter() - t0
            note(
                f"{done:,} / {n:,} events, {took:.0f} s, {done / took:,.0f}/s "
                f"(generator {gen_s:.0f} s)"
            )
    store.close()
    total = time.perf_counter() - t0
    for suffix in ("", "-wal", "-shm"):
        if Path(partial + suffix).exists():
            os.replace(partial + suffix, db + suffix)
    return {"seconds": total, "generator_seconds": gen_s}


# -- measurements -------------------------------------------------------------


def exact_percentiles(
    con: sqlite3.Connection, lo_us: int, hi_us: int, agent: str | None
) -> tuple[float | None, float | None]:
    """Exact nearest-rank p50 and p95 of the rows the server aggregates for
    [lo, hi] (kind 'llm', code 0 in the store's layout), in SQL: one COUNT,
    then one sort that numbers the rows and keeps the two wanted ranks (no
    latencies pulled into Python)."""
    where = "kind = 0 AND ts >= ? AND ts <= ?" + (
        " AND agent_ref = (SELECT ref FROM names WHERE value = ?)" if agent else ""
    )
    args: tuple[Any, ...] = (lo_us, hi_us, agent) if agent else (lo_us, hi_us)
    (n,) = con.execute(f"SELECT COUNT(*) FROM events WHERE {where}", args).fetchone()
    if not n:
        return None, None
    r50, r95 = -(-n * 50 // 100), -(-n * 95 // 100)  # ceil(q n), in integers
    got = dict(
        con.execute(
            f"SELECT rn, latency_ms FROM (SELECT latency_ms, "
            f"ROW_NUMBER() OVER (ORDER BY latency_ms) AS rn FROM events WHERE {where}) "
            f"WHERE rn IN (?, ?)",
            (*args, r50, r95),
        ).fetchall()
    )
    return got[r50], got[r95]


def note(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    print(f"scale: {msg}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_facts(db: str) -> tuple[int, int | None]:
    """Events stored and the newest event's timestamp (epoch us)."""
    con = sqlite3.connect(db)
    try:
        n, newest = con.execute("SELECT COUNT(*), MAX(ts) FROM events").fetchone()
    finally:
        con.close()
    return int(n), newest


def accuracy(c: httpx.Client, db: str) -> tuple[list[dict[str, Any]], float]:
    """Server p50/p95 vs exact, per period, with and without the agent filter."""
    out = []
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    try:
        for period in ACCURACY_PERIODS:
            for agent in (None, FILTER_AGENT):
                params = {"period": period, **({"agent_name": agent} if agent else {})}
                before = time.time()
                s = c.get("/api/metrics/summary", params=params).json()
                # The server took "now" somewhere in the request: use its middle.
                now = int((before + time.time()) / 2 * 1e6)
                e50, e95 = exact_percentiles(con, now - PERIOD_SECONDS[period] * 10**6, now, agent)
                row: dict[str, Any] = {
                    "period": period,
                    "agent_filter": bool(agent),
                    "p50": s["latency_p50"],
                    "exact_p50": e50,
                    "p95": s["latency_p95"],
                    "exact_p95": e95,
                }
                for q, exact in (("p50", e50), ("p95", e95)):
                    got = s[f"latency_{q}"]
                    ok = exact and got is not None
                    row[f"{q}_rel_err"] = round(abs(got - exact) / exact, 5) if ok else None
                out.append(row)
    finally:
        con.close()
    return out, time.perf_counter() - t0


# -- the under-load phase -----------------------------------------------------


def load_templates(n_batches: int, batch: int, seed: int) -> list[tuple[bytes, list[int]]]:
    """Request bodies of live events (time-ordered over the last minute) and,
    for each, the offsets of its events' id tails. A client resends them with
    fresh tails, so every id is new (nothing is deduplicated) at the cost of a
    few bytes written per event, not a JSON encoding."""
    events = make_events(n_batches * batch, days=60 / 86_400, seed=seed, ordered=True)
    out = []
    for i in range(n_batches):
        chunk = events[i * batch : (i + 1) * batch]
        body = orjson.dumps({"events": chunk})
        offsets, pos = [], 0
        for ev in chunk:
            at = body.index(ev["id"].encode(), pos)
            offsets.append(at + 24)  # the last group: 12 hex digits of random bits
            pos = at + 36
        out.append((body, offsets))
    return out


def _load_client(
    port: int,
    templates: list[tuple[bytes, list[int]]],
    k: int,
    seconds: float,
    start: Any,
    out: Any,
) -> None:
    # One process, one keep-alive connection, as ingest_http.py's clients.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    bufs = [(bytearray(body), offsets) for body, offsets in templates]
    seq = k << 40  # client k's ids end in k, then a counter: unique across clients
    acked = failed = 0
    lat = []
    start.wait()
    deadline = time.monotonic() + seconds
    i = k  # clients start at different templates
    while time.monotonic() < deadline:
        buf, offsets = bufs[i % len(bufs)]
        i += 1
        for at in offsets:
            buf[at : at + 12] = b"%012x" % seq
            seq += 1
        t = time.perf_counter()
        try:
            conn.request("POST", "/api/events", body=buf, headers=headers)
            r = conn.getresponse()
            r.read()
        except (OSError, http.client.HTTPException):  # counted; the report shows it
            failed += 1
            conn.close()
            time.sleep(0.05)
            continue
        lat.append((time.perf_counter() - t) * 1000)
        if r.status == 200:  # 200 = committed
            acked += len(offsets)
        else:
            failed += 1
    out.put((acked, failed, lat, time.monotonic()))


def under_load(
    url: str, port: int, pid: int, seconds: float, clients: int, batch: int, seed: int
) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    templates = load_templates(max(8, 2 * clients), batch, seed)
    stored_before = httpx.get(url + "/api/health", timeout=60).json()["events"]
    start = ctx.Event()
    out: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_load_client, args=(port, templates, k, seconds, start, out), daemon=True
        )
        for k in range(clients)
    ]
    for p in procs:
        p.start()
    queries = QueryLoop(ctx, port, dashboard_queries(("24h", "7d")), start)
    time.sleep(0.5)  # every process waiting on `start`
    rss = [rss_mb(pid)]
    t0 = time.monotonic()
    start.set()
    while time.monotonic() < t0 + seconds:
        time.sleep(0.5)
        rss.append(rss_mb(pid))
    query_stats = queries.finish()
    done = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(d[3] for d in done) - t0  # until the last request was answered
    rss.append(rss_mb(pid))
    acked = sum(d[0] for d in done)
    stored_after = httpx.get(url + "/api/health", timeout=60).json()["events"]
    return {
        "seconds": round(elapsed, 2),
        "clients": clients,
        "batch": batch,
        "events_acknowledged": acked,
        "events_per_second": round(acked / elapsed),
        "events_stored": stored_after - stored_before,
        "failed_requests": sum(d[1] for d in done),
        "ingest_request": latency_stats([x for d in done for x in d[2]]),
        "server_rss_mb_max": round(max(rss), 1),
        "server_rss_mb_samples": len(rss),
        "dashboard": query_stats,
    }


# -- main -----------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--keep", help="keep the database at this path (reused if it exists)")
    ap.add_argument(
        "--under-load",
        type=float,
        default=0,
        metavar="SECONDS",
        help="after the quiet run, ingest and query together for this long (0: skip)",
    )
    ap.add_argument("--load-clients", type=int, default=4)
    ap.add_argument("--load-batch", type=int, default=1000, help="events per POST under load")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = run(a, a.keep or str(Path(tmp) / "scale.db"))
    print(json.dumps(out, indent=2))


def run(a: argparse.Namespace, db: str) -> dict[str, Any]:
    loaded = None
    if Path(db).exists():
        note(f"reusing {db}")
    else:
        note(f"writing {a.events:,} events into {db}")
        loaded = generate(db, a.events, a.days, a.seed)
    size = db_size(db)
    stored, newest = store_facts(db)
    age_s = None if newest is None else round(time.time() - newest / 1e6)
    if age_s is not None and age_s > 3600:
        note(f"the newest event is {age_s / 3600:.1f} h old: short periods hold few events")
    # Ready once a metrics query answers; no deadline: a first start after an
    # upgrade migrates the whole database.
    srv = Server(db, ready="/api/metrics/summary", timeout=float("inf"))
    url, port, first_answer_s = srv.url, srv.port, srv.started_s
    note(f"{stored:,} events; first answer {first_answer_s:.2f} s after start; quiet queries")
    load_result = None
    try:
        with httpx.Client(base_url=url, timeout=600) as c:
            results = metrics_latency(c, a.repeat, FILTER_AGENT)
            note("exact percentiles in SQL")
            acc, acc_s = accuracy(c, db)
        rss = rss_mb(srv.proc.pid)
        if a.under_load > 0:
            note(f"under load for {a.under_load:g} s, {a.load_clients} ingest clients")
            load_result = under_load(
                url, port, srv.proc.pid, a.under_load, a.load_clients, a.load_batch, a.seed
            )
    finally:
        srv.stop()
    worst = max(results, key=lambda r: r["p95_ms"])
    errs = [r[k] for r in acc for k in ("p50_rel_err", "p95_rel_err") if r[k] is not None]
    return {
        "benchmark": "scale",
        "events": stored,
        "days": a.days,
        "reused_database": loaded is None,
        "newest_event_age_s": age_s,
        "load_seconds": None if loaded is None else round(loaded["seconds"], 1),
        "load_generator_seconds": (
            None if loaded is None else round(loaded["generator_seconds"], 1)
        ),
        "load_events_per_second": (None if loaded is None else round(a.events / loaded["seconds"])),
        "db_bytes": size,
        "db_bytes_per_event": round(size / max(stored, 1), 1),
        "first_answer_seconds": round(first_answer_s, 3),
        "server_rss_mb": round(rss, 1),
        "worst_p95_ms": worst["p95_ms"],
        "worst": "{endpoint} {period} agent_filter={agent_filter}".format(**worst),
        "accuracy_worst_rel_err": max(errs) if errs else None,
        "accuracy_seconds": round(acc_s, 1),
        "accuracy": acc,
        "results": results,
        **({"under_load": load_result} if load_result else {}),
        "machine": machine(),
    }


if __name__ == "__main__":
    main()
