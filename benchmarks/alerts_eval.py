"""Alert evaluation cost (issue 13): 1,000 rules over 1M events.

Events are scale.py's (5 agents, 10 tasks, 6 models, lognormal tokens and
latency, ~4% errors) over --days days ending now, written through the
store's own insert_events; every LLM call belongs to a run (its trace_id):
one run per agent per --run-minutes, with one task and one model, so the
calls-per-run pre-aggregate holds realistic runs (tens of calls each).

Then, in this process, on that store:

- `rules`: --rules rules drawn at random over the 7 metrics, the 8 windows and
  22 filters (none, each agent, each task, each model), so most (window,
  filters) groups are distinct: the evaluator runs one query per group.
  Reported: the groups (queries), CPU seconds and wall seconds per
  evaluation (median of --repeat), and the share of one core at the
  default 30 s interval (CPU per evaluation / 30).
- `shared`: the same number of rules over --shared-groups groups only (many
  rules per query: thresholds and metrics vary, windows and filters repeat).
- `ingest`: events/s of insert_events + build_rollups (the writer's work)
  for --ingest events, alone and with the evaluator looping back to back
  beside it in a thread (the server's arrangement, worst case: an interval
  of 0).

    python benchmarks/alerts_eval.py [--events 1000000] [--rules 1000] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine
from scale import AGENTS, event_chunks

from agentwatch.server.alerting import METRICS, WINDOWS, Evaluator
from agentwatch.store import open_store
from agentwatch.store.tables import INSERT_COLUMNS

COL = {c: i for i, c in enumerate(INSERT_COLUMNS)}
INTERVAL_S = 30.0


def runs_of(rows: list[tuple[Any, ...]], run_us: int) -> list[tuple[Any, ...]]:
    """Give every call a run: one per agent per run_us, with one task and model."""
    first: dict[tuple[str, int], tuple[str, str, str]] = {}
    out = []
    ia, it, im, its, itr = (
        COL["agent_name"],
        COL["task_name"],
        COL["model"],
        COL["ts"],
        COL["trace_id"],
    )
    for r in rows:
        key = (r[ia], r[its] // run_us)
        got = first.get(key)
        if got is None:
            got = first[key] = (r[it], r[im], str(uuid.uuid4()))
        row = list(r)
        row[it], row[im], row[itr] = got
        out.append(tuple(row))
    return out


def generate(db: str, n: int, days: float, run_minutes: float, seed: int) -> float:
    store = open_store(db)
    t0 = time.perf_counter()
    for rows in event_chunks(n, days, seed, int(time.time() * 1e6)):
        store.insert_events(runs_of(rows, int(run_minutes * 60e6)))
        while store.build_rollups():
            pass
    settle(store)
    store.close()
    return time.perf_counter() - t0


def settle(store: Any) -> None:
    """The writer's upkeep, done at once: build everything, recount the days
    written after they stopped being current, make the closed days' rows (a
    server does this in its first seconds)."""
    while store.build_rollups():
        pass
    while store.recount_dirty(0, 0) != -1:
        pass
    while store.close_days() != -1:
        pass


def make_rules(n: int, groups: int | None, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    filters: list[dict[str, str]] = [{}]
    filters += [{"agent_name": a} for a in AGENTS]
    filters += [{"task_name": t} for a in AGENTS for t in AGENTS[a][0]]
    filters += [{"model": m} for m in sorted({m for a in AGENTS for m in AGENTS[a][1]})]
    combos = [(w, f) for w in WINDOWS for f in filters]
    if groups is not None:
        combos = rng.sample(combos, groups)
    out = []
    for i in range(n):
        w, f = rng.choice(combos)
        out.append(
            {
                "name": f"rule-{i}",
                "metric": rng.choice(METRICS),
                "window": w,
                "operator": rng.choice([">", "<"]),
                "threshold": rng.choice([0.5, 10, 1000, 5, 2000]),
                "filters": f,
                "webhook_url": "http://127.0.0.1:9/none",
                "secret": None,
                "renotify_minutes": None,
            }
        )
    return out


def evaluate(store: Any, repeat: int) -> dict[str, Any]:
    ev = Evaluator(store, INTERVAL_S, "http://localhost:8787")
    ev.tick()  # the first: states are created, notifications queued
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        n = ev.tick()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    ev.stop()  # releases the lease for the next one
    c = statistics.median(cpu)
    return {
        "rules": n,
        "queries_per_evaluation": ev.last_queries,
        "cpu_s_per_evaluation": round(c, 4),
        "wall_s_per_evaluation": round(statistics.median(wall), 4),
        "cpu_ms_per_rule": round(1000 * c / max(1, n), 4),
        "core_share_at_30s": round(c / INTERVAL_S, 4),
    }


def load_rules(store: Any, rules: list[dict[str, Any]]) -> None:
    for r in store.list_alerts():
        store.delete_alert(r.id)
    for r in rules:
        store.add_alert(r)


def ingest_rate(store: Any, n: int, with_evaluator: bool, seed: int) -> float:
    stop = threading.Event()
    ev = Evaluator(store, 0.0, "http://localhost:8787")

    def loop() -> None:
        while not stop.is_set():
            ev.tick()

    th = threading.Thread(target=loop, daemon=True)
    if with_evaluator:
        th.start()
    done = 0
    t0 = time.perf_counter()
    for rows in event_chunks(n, 0.01, seed, int(time.time() * 1e6)):
        rows = runs_of(rows, 60_000_000)
        for i in range(0, len(rows), 1000):  # the server commits in batches
            store.insert_events(rows[i : i + 1000])
            store.build_rollups()
        done += len(rows)
    took = time.perf_counter() - t0
    stop.set()
    if with_evaluator:
        th.join()
    ev.stop()
    return done / took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--run-minutes", type=float, default=3.0)
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--shared-groups", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--ingest", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", help="database path to build once and reuse")
    a = p.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = a.keep or str(Path(tmp.name) / "alerts.db")
    gen_s = None
    if not Path(db).exists():
        gen_s = generate(db, a.events, a.days, a.run_minutes, a.seed)
    store = open_store(db)
    settle(store)
    out: dict[str, Any] = {
        "benchmark": "alerts_eval",
        "machine": machine(),
        "events": store.count_events(),
        "days": a.days,
        "generate_s": None if gen_s is None else round(gen_s, 1),
    }
    load_rules(store, make_rules(a.rules, None, a.seed))
    out["rules"] = evaluate(store, a.repeat)
    load_rules(store, make_rules(a.rules, a.shared_groups, a.seed))
    out["shared"] = evaluate(store, a.repeat)
    alone = ingest_rate(store, a.ingest, False, a.seed + 1)
    beside = ingest_rate(store, a.ingest, True, a.seed + 2)
    out["ingest"] = {
        "events": a.ingest,
        "events_per_s_alone": round(alone),
        "events_per_s_with_evaluator_looping": round(beside),
        "ratio": round(beside / alone, 3),
    }
    store.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
