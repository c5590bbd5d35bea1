"""The events past the rollup watermark held in memory (store/unbuilt.py):
every metrics query answers as the SQL tail answers, and a change to stored
events (retention's deletes, reprice) is seen at the next query."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from agentwatch.pricing import PriceBook, Rates
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store.base import Filters, Totals

MINUTE = 60_000_000
HOUR = 60 * MINUTE


def make(rng: random.Random, n: int, now: int, span: int) -> list[Event]:
    out = []
    for _ in range(n):
        ts = now - rng.randrange(0, span)
        out.append(
            Event(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                agent_name=rng.choice(["a", "b", "c"]),
                task_name=rng.choice(["t1", "t2", "t3", "t4"]),
                model=rng.choice(["gpt-4o", "m2"]),
                user_id=rng.choice([None, "u1", "u2"]),
                session_id=rng.choice([None, "s1"]),
                input_tokens=rng.randint(0, 900),
                output_tokens=rng.randint(0, 90),
                latency_ms=rng.lognormvariate(6, 0.8),
                status="error" if rng.random() < 0.2 else "success",
                kind="task" if rng.random() < 0.1 else "llm",
                timestamp=f"{ts / 1e6}",
            )
        )
    return out


def same(a: Totals, b: Totals) -> None:
    assert (a.requests, a.errors, a.input_tokens, a.output_tokens) == (
        b.requests,
        b.errors,
        b.input_tokens,
        b.output_tokens,
    )
    assert a.cost == pytest.approx(b.cost, rel=1e-12, abs=1e-12)
    assert a.latency_sum == pytest.approx(b.latency_sum, rel=1e-12)
    assert (a.p50, a.p95) == (b.p50, b.p95)  # the same bins: the same percentiles


def compare(held: SqlStore, sql: SqlStore, rng: random.Random, now: int, rounds: int) -> None:
    for _ in range(rounds):
        hi = now - rng.randrange(0, 30 * MINUTE)
        lo = hi - rng.choice([MINUTE, 17 * MINUTE, HOUR + 7, 5 * HOUR])
        f = Filters(agent_name=rng.choice([None, "b"]), model=rng.choice([None, None, "m2"]))
        s1, s2 = held.summary(lo, hi, f), sql.summary(lo, hi, f)
        same(s1.llm, s2.llm)
        assert (s1.agents, s1.task_runs) == (s2.agents, s2.task_runs)
        width = rng.choice([MINUTE, 10 * MINUTE, HOUR])
        origin = lo // width * width - rng.choice([0, width])
        t1, t2 = held.timeseries(lo, hi, origin, width, f), sql.timeseries(lo, hi, origin, width, f)
        assert t1.keys() == t2.keys()
        for k in t1:
            same(t1[k], t2[k])
        group = rng.choice(["task_name", "model", "agent_name", "user_id", "session_id"])
        rest = group in ("user_id", "session_id")
        limit = rng.choice([None, 2])
        b1 = held.breakdown(group, lo, hi, f, rest, limit)
        b2 = sql.breakdown(group, lo, hi, f, rest, limit)
        assert [r.name for r in b1] == [r.name for r in b2]
        for r1, r2 in zip(b1, b2, strict=True):
            same(r1.totals, r2.totals)


def test_the_tail_held_in_memory_answers_as_the_sql_tail(tmp_path: Path) -> None:
    rng = random.Random(5)
    now = time.time_ns() // 1000
    held = open_store(str(tmp_path / "t.db"))
    sql = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    sql._unbuilt = None  # this one reads its tail in SQL, as PostgreSQL does
    try:
        rows = to_rows(make(rng, 4000, now, 6 * HOUR), PriceBook())
        held.insert_events(rows[:2000])
        held.build_rollups()
        compare(held, sql, rng, now, 10)  # nothing past the watermark
        for i in range(2000, 4000, 500):  # past the watermark, a batch at a time
            held.insert_events(rows[i : i + 500])
            compare(held, sql, rng, now, 8)
        assert held.pending_rollups()["events"] == 2000
        held.build_rollups(max_rows=700)  # the watermark inside what is held
        assert held.pending_rollups()["events"] == 1300
        compare(held, sql, rng, now, 10)
        held.build_rollups()  # the watermark passes what is held
        held.insert_events(to_rows(make(rng, 300, now, HOUR), PriceBook()))
        compare(held, sql, rng, now, 10)
    finally:
        held.close()
        sql.close()


def test_deleted_and_repriced_events_past_the_watermark_are_seen(tmp_path: Path) -> None:
    rng = random.Random(9)
    now = time.time_ns() // 1000
    db = tmp_path / "g.db"
    held = open_store(str(db))
    sql = SqlStore(f"sqlite:///{db}")
    sql._unbuilt = None
    try:
        held.insert_events(to_rows(make(rng, 1500, now, 3 * HOUR), PriceBook()))
        lo, hi, f = now - 4 * HOUR, now, Filters()
        before = held.summary(lo, hi, f).llm  # loads the tail: nothing is built
        assert held.pending_rollups()["events"] == 1500
        # Retention's delete (another store object: another process's writer).
        assert sql.delete_events_before(now - 90 * MINUTE) > 0
        after = held.summary(lo, hi, f).llm
        assert after.requests < before.requests
        same(after, sql.summary(lo, hi, f).llm)
        # Reprice every call at twice a flat rate: the held costs are stale.
        flat = Rates(input=6.0, output=30.0, cache_read=6.0, cache_write=6.0, source="user")
        got = sql.reprice(lambda model, provider: flat, lo)
        assert got.changed > 0
        repriced = held.summary(lo, hi, f).llm
        same(repriced, sql.summary(lo, hi, f).llm)
        assert repriced.cost != pytest.approx(after.cost)
        # Its days are dirty (read raw) until recounted; after, the tail answers again.
        while sql.recount_dirty(quiet_us=0) != -1:
            pass
        pending = held.pending_rollups()
        assert pending["dirty_days"] == 0 and pending["events"] > 0  # still past the watermark
        same(held.summary(lo, hi, f).llm, repriced)
    finally:
        held.close()
        sql.close()


def test_an_older_snapshot_sees_only_its_own_events(tmp_path: Path) -> None:
    """Two threads of one process share what is held; one whose snapshot began
    before the other's last sync gets the held events up to its own newest."""
    rng = random.Random(3)
    now = time.time_ns() // 1000
    store = open_store(str(tmp_path / "o.db"))
    try:
        store.insert_events(to_rows(make(rng, 400, now, HOUR), PriceBook()))
        assert store._unbuilt is not None
        with store._snapshot() as old:
            first = store._unbuilt.columns(old, 0)  # the snapshot begins here
            assert first is not None and len(first["seq"]) == 400
            store.insert_events(to_rows(make(rng, 250, now, HOUR), PriceBook()))
            assert store.summary(now - 2 * HOUR, now, Filters()).llm.requests > 0  # syncs to 650
            again = store._unbuilt.columns(old, 0)
            assert again is not None and len(again["seq"]) == 400
        with store._snapshot() as new:
            latest = store._unbuilt.columns(new, 0)
            assert latest is not None and len(latest["seq"]) == 650
    finally:
        store.close()
