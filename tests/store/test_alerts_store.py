"""Alert storage (store/alerts.py): the calls-per-run pre-aggregate the build
hook keeps, its recount by migration 11 on an upgraded database, and the
evaluator lease. Both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import open_store
from agentwatch.store.base import Filters
from agentwatch.store.tables import schema_version

NOW = datetime.now(UTC)


def calls(run: str | None, n: int, agent: str = "a", age_s: float = 30) -> list[Event]:
    return [
        Event(
            id=str(uuid.uuid4()),
            task_name="t",
            agent_name=agent,
            model="gpt-4o",
            trace_id=run,
            timestamp=(NOW - timedelta(seconds=age_s)).isoformat(),
        )
        for _ in range(n)
    ]


def test_calls_per_run_from_the_build_hook_and_migration_11(db_url: str) -> None:
    store = open_store(db_url)
    prices = PriceBook()
    r1, r2 = str(uuid.uuid4()), str(uuid.uuid4())
    evs = (
        calls(r1, 7)
        + calls(r2, 3, agent="b")
        + calls(None, 20)
        + calls(r2, 2, agent="b", age_s=7200)
    )
    store.insert_events(to_rows(evs, prices))
    lo = int((NOW - timedelta(minutes=5)).timestamp() * 1e6)
    hi = int(NOW.timestamp() * 1e6)
    # Not built yet: the pre-aggregate has none of them.
    assert store.max_calls_per_run(lo, hi, Filters()) is None
    while store.build_rollups():
        pass
    assert store.max_calls_per_run(lo, hi, Filters()) == 7
    assert store.max_calls_per_run(lo, hi, Filters(agent_name="b")) == 3
    assert store.max_calls_per_run(lo, hi, Filters(agent_name="nobody")) is None
    day = int((NOW - timedelta(hours=3)).timestamp() * 1e6)
    assert store.max_calls_per_run(day, hi, Filters(agent_name="b")) == 5
    # A database from before migration 11: the table is recounted from the
    # events the rollups hold, not added to.
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE alert_run_calls"))
        conn.execute(delete(schema_version).where(schema_version.c.version == 11))
    assert 11 in store.migrate()
    assert store.max_calls_per_run(lo, hi, Filters()) == 7
    assert store.max_calls_per_run(day, hi, Filters(agent_name="b")) == 5
    assert 11 not in store.migrate()  # once
    assert store.max_calls_per_run(lo, hi, Filters()) == 7
    store.close()


def test_lease_one_holder_until_it_expires_or_is_released(db_url: str) -> None:
    store = open_store(db_url)
    assert store.take_alert_lease("a", 60_000_000)
    assert not store.take_alert_lease("b", 60_000_000)
    assert store.take_alert_lease("a", 60_000_000)  # renewed
    assert store.commit_alert_evaluation("a", 60_000_000, [])
    assert not store.commit_alert_evaluation("b", 60_000_000, [])
    store.release_alert_lease("a")
    assert store.take_alert_lease("b", 1)  # released: free at once; b's lease lasts 1 us
    assert store.take_alert_lease("a", 60_000_000)  # b's ran out
    assert not store.commit_alert_evaluation("b", 60_000_000, [])
    store.close()
