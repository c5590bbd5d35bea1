"""Rollups agree with the raw events over arbitrary windows, through retries,
pruning and rebuilds."""

from __future__ import annotations

import math
import random
import time
from itertools import pairwise
from pathlib import Path

import pytest

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store.base import Filters
from agentwatch.store.rollups import (
    DAY_US,
    MINUTE_US,
    cover,
    decode_hist,
    encode_hist,
    merge_hist,
)

T0 = 1_780_000_000_000_000  # an arbitrary instant, microseconds
HOUR = 3_600_000_000


def make(rng: random.Random, n: int, t0: int = T0) -> list[Event]:
    out = []
    for i in range(n):
        ts = t0 + rng.randrange(0, 50 * HOUR)
        out.append(
            Event(
                id=f"e{i}",
                task_name=rng.choice("xy"),
                agent_name=rng.choice(["a", "b", "c"]),
                model=rng.choice(["gpt-4o", "m2"]),
                input_tokens=rng.randint(0, 900),
                output_tokens=rng.randint(0, 90),
                latency_ms=rng.lognormvariate(6, 0.7),
                status="error" if rng.random() < 0.2 else "success",
                kind="task" if rng.random() < 0.1 else "llm",
                timestamp=f"{ts / 1e6}",
            )
        )
    return out


def brute(events: list[dict], lo: int, hi: int, agent: str | None = None) -> dict:
    from datetime import datetime

    sel = []
    for e in events:
        ts = round(datetime.fromisoformat(e["timestamp"]).timestamp() * 1e6)
        if lo <= ts <= hi and e["kind"] == "llm" and (agent is None or e["agent_name"] == agent):
            sel.append(e)
    lat = sorted(e["latency_ms"] for e in sel)
    return {
        "n": len(sel),
        "errors": sum(e["status"] == "error" for e in sel),
        "cost": sum(e["cost_usd"] for e in sel),
        "tin": sum(e["input_tokens"] for e in sel),
        "p95": lat[math.ceil(0.95 * len(lat)) - 1] if lat else None,
    }


def check(store: SqlStore, rng: random.Random, t0: int, windows: int = 40) -> None:
    stored = store.query_events(Filters(), 1000, 0)
    offset = 1000
    while True:
        page = store.query_events(Filters(), 1000, offset)
        if not page:
            break
        stored += page
        offset += 1000
    for _ in range(windows):
        lo = t0 + rng.randrange(-HOUR, 52 * HOUR)
        hi = lo + rng.choice([59_000_000, 61 * 60_000_000, 5 * HOUR + 7, 60 * HOUR])
        agent = rng.choice([None, "b"])
        s = store.summary(lo, hi, Filters(agent_name=agent))
        b = brute(stored, lo, hi, agent)
        assert s.requests == b["n"] and s.errors == b["errors"]
        assert s.cost == pytest.approx(b["cost"], abs=1e-9)
        assert s.input_tokens == b["tin"]
        if b["p95"] is None:
            assert s.p95 is None
        else:
            assert s.p95 == pytest.approx(b["p95"], rel=0.0051)


# Old data (minute rows past their horizon: ragged ends read raw) and data of
# the last two days (minute rows used).
RECENT_T0 = (time.time_ns() // 1000 - 47 * HOUR) // 60_000_000 * 60_000_000 + 1234567


@pytest.mark.parametrize("t0", [T0, RECENT_T0], ids=["old", "recent"])
def test_rollups_match_raw_through_retries_prune_and_rebuild(tmp_path: Path, t0: int) -> None:
    rng = random.Random(11)
    store = open_store(str(tmp_path / "r.db"))
    try:
        evs = make(rng, 3000, t0)
        rows = to_rows(evs, PriceBook())
        for i in range(0, len(rows), 250):
            store.insert_events(rows[i : i + 250])
            if i % 1000 == 0:  # a retried batch must not count twice
                store.insert_events(rows[i : i + 250])
        check(store, rng, t0)
        minutes_before = minute_rows(store)
        store.prune_minute_rollups()  # only rows past the horizon go
        assert minute_rows(store) == minutes_before
        check(store, rng, t0)
        cut = t0 + 20 * HOUR + 17 * 60_000_000 + 123  # through an hour and a minute
        deleted = store.delete_events_before(cut)
        assert deleted > 0
        check(store, rng, t0)
        assert store.rebuild_rollups() == store.count_events()
        check(store, rng, t0)
    finally:
        store.close()


def minute_rows(store: SqlStore) -> list[tuple[int, int]]:
    with store.engine.connect() as conn:
        return sorted(
            (int(b), int(n))
            for b, n in conn.exec_driver_sql(
                "SELECT bucket, n FROM rollups WHERE width = ? AND agent_name <> ''", (MINUTE_US,)
            )
        )


def test_minute_rollups_are_kept_for_recent_data_only(tmp_path: Path) -> None:
    now = time.time_ns() // 1000
    store = open_store(str(tmp_path / "m.db"))
    try:
        ev = [
            Event(
                id=f"m{i}", task_name="t", agent_name="a", model="gpt-4o", timestamp=f"{ts / 1e6}"
            )
            for i, ts in enumerate([now - 10 * DAY_US, now - 3 * DAY_US, now - HOUR, now])
        ]
        store.insert_events(to_rows(ev, PriceBook()))
        kept = minute_rows(store)
        # Events older than the horizon (and its slack) get no minute row.
        assert [b for b, _ in kept] == sorted(t // MINUTE_US * MINUTE_US for t in (now - HOUR, now))
        # Rows that aged past the horizon are pruned; the rest stay.
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE rollups SET bucket = bucket - ? WHERE width = ? AND bucket = ?",  # + totals
                (3 * DAY_US, MINUTE_US, kept[0][0]),
            )
        assert store.prune_minute_rollups() == 2  # the agent's row and the totals row
        assert minute_rows(store) == kept[1:]
        s = store.summary(now - 11 * DAY_US, now, Filters())
        assert s.requests == 4
    finally:
        store.close()


def test_cover_pieces_tile_the_range() -> None:
    rng = random.Random(2)
    for _ in range(500):
        lo = rng.randrange(0, 10**13)
        hi = lo + rng.randrange(1, 10**11)
        horizon = rng.choice([None, lo + rng.randrange(-(10**10), 10**11)])
        pieces = cover(lo, hi, minutes_from=horizon)
        assert pieces[0].lo == lo and pieces[-1].hi == hi
        for a, b in pairwise(pieces):
            assert a.hi == b.lo
        for p in pieces:
            if p.unit:
                assert p.lo % p.unit == 0 and p.hi % p.unit == 0
            if p.unit == MINUTE_US and horizon is not None:
                assert p.lo >= horizon


def test_merge_hist_adds_counts_small_and_large() -> None:
    # Both code paths (plain dicts for small histograms, numpy for large).
    rng = random.Random(5)
    for _ in range(400):
        a = {rng.randrange(0, 2800): rng.randrange(1, 10**6) for _ in range(rng.randrange(0, 120))}
        b = {rng.randrange(0, 2800): rng.randrange(1, 10**6) for _ in range(rng.randrange(0, 120))}
        want = dict(a)
        for k, n in b.items():
            want[k] = want.get(k, 0) + n
        got = decode_hist(merge_hist(encode_hist(a), encode_hist(b)))
        assert got == want and list(got) == sorted(got)
