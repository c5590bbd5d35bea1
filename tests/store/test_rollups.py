"""Rollups agree with the raw events over arbitrary windows, in every state:
events not yet built, built, old days dirty and recounted, through retries,
pruning, retention, rebuilds and the cardinality guard."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store import rollups as ru
from agentwatch.store.base import BreakdownRow, Filters
from agentwatch.store.rollups import DAY_US, MINUTE_US, cover
from agentwatch.store.sketch import decode_hist, decode_many, encode_hist

T0 = 1_780_000_000_000_000  # an arbitrary instant, microseconds
HOUR = 3_600_000_000


def make(
    rng: random.Random, n: int, t0: int = T0, tasks: Any = "xy", span: int = 50 * HOUR
) -> list[Event]:
    out = []
    for i in range(n):
        ts = t0 + rng.randrange(0, span)
        out.append(
            Event(
                id=f"e{i}",
                task_name=rng.choice(tasks),
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


def _ts(e: dict[str, Any]) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(e["timestamp"]).timestamp() * 1e6)


def brute(events: list[dict], lo: int, hi: int, agent: str | None = None) -> dict:
    sel = [
        e
        for e in events
        if lo <= _ts(e) <= hi and e["kind"] == "llm" and (agent is None or e["agent_name"] == agent)
    ]
    lat = sorted(e["latency_ms"] for e in sel)
    by_task: dict[str, int] = {}
    for e in sel:
        by_task[e["task_name"]] = by_task.get(e["task_name"], 0) + 1
    return {
        "n": len(sel),
        "errors": sum(e["status"] == "error" for e in sel),
        "cost": sum(e["cost_usd"] for e in sel),
        "tin": sum(e["input_tokens"] for e in sel),
        "p95": lat[math.ceil(0.95 * len(lat)) - 1] if lat else None,
        "by_task": by_task,
    }


def all_events(store: SqlStore) -> list[dict]:
    out: list[dict] = []
    while True:
        page = store.query_events(Filters(), 1000, len(out))
        if not page:
            return out
        out += page


def check(store: SqlStore, rng: random.Random, t0: int, windows: int = 30) -> None:
    stored = all_events(store)
    for _ in range(windows):
        lo = t0 + rng.randrange(-HOUR, 52 * HOUR)
        hi = lo + rng.choice([59_000_000, 61 * 60_000_000, 5 * HOUR + 7, 60 * HOUR])
        agent = rng.choice([None, "b"])
        s = store.summary(lo, hi, Filters(agent_name=agent)).llm
        b = brute(stored, lo, hi, agent)
        assert s.requests == b["n"] and s.errors == b["errors"]
        assert s.cost == pytest.approx(b["cost"], abs=1e-9)
        assert s.input_tokens == b["tin"]
        if b["p95"] is None:
            assert s.p95 is None
        else:
            assert s.p95 == pytest.approx(b["p95"], rel=0.0051)
        rows = store.breakdown("task_name", lo, hi, Filters(agent_name=agent))
        assert {r.name: r.totals.requests for r in rows} == b["by_task"]
        width = rng.choice([MINUTE_US, 10 * MINUTE_US, HOUR, 2 * HOUR])
        origin = lo // width * width
        series = store.timeseries(lo, hi, origin, width, Filters(agent_name=agent))
        assert sum(v.requests for v in series.values()) == b["n"]


# Old data (minute rows past their horizon: ragged ends read raw; days before
# yesterday made dirty and recounted) and data of the last two days.
RECENT_T0 = (time.time_ns() // 1000 - 47 * HOUR) // 60_000_000 * 60_000_000 + 1234567


@pytest.mark.parametrize("t0", [T0, RECENT_T0], ids=["old", "recent"])
def test_rollups_match_raw_in_every_state(tmp_path: Path, t0: int) -> None:
    rng = random.Random(11)
    store = open_store(str(tmp_path / "r.db"))
    try:
        rows = to_rows(make(rng, 3000, t0), PriceBook())
        for i in range(0, len(rows), 250):
            store.insert_events(rows[i : i + 250])
            if i % 1000 == 0:  # a retried batch must not count twice
                store.insert_events(rows[i : i + 250])
            if i == 1000:  # part built, part not
                store.build_rollups()
        check(store, rng, t0)  # the last batches are past the watermark
        while store.build_rollups():
            pass
        assert store.pending_rollups()["events"] == 0
        check(store, rng, t0)  # old days are dirty: read raw
        while store.recount_dirty(quiet_us=0) != -1:
            pass
        assert store.pending_rollups() == {"events": 0, "dirty_days": 0}
        check(store, rng, t0)  # everything from rollups and raw edges
        while store.close_days() != -1:  # yesterday's day rows, made from its hours
            pass
        check(store, rng, t0)
        store.insert_events(rows[:500])  # retried after the build: still once
        store.build_rollups()
        check(store, rng, t0)
        minutes_before = minute_rows(store)
        store.prune_minute_rollups()  # only rows past the horizon go
        assert minute_rows(store) == minutes_before
        cut = t0 + 20 * HOUR + 17 * 60_000_000 + 123  # through an hour and a minute
        assert store.delete_events_before(cut) > 0
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
                "SELECT bucket, n FROM rollups WHERE unit = ? AND stype = ?",
                (ru.MINUTE, ru.TOTAL),
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
        store.build_rollups()
        while store.recount_dirty(quiet_us=0) != -1:
            pass
        kept = minute_rows(store)
        # Events older than the horizon (and its slack) get no minute row.
        assert [b for b, _ in kept] == sorted(t // MINUTE_US * MINUTE_US for t in (now - HOUR, now))
        # Rows that aged past the horizon are pruned; the rest stay.
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE rollups SET bucket = bucket - ? WHERE unit = ? AND bucket = ?",
                (3 * DAY_US, ru.MINUTE, kept[0][0]),
            )
        # Its totals row, and any series rows it kept (one event: too sparse
        # to keep any once the minute closed, so read raw).
        assert store.prune_minute_rollups() == 1
        assert minute_rows(store) == kept[1:]
        s = store.summary(now - 11 * DAY_US, now, Filters()).llm
        assert s.requests == 4
    finally:
        store.close()


def test_old_dated_events_make_their_day_dirty_until_recounted(tmp_path: Path) -> None:
    """An import into past days is not folded event by event: the day is
    marked dirty, read raw meanwhile, and recounted whole."""
    now = time.time_ns() // 1000
    store = open_store(str(tmp_path / "d.db"))
    try:
        old = now - 10 * DAY_US
        ev = [
            Event(id=f"d{i}", task_name="t", agent_name="a", model="gpt-4o", timestamp=f"{t / 1e6}")
            for i, t in enumerate([old, old + 1, now])
        ]
        store.insert_events(to_rows(ev, PriceBook()))
        store.build_rollups()
        day = old - old % DAY_US
        with store.engine.connect() as conn:
            assert set(ru.dirty_days(conn)) == {day}
            # Nothing of that day in the rollups yet; today's event is.
            n = conn.exec_driver_sql(
                "SELECT count(*) FROM rollups WHERE bucket >= ? AND bucket < ?",
                (day, day + DAY_US),
            ).scalar()
        assert n == 0
        assert store.summary(now - 11 * DAY_US, now, Filters()).llm.requests == 3
        # Not recounted while events keep arriving for it (quiet for 2 s first).
        assert store.recount_dirty() == -1
        assert store.recount_dirty(quiet_us=0) == day
        with store.engine.connect() as conn:
            assert ru.dirty_days(conn) == {}
        assert store.summary(now - 11 * DAY_US, now, Filters()).llm.requests == 3
    finally:
        store.close()


def test_cardinality_guard_gives_up_a_bucket_and_stays_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Task names that hold ids: past MAX_KEYS distinct values in a bucket,
    that series type gives the bucket up and queries read it raw."""
    monkeypatch.setattr(ru, "MAX_KEYS", 50)
    rng = random.Random(3)
    t0 = (time.time_ns() // 1000 - 3 * HOUR) // HOUR * HOUR
    store = open_store(str(tmp_path / "g.db"))
    try:
        tasks = [f"ticket-{i}" for i in range(400)]
        rows = to_rows(make(rng, 2000, t0, tasks=tasks, span=HOUR // 3), PriceBook())
        for i in range(0, len(rows), 300):
            store.insert_events(rows[i : i + 300])
            store.build_rollups()
        with store.engine.connect() as conn:
            over = {
                (int(u), int(s), int(b))
                for u, s, b in conn.exec_driver_sql(
                    "SELECT unit, stype, bucket FROM rollup_raw WHERE many_keys = 1"
                )
            }
            kept = conn.exec_driver_sql(
                "SELECT count(*) FROM rollups WHERE stype = ? AND unit = ?", (ru.TASK, ru.HOUR)
            ).scalar()
        # The task series gave up its hour (and the pairs with tasks; the open
        # day has no day rows yet); agents and models (3 and 2 values) are kept.
        assert {(u, s) for u, s, _ in over} >= {(ru.HOUR, ru.TASK)}
        assert {s for _, s, _ in over} <= {ru.TASK, ru.AGENT_TASK, ru.TASK_MODEL}
        assert kept == 0
        check(store, rng, t0 - HOUR, windows=15)
    finally:
        store.close()


def _rounded(row: BreakdownRow) -> dict[str, Any]:
    fields = {"name": row.name, **asdict(row.totals)}
    return {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in fields.items()}


@pytest.mark.parametrize("guard", [50, 30000], ids=["raw", "rollups"])
def test_a_limited_breakdown_is_the_head_of_the_full_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guard: int
) -> None:
    """With a limit, the percentiles are read for the groups shown only; the
    rows (totals, percentiles, order) are exactly the full breakdown's first,
    whether the task series is read raw (past the guard) or from rollups."""
    monkeypatch.setattr(ru, "MAX_KEYS", guard)
    rng = random.Random(8)
    t0 = (time.time_ns() // 1000 - 3 * HOUR) // HOUR * HOUR
    store = open_store(str(tmp_path / "l.db"))
    try:
        tasks = [f"ticket-{i}" for i in range(300)]
        rows = to_rows(make(rng, 3000, t0, tasks=tasks, span=2 * HOUR), PriceBook())
        store.insert_events(rows[:2000])
        store.build_rollups()
        store.insert_events(rows[2000:])  # a tail past the watermark too
        lo, hi = t0 - HOUR, t0 + 3 * HOUR
        for f in (Filters(), Filters(agent_name="b")):
            full = store.breakdown("task_name", lo, hi, f)
            assert len(full) > 100
            for limit in (1, 7, 100):
                head = store.breakdown("task_name", lo, hi, f, limit=limit)
                # (sums of floats may be added in another order: equal to 1e-9)
                assert [_rounded(r) for r in head] == [_rounded(r) for r in full[:limit]]
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
            if p.unit is not None:
                w = ru.WIDTH_US[p.unit]
                assert p.lo % w == 0 and p.hi % w == 0
            if p.unit == ru.MINUTE and horizon is not None:
                assert p.lo >= horizon


def test_histogram_codec_round_trips() -> None:
    rng = random.Random(5)
    for _ in range(200):
        h = {rng.randrange(0, 2800): rng.randrange(1, 10**6) for _ in range(rng.randrange(0, 120))}
        blob = encode_hist(h)
        assert decode_hist(blob) == h and list(decode_hist(blob)) == sorted(h)
        lens, _bins, counts = decode_many([blob, blob])
        assert list(lens) == [len(h), len(h)] and int(counts.sum()) == 2 * sum(h.values())


@pytest.mark.parametrize(
    ("span", "group"),
    [(DAY_US, "task_name"), (HOUR, "task_name"), (HOUR, "model")],
    ids=["24h-task", "1h-task", "1h-model"],
)
def test_live_buckets_are_read_whole_when_all_their_events_are_inside(
    tmp_path: Path, span: int, group: str
) -> None:
    """Live traffic sits in the current hour and day: a 24-hour or 1-hour
    breakdown for one agent reads those buckets' pair rows whole, not minutes
    and raw events (the totals row's min_ts/max_ts show every event is
    inside). A 1-hour window always spans two clock hours: both are taken
    whole, the raw piece between them cut at the hour."""
    now = time.time_ns() // 1000
    store = open_store(str(tmp_path / "w.db"))
    try:
        ev = [
            Event(
                id=f"w{i}",
                task_name=f"t{i % 7}",
                agent_name="a",
                model="gpt-4o",
                timestamp=f"{(now - 1000 * i) / 1e6}",
            )
            for i in range(400)
        ]
        store.insert_events(to_rows(ev, PriceBook()))
        store.build_rollups()
        with store.engine.connect() as conn:
            ref = store.names.find_ref(conn, "a")
            assert ref is not None
            plan = ru.plan(conn, now - span, now + 1, {"agent_name": ref}, group, None, 0)
        assert plan.raw == []  # nothing read raw
        assert plan.rollup_pieces and {p.unit for p in plan.rollup_pieces} <= {ru.DAY, ru.HOUR}
        rows = store.breakdown(group, now - span, now, Filters(agent_name="a"))
        assert sum(r.totals.requests for r in rows) == 400
        if group == "task_name":
            assert {r.name: r.totals.requests for r in rows} == {
                f"t{k}": len(range(k, 400, 7)) for k in range(7)
            }
    finally:
        store.close()


def test_a_closed_day_gets_day_rows_equal_to_its_hours(tmp_path: Path) -> None:
    """Builds count the open day in its hours only; once the day has closed
    its day rows are made from those hours, and answer exactly as they did."""
    now = time.time_ns() // 1000
    yesterday = now - now % DAY_US - DAY_US
    rng = random.Random(7)
    store = open_store(str(tmp_path / "c.db"))
    try:
        rows = to_rows(make(rng, 2000, yesterday, span=DAY_US - 1), PriceBook())
        store.insert_events(rows)
        store.build_rollups()
        with store.engine.connect() as conn:
            n = conn.exec_driver_sql(
                "SELECT count(*) FROM rollups WHERE unit = ? AND bucket = ?", (ru.DAY, yesterday)
            ).scalar()
        assert n == 0  # open (it is still "current"): no day rows
        before = store.breakdown("task_name", yesterday, yesterday + DAY_US - 1, Filters())
        assert store.close_days() == yesterday
        with store.engine.connect() as conn:
            day = dict(
                conn.exec_driver_sql(
                    "SELECT stype, sum(n) FROM rollups WHERE unit = ? AND bucket = ? "
                    "AND kind = 0 GROUP BY stype",
                    (ru.DAY, yesterday),
                ).all()
            )
            with_plan = ru.plan(conn, yesterday, yesterday + DAY_US, {}, "task_name", None, 0)
        llm = sum(1 for r in rows if r[15] == "llm")
        assert day[ru.TOTAL] == llm and day[ru.TASK] == llm
        assert [p.unit for p in with_plan.rollup_pieces] == [ru.DAY] and with_plan.raw == []
        after = store.breakdown("task_name", yesterday, yesterday + DAY_US - 1, Filters())
        exact = ("requests", "errors", "input_tokens", "p50", "p95")
        assert [(r.name, *(getattr(r.totals, k) for k in exact)) for r in after] == [
            (r.name, *(getattr(r.totals, k) for k in exact)) for r in before
        ]
        assert [r.totals.cost for r in after] == pytest.approx([r.totals.cost for r in before])
        assert store.close_days() == -1  # today is open
    finally:
        store.close()
