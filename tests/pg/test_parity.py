"""The same events in SQLite and in PostgreSQL give the same answers to every
query of the store (the one query layer, two dialects)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwatch.pricing import PriceBook
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store.base import DIMENSIONS, Filters
from tests.store.test_rollups import HOUR, T0, make

pytestmark = pytest.mark.postgres


def _all(store: SqlStore, f: Filters) -> list[dict]:
    out: list[dict] = []
    while page := store.query_events(f, 1000, len(out)):
        out += page
    return out


def assert_same_answers(
    a: SqlStore, b: SqlStore, rng: random.Random, exact_order: bool = True
) -> None:
    """Every kind of query, over random windows and filters, answered alike."""
    ea, eb = _all(a, Filters()), _all(b, Filters())
    if exact_order:
        assert ea == eb
    else:  # ties in ts may be broken by a different seq after a partial copy
        assert sorted(ea, key=lambda e: e["id"]) == sorted(eb, key=lambda e: e["id"])
    for f in (Filters(agent_name="b"), Filters(kind="task"), Filters(status="error", model="m2")):
        assert len(_all(a, f)) == len(_all(b, f))
    for _ in range(25):
        lo = T0 + rng.randrange(-HOUR, 52 * HOUR)
        hi = lo + rng.choice([59_000_000, 61 * 60_000_000, 5 * HOUR + 7, 60 * HOUR])
        f = Filters(agent_name=rng.choice([None, "b"]), model=rng.choice([None, "gpt-4o"]))
        sa, sb = a.summary(lo, hi, f), b.summary(lo, hi, f)
        assert _close(sa, sb)
        bucket = rng.choice([60_000_000, 7 * 60_000_000, HOUR, 6 * HOUR])
        origin = lo - lo % bucket
        assert _close(
            a.timeseries(lo, hi, origin, bucket, f), b.timeseries(lo, hi, origin, bucket, f)
        )
        for g in DIMENSIONS:
            assert _close(a.breakdown(g, lo, hi, f), b.breakdown(g, lo, hi, f))
        assert a.first_timestamp_us(f) == b.first_timestamp_us(f)


def _close(x: object, y: object) -> bool:
    """Equal, except float sums may differ in the last bits (summed in another order)."""
    if hasattr(x, "__slots__") and not isinstance(x, (dict, list)):
        x = {k: getattr(x, k) for k in x.__slots__}  # type: ignore[attr-defined]
        y = {k: getattr(y, k) for k in y.__slots__}  # type: ignore[attr-defined]
    if isinstance(x, dict) and isinstance(y, dict):
        assert x.keys() == y.keys(), (x.keys(), y.keys())
        return all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        assert len(x) == len(y)
        return all(_close(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, float) and isinstance(y, float):
        assert x == pytest.approx(y, rel=1e-12, abs=1e-12)
        return True
    assert x == y and type(x) is type(y), (x, y)
    return True


@pytest.fixture
def both(pg_url: str, tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    a, b = open_store(str(tmp_path / "p.db")), open_store(pg_url)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_same_events_same_answers(both: tuple[SqlStore, SqlStore]) -> None:
    a, b = both
    rng = random.Random(3)
    rows = to_rows(make(rng, 3000), PriceBook())
    for i in range(0, len(rows), 400):
        # Each batch overlaps the previous one (part retried, part new), then
        # is retried whole: only new rows are stored and counted.
        batch = rows[max(0, i - 100) : i + 400]
        for s in (a, b):
            assert s.insert_events(batch).inserted == len(rows[i : i + 400])
            assert s.insert_events(batch).inserted == 0
    assert_same_answers(a, b, rng)
    cut = T0 + 20 * HOUR + 17 * 60_000_000 + 123
    assert a.delete_events_before(cut) == b.delete_events_before(cut) > 0
    assert_same_answers(a, b, rng)
