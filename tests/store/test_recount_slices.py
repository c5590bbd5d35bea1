"""A dirty day recounted in slices (one transaction each, rows read a few at a
time) ends with the rollup rows of a recount of the whole day at once and of
`rebuild_rollups`, on both backends: events on slice and minute boundaries,
the density rule and the cardinality guard included, after a restart midway,
and with events arriving for the day between slices.

The same rows, and the same values to the last bit for every row below a day.
Day rows: a day recounted in one slice makes them from its events, one in
several slices from its hour rows, so their two float sums (cost, latency)
are added in another order and may differ in the last bits; every count,
token sum, histogram and raw mark is exactly the same."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store import rollups as ru
from agentwatch.store.base import Filters

HOUR = ru.HOUR_US
NOW = time.time_ns() // 1000
# An old day (no minute rows) and the day before yesterday (old too, so
# dirty, but partly inside the minute rows' horizon).
OLD = (NOW // ru.DAY_US - 9) * ru.DAY_US
RECENT = (NOW // ru.DAY_US - 2) * ru.DAY_US


def events(rng: random.Random, day: int, n: int, prefix: str) -> list[Event]:
    out = []
    stamps = [day + rng.randrange(0, ru.DAY_US) for _ in range(n)]
    # On the edges of hours, minutes and the day itself.
    stamps += [day, day + ru.DAY_US - 1, day + 3 * HOUR, day + 3 * HOUR - 1]
    stamps += [day + 7 * HOUR + 30 * ru.MINUTE_US + k for k in range(25)]  # one busy minute
    stamps += [day + 11 * HOUR + k * ru.MINUTE_US // 7 for k in range(60)]  # a dense hour
    for i, ts in enumerate(stamps):
        out.append(
            Event(
                id=f"{prefix}{i}",
                # Many task names: sparse buckets (the density rule) and, with
                # MAX_KEYS lowered below, buckets with too many values.
                task_name=rng.choice(["plan", "act"]) if i % 3 else f"t{rng.randrange(40)}",
                agent_name=rng.choice(["a", "b", "c"]),
                model=rng.choice(["gpt-4o", "m2"]),
                input_tokens=rng.randint(0, 900),
                output_tokens=rng.randint(0, 90),
                latency_ms=rng.lognormvariate(6, 0.7),
                cost_usd=rng.random() / 7 if i % 2 else None,
                status="error" if rng.random() < 0.2 else "success",
                kind="task" if rng.random() < 0.1 else "llm",
                provider=rng.choice([None, "openai"]),
                timestamp=f"{ts / 1e6}",
            )
        )
    return out


FLOATS = ("cost", "latency_sum")
COLS = ("unit", "kind", "stype", "bucket", "v1", "v2", "n", "errors", *FLOATS)
COLS += ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
COLS += ("reasoning_tokens", "hist", "min_ts", "max_ts")


def snapshot(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row and every raw mark, in key order, histograms as bytes."""
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT {', '.join(COLS)} FROM rollups ORDER BY unit, kind, stype, bucket, v1, v2"
        ).all()
        marks = conn.exec_driver_sql("SELECT * FROM rollup_raw ORDER BY unit, stype, bucket").all()
        dirty = conn.exec_driver_sql("SELECT day FROM rollup_dirty").all()
    return {
        "rollups": [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows],
        "raw": [tuple(r) for r in marks],
        "dirty": [tuple(r) for r in dirty],
    }


def same(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> None:
    """The same rows; day rows' float sums to 1e-12 (see the module docstring)."""
    assert a["raw"] == b["raw"] and a["dirty"] == b["dirty"]
    assert len(a["rollups"]) == len(b["rollups"])
    fl = [COLS.index(f) for f in FLOATS]
    for x, y in zip(a["rollups"], b["rollups"], strict=True):
        if x[0] != ru.DAY:
            assert x == y
            continue
        assert [v for i, v in enumerate(x) if i not in fl] == [
            v for i, v in enumerate(y) if i not in fl
        ]
        assert [x[i] for i in fl] == pytest.approx([y[i] for i in fl], rel=1e-12, abs=1e-12)


def recount_in_slices(store: SqlStore, day: int, slice_rows: int, fetch: int) -> tuple[int, int]:
    """Step through one dirty day's recount; (slices, events read)."""
    slices = total = 0
    while True:
        with store._write() as conn:
            done, n = ru.recount_step(conn, day, slice_rows=slice_rows, fetch=fetch)
        store.checkpoint()
        total += n
        if done:
            return slices, total
        slices += 1


@pytest.fixture
def loaded(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(ru, "MAX_KEYS", 12)  # so that some buckets hold too many values
    # The clock stands still: the minute rows' horizon runs through RECENT,
    # and a horizon that moves between two recounts would give them
    # different minute rows (an event or two crossing it in a few seconds).
    # A still clock also means marks of a day in the same microsecond,
    # which a recount under way must still see (the late-event test).
    monkeypatch.setattr(ru, "now_us", lambda: NOW)
    store = open_store(db_url)
    rng = random.Random(5)
    rows = to_rows(events(rng, OLD, 600, "o") + events(rng, RECENT, 300, "r"), PriceBook())
    for i in range(0, len(rows), 200):
        store.insert_events(rows[i : i + 200])
    store.build_rollups()
    with store.engine.connect() as conn:
        assert set(ru.dirty_days(conn)) == {OLD, RECENT}
    try:
        yield store, len(rows)
    finally:
        store.close()


def test_slices_equal_the_whole_day_and_the_rebuild(loaded: Any) -> None:
    store, n = loaded
    # Slices of about 40 events (hours of ~25 events each: one or two hours a
    # slice), rows read 7 at a time: chunks end inside minutes and hours.
    read = 0
    for day in (OLD, RECENT):
        slices, got = recount_in_slices(store, day, slice_rows=40, fetch=7)
        assert slices > 10
        read += got
    assert read == n
    sliced = snapshot(store)
    assert sliced["dirty"] == []
    assert any(r[0] == ru.MINUTE for r in sliced["rollups"])  # (the recent day's minutes)
    assert any(r[0] == ru.DAY for r in sliced["rollups"])
    assert any(m[5] for m in sliced["raw"]) and any(not m[5] for m in sliced["raw"])
    # The whole day at once, in one transaction, everything in one read.
    for day in (OLD, RECENT):
        with store._write() as conn:
            assert ru.recount_day(conn, day, fetch=10**6) > 0
    whole = snapshot(store)
    same(whole, sliced)
    # Slices of whole hours, one transaction each, rows read 7 at a time:
    # the same rows, to the last bit.
    for day in (OLD, RECENT):
        with store._write() as conn:
            ru.mark_dirty(conn, [day], ru.now_us())
        recount_in_slices(store, day, slice_rows=1, fetch=7)
    assert snapshot(store) == sliced
    assert store.rebuild_rollups() == n  # (each day in one slice)
    assert snapshot(store) == whole
    everything = store.query_events(Filters(), 10_000, 0)
    s = store.summary(OLD - 1, NOW, Filters())
    assert s.llm.requests == sum(1 for e in everything if e["kind"] == "llm") > 0


def test_a_recount_cut_short_goes_on_after_a_restart(loaded: Any, db_url: str) -> None:
    store, _ = loaded
    recount_in_slices(store, RECENT, slice_rows=40, fetch=7)
    for _ in range(5):  # five slices of the old day, then the server stops
        with store._write() as conn:
            done, _n = ru.recount_step(conn, OLD, slice_rows=40, fetch=7)
        assert not done
    store.close()
    again = open_store(db_url)
    try:
        with again.engine.connect() as conn:
            upto = ru.recount_progress(conn, OLD)
            assert upto is not None and OLD < upto < OLD + ru.DAY_US
        left = count_day(again, upto, OLD + ru.DAY_US)
        # Resumed where it stopped: only the hours after it are read again.
        _, read = recount_in_slices(again, OLD, slice_rows=40, fetch=7)
        assert read == left
        resumed = snapshot(again)
        with again.engine.connect() as conn:
            assert ru.recount_progress(conn, OLD) is None
        again.rebuild_rollups()
        same(snapshot(again), resumed)
    finally:
        again.close()


def test_events_for_the_day_between_slices_start_it_over(loaded: Any) -> None:
    store, n = loaded
    recount_in_slices(store, RECENT, slice_rows=40, fetch=7)
    for _ in range(6):
        with store._write() as conn:
            ru.recount_step(conn, OLD, slice_rows=40, fetch=7)
    # A late event for an hour already recounted: the build marks the day
    # touched again, and the recount starts over instead of missing it.
    late = Event(id="late", task_name="plan", agent_name="a", model="m2", timestamp=f"{OLD / 1e6}")
    store.insert_events(to_rows([late], PriceBook()))
    store.build_rollups()
    _, read = recount_in_slices(store, OLD, slice_rows=40, fetch=7)
    assert read == count_day(store, OLD)
    after = snapshot(store)
    assert after["dirty"] == []
    assert store.rebuild_rollups() == n + 1
    same(snapshot(store), after)


def count_day(store: SqlStore, lo: int, hi: int | None = None) -> int:
    """Events with lo <= ts < hi (a whole day from lo by default)."""
    hi = lo + ru.DAY_US if hi is None else hi
    return len(store.query_events(Filters(since_us=lo, until_us=hi - 1), 10_000, 0))
