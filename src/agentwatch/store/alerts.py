"""Alert rules, their state, history and delivery queue (issue 13).

Tables, all reached only through the functions here (SqlStore delegates):

- `alert_rules`: what a user declared (metric, window, operator, threshold,
  filters, webhook, secret).
- `alert_state`: one row per rule, what the evaluator last concluded: the
  state, its value, and what was last *notified* (so that a restart, or
  another server taking over, neither re-fires nor forgets a firing alert).
- `alert_history`: every state change and every delivery attempt.
- `alert_deliveries`: the queue of notifications to POST, with their next
  attempt time; any server's delivery worker claims a due row for a while
  (`claimed_until`) before sending, so two servers never send one row twice.
- `alert_run_calls`: a pre-aggregate, LLM calls per run per minute and
  (agent, task, model), kept in step with the rollups by a build hook
  (`fold_run_calls`, registered in rollups.BUILD_HOOKS at import) so that
  `calls_per_run` never scans raw events.
- `alert_lease`: one row naming the server that evaluates, until when. A
  server evaluates only while it holds an unexpired lease; when it dies the
  lease runs out and another takes it. Every state write re-checks the lease
  in its own transaction (the row lock serializes servers on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from agentwatch.clock import now_us
from agentwatch.store import rollups as ru
from agentwatch.store.codec import NameCache
from agentwatch.store.tables import KIND_CODES, metadata

MINUTE_US = 60_000_000
# calls_per_run rows older than this are pruned: the longest window is a month.
RUN_CALLS_KEEP_US = 32 * 86_400 * 1_000_000

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("time_window", String(8), nullable=False),  # "window" is reserved in SQL
    Column("operator", String(2), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("filters", Text, nullable=False),  # JSON object, sorted keys
    Column("webhook_url", Text, nullable=False),
    Column("secret", Text),  # kept as given: the HMAC needs it; never returned
    Column("renotify_minutes", Integer),
    Column("created_at", BigInteger, nullable=False),  # epoch us
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("name", name="ux_alert_rules_name"),
)

alert_state = Table(
    "alert_state",
    metadata,
    Column("rule_id", Integer, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),  # ok | firing | no_data
    Column("value", Float),
    Column("evaluated_at", BigInteger, nullable=False),
    Column("since", BigInteger, nullable=False),  # when `state` began
    Column("notified", String(16)),  # firing | resolved | NULL (nothing sent yet)
    Column("last_firing_at", BigInteger),  # last firing notification queued
    Column("last_resolved_at", BigInteger),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("event", String(16), nullable=False),  # state | delivery
    Column("state", String(16)),  # the new state, or the notification kind
    Column("prev_state", String(16)),
    Column("value", Float),
    Column("delivery_id", Integer),
    Column("attempt", Integer),
    Column("outcome", String(16)),  # delivered | retry | failed | deferred
    Column("detail", Text),
    Index("ix_alert_history_rule", "rule_id", "id"),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # firing | resolved | test
    Column("body", Text, nullable=False),  # the JSON sent, fixed at queueing
    Column("created_at", BigInteger, nullable=False),
    Column("next_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("claimed_until", BigInteger),
    Column("last_error", Text),
    Index("ix_alert_deliveries_due", "status", "next_at"),
)

alert_run_calls = Table(
    "alert_run_calls",
    metadata,
    # The run: the call's trace_id, else its parent_id (as stored in events).
    Column("run", String(128), nullable=False),
    Column("bucket", BigInteger, nullable=False),  # minute start, epoch us
    Column("agent_ref", Integer, nullable=False),
    Column("task_ref", Integer, nullable=False),
    Column("model_ref", Integer, nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "run", "bucket", "agent_ref", "task_ref", "model_ref", name="pk_alert_run_calls"
    ),
    Index("ix_alert_run_calls_bucket", "bucket"),
)

alert_lease = Table(
    "alert_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # epoch us
)

TABLES = [alert_rules, alert_state, alert_history, alert_deliveries, alert_run_calls, alert_lease]
LEASE = "evaluator"


class RuleExists(ValueError):
    """A rule with that name already exists."""


@dataclass(slots=True)
class AlertRule:
    id: int
    name: str
    metric: str
    window: str
    operator: str
    threshold: float
    filters: dict[str, str]
    webhook_url: str
    secret: str | None
    renotify_minutes: int | None
    created_at: int
    updated_at: int
    # From alert_state (None before the first evaluation).
    state: str | None = None
    value: float | None = None
    evaluated_at: int | None = None
    since: int | None = None
    notified: str | None = None
    last_firing_at: int | None = None
    last_resolved_at: int | None = None


@dataclass(slots=True)
class StateUpdate:
    """What one evaluation concluded for one rule, written in one transaction
    with the others (`commit_evaluation`)."""

    rule_id: int
    state: str
    value: float | None
    now: int
    prev_state: str | None
    since: int
    notified: str | None
    last_firing_at: int | None
    last_resolved_at: int | None
    # Notifications to queue: (kind, body JSON).
    send: list[tuple[str, str]] = field(default_factory=list)
    deferred: str | None = None  # a notification held back (flapping), for the history


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    rule_id: int
    kind: str
    body: str
    attempts: int
    created_at: int
    webhook_url: str
    secret: str | None


# -- schema -------------------------------------------------------------------


def create_tables(conn: Connection) -> None:
    """Migration 11: the tables, and calls_per_run counted for the events the
    rollups already hold (newer ones come through the build hook)."""
    metadata.create_all(conn, tables=TABLES)
    # Recounted from scratch: a rebuild during an earlier migration may have
    # run the hook already.
    conn.execute(delete(alert_run_calls))
    w = ru.get_watermark(conn)
    if w:
        _fold(conn, 0, w, now_us() - RUN_CALLS_KEEP_US)


def _fold(conn: Connection, after: int, upto: int, min_ts: int | None = None) -> None:
    since = " AND ts >= :min_ts" if min_ts is not None else ""
    conn.execute(
        text(
            "INSERT INTO alert_run_calls (run, bucket, agent_ref, task_ref, model_ref, n) "
            "SELECT coalesce(trace_id, parent_id), ts - (ts % 60000000), agent_ref, "
            "task_ref, model_ref, count(*) FROM events "
            f"WHERE seq > :after AND seq <= :upto AND kind = {KIND_CODES['llm']} "
            f"AND (trace_id IS NOT NULL OR parent_id IS NOT NULL){since} "
            "GROUP BY coalesce(trace_id, parent_id), ts - (ts % 60000000), "
            "agent_ref, task_ref, model_ref "
            "ON CONFLICT (run, bucket, agent_ref, task_ref, model_ref) "
            "DO UPDATE SET n = alert_run_calls.n + excluded.n"
        ),
        {"after": after, "upto": upto, "min_ts": min_ts},
    )


def fold_run_calls(conn: Connection, after: int, upto: int) -> None:
    """rollups.BUILD_HOOKS entry: count the LLM calls with seq in (after,
    upto] per run and minute, inside the build's transaction."""
    if upto > after:
        _fold(conn, after, upto)


if fold_run_calls not in ru.BUILD_HOOKS:
    ru.BUILD_HOOKS.append(fold_run_calls)


# -- rules --------------------------------------------------------------------


@contextlib.contextmanager
def _write(engine: Engine) -> Iterator[Connection]:
    # As store/keys.py: SQLite takes its write lock at BEGIN (no "locked"
    # failure behind the ingest writer); PostgreSQL needs only row locks.
    with engine.connect().execution_options(aw_writer=True) as conn, conn.begin():
        yield conn


def _rule_of(row: Any) -> AlertRule:
    m = dict(row._mapping)
    m["filters"] = json.loads(m["filters"] or "{}")
    m["window"] = m.pop("time_window")
    m.pop("rule_id", None)
    return AlertRule(**m)


def _rules_query() -> Any:
    s = alert_state.c
    return select(
        alert_rules,
        s.state,
        s.value,
        s.evaluated_at,
        s.since,
        s.notified,
        s.last_firing_at,
        s.last_resolved_at,
    ).select_from(alert_rules.outerjoin(alert_state, alert_state.c.rule_id == alert_rules.c.id))


def list_rules(engine: Engine) -> list[AlertRule]:
    with engine.connect() as conn:
        rows = conn.execute(_rules_query().order_by(alert_rules.c.name))
        return [_rule_of(r) for r in rows]


def get_rule(
    engine: Engine, rule_id: int | None = None, name: str | None = None
) -> AlertRule | None:
    q = _rules_query()
    q = (
        q.where(alert_rules.c.id == rule_id)
        if rule_id is not None
        else q.where(alert_rules.c.name == name)
    )
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return None if row is None else _rule_of(row)


def _rule_values(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "window" in out:
        out["time_window"] = out.pop("window")
    if "filters" in out:
        out["filters"] = json.dumps(out["filters"] or {}, sort_keys=True)
    return out


def add_rule(engine: Engine, values: dict[str, Any]) -> int:
    now = now_us()
    try:
        with _write(engine) as conn:
            res = conn.execute(
                insert(alert_rules).values(**_rule_values(values), created_at=now, updated_at=now)
            )
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])
    except IntegrityError:
        raise RuleExists(values.get("name", "")) from None


def update_rule(engine: Engine, rule_id: int, values: dict[str, Any]) -> bool:
    try:
        with _write(engine) as conn:
            n = conn.execute(
                update(alert_rules)
                .where(alert_rules.c.id == rule_id)
                .values(**_rule_values(values), updated_at=now_us())
            ).rowcount
    except IntegrityError:
        raise RuleExists(values.get("name", "")) from None
    return bool(n)


def delete_rule(engine: Engine, rule_id: int) -> bool:
    with _write(engine) as conn:
        n = conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount
        conn.execute(delete(alert_state).where(alert_state.c.rule_id == rule_id))
        conn.execute(delete(alert_history).where(alert_history.c.rule_id == rule_id))
        conn.execute(delete(alert_deliveries).where(alert_deliveries.c.rule_id == rule_id))
    return bool(n)


def history(engine: Engine, rule_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The rule's newest `limit` history entries, newest first."""
    h = alert_history.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_history).where(h.rule_id == rule_id).order_by(h.id.desc()).limit(limit)
        )
        return [dict(r._mapping) for r in rows]


# -- the evaluator's lease ------------------------------------------------------


def take_lease(engine: Engine, holder: str, ttl_us: int) -> bool:
    """Hold (or renew) the evaluator lease until now + ttl; False while another
    server holds an unexpired one."""
    now = now_us()
    c = alert_lease.c
    with _write(engine) as conn:
        n = conn.execute(
            update(alert_lease)
            .where(c.name == LEASE, or_(c.holder == holder, c.expires_at < now))
            .values(holder=holder, expires_at=now + ttl_us)
        ).rowcount
        if n:
            return True
        if conn.execute(select(c.name).where(c.name == LEASE)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(alert_lease).values(
                            name=LEASE, holder=holder, expires_at=now + ttl_us
                        )
                    )
                return True
            except IntegrityError:  # another server made it first
                return False
    return False


def release_lease(engine: Engine, holder: str) -> None:
    c = alert_lease.c
    with _write(engine) as conn:
        conn.execute(
            update(alert_lease).where(c.name == LEASE, c.holder == holder).values(expires_at=0)
        )


def lease_holder(engine: Engine) -> tuple[str, int] | None:
    c = alert_lease.c
    with engine.connect() as conn:
        row = conn.execute(select(c.holder, c.expires_at).where(c.name == LEASE)).first()
    return None if row is None else (str(row[0]), int(row[1]))


# -- evaluation -----------------------------------------------------------------


def max_calls_per_run(
    conn: Connection, names: NameCache, start_us: int, end_us: int, flt: dict[str, str]
) -> int | None:
    """The most LLM calls one run made in the minutes overlapping [start, end]
    (counted per minute: a call up to a minute before `start` may count);
    None when no call inside a run matches."""
    r = alert_run_calls.c
    conds = [r.bucket >= start_us - start_us % MINUTE_US, r.bucket <= end_us]
    cols = {"agent_name": r.agent_ref, "task_name": r.task_ref, "model": r.model_ref}
    for d, v in flt.items():
        ref = names.find_ref(conn, v)
        if ref is None:
            return None
        conds.append(cols[d] == ref)
    total = func.sum(r.n)
    row = conn.execute(
        select(total).where(*conds).group_by(r.run).order_by(total.desc()).limit(1)
    ).first()
    return None if row is None else int(row[0])


def prune_run_calls(engine: Engine, now: int | None = None) -> int:
    cut = (now_us() if now is None else now) - RUN_CALLS_KEEP_US
    with _write(engine) as conn:
        return int(
            conn.execute(delete(alert_run_calls).where(alert_run_calls.c.bucket < cut)).rowcount
        )


def commit_evaluation(engine: Engine, holder: str, ttl_us: int, updates: list[StateUpdate]) -> bool:
    """Write one evaluation's states, history and queued notifications, if
    `holder` still holds the lease (renewed in the same transaction); False
    (nothing written) if it lost it."""
    now = now_us()
    lc = alert_lease.c
    with _write(engine) as conn:
        n = conn.execute(
            update(alert_lease)
            # Still ours if nobody took it over, even past its expiry (an
            # evaluation slower than the lease): taking it changes the holder.
            .where(lc.name == LEASE, lc.holder == holder)
            .values(expires_at=now + ttl_us)
        ).rowcount
        if not n:
            return False
        live = {int(i) for (i,) in conn.execute(select(alert_rules.c.id))}
        have = {int(i) for (i,) in conn.execute(select(alert_state.c.rule_id))}
        todo = [u for u in updates if u.rule_id in live]
        rows = [
            {
                "rid": u.rule_id,
                "state": u.state,
                "value": u.value,
                "evaluated_at": u.now,
                "since": u.since,
                "notified": u.notified,
                "last_firing_at": u.last_firing_at,
                "last_resolved_at": u.last_resolved_at,
            }
            for u in todo
        ]
        old = [r for r in rows if r["rid"] in have]
        new = [r for r in rows if r["rid"] not in have]
        # One statement for all (executemany): a thousand rules are one round trip.
        if old:
            vals: dict[str, Any] = {k: bindparam(k) for k in rows[0] if k != "rid"}
            conn.execute(
                update(alert_state).where(alert_state.c.rule_id == bindparam("rid")).values(vals),
                old,
            )
        if new:
            conn.execute(insert(alert_state), [{"rule_id": r.pop("rid"), **r} for r in new])
        hist: list[dict[str, Any]] = []
        for u in todo:
            if u.prev_state != u.state:
                hist.append(
                    {
                        "rule_id": u.rule_id,
                        "ts": u.now,
                        "event": "state",
                        "state": u.state,
                        "prev_state": u.prev_state,
                        "value": u.value,
                        "outcome": None,
                        "detail": None,
                    }
                )
            if u.deferred:
                hist.append(
                    {
                        "rule_id": u.rule_id,
                        "ts": u.now,
                        "event": "delivery",
                        "state": u.deferred,
                        "prev_state": None,
                        "value": u.value,
                        "outcome": "deferred",
                        "detail": "held back: the same notification went out within the window",
                    }
                )
        if hist:
            conn.execute(insert(alert_history), hist)
        for u in todo:
            for kind, body in u.send:
                _queue(conn, u.rule_id, kind, body, u.now)
    return True


def _queue(conn: Connection, rule_id: int, kind: str, body: str, now: int) -> int:
    res = conn.execute(
        insert(alert_deliveries).values(
            rule_id=rule_id,
            kind=kind,
            body=body,
            created_at=now,
            next_at=now,
            attempts=0,
            status="pending",
        )
    )
    pk = res.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def queue_delivery(engine: Engine, rule_id: int, kind: str, body: str) -> int:
    with _write(engine) as conn:
        return _queue(conn, rule_id, kind, body, now_us())


# -- delivery -------------------------------------------------------------------


def claim_deliveries(
    engine: Engine, limit: int, claim_us: int, only: int | None = None
) -> list[Delivery]:
    """Claim up to `limit` due deliveries for `claim_us` (no other worker
    takes them meanwhile); each comes with its rule's current URL and secret."""
    now = now_us()
    d = alert_deliveries.c
    r = alert_rules.c
    free = or_(d.claimed_until.is_(None), d.claimed_until < now)
    conds = [d.status == "pending", d.next_at <= now, free]
    if only is not None:
        conds.append(d.id == only)
    out: list[Delivery] = []
    with engine.connect() as conn:
        cands = conn.execute(
            select(d.id).where(*conds).order_by(d.next_at, d.id).limit(limit)
        ).all()
    for (did,) in cands:
        with _write(engine) as conn:
            n = conn.execute(
                update(alert_deliveries)
                .where(d.id == did, d.status == "pending", free)
                .values(claimed_until=now + claim_us)
            ).rowcount
            if not n:
                continue
            row = conn.execute(
                select(
                    d.id,
                    d.rule_id,
                    d.kind,
                    d.body,
                    d.attempts,
                    d.created_at,
                    r.webhook_url,
                    r.secret,
                )
                .select_from(alert_deliveries.join(alert_rules, r.id == d.rule_id))
                .where(d.id == did)
            ).first()
            if row is None:  # its rule was deleted
                conn.execute(delete(alert_deliveries).where(d.id == did))
                continue
            out.append(Delivery(*row))
    return out


def record_attempt(
    engine: Engine,
    delivery: Delivery,
    outcome: str,
    detail: str,
    next_at: int | None,
) -> None:
    """One attempt's outcome: delivered, retry (at next_at) or failed."""
    now = now_us()
    d = alert_deliveries.c
    attempt = delivery.attempts + 1
    status = {"delivered": "delivered", "failed": "failed"}.get(outcome, "pending")
    with _write(engine) as conn:
        conn.execute(
            update(alert_deliveries)
            .where(d.id == delivery.id)
            .values(
                attempts=attempt,
                status=status,
                next_at=next_at if next_at is not None else now,
                claimed_until=None,
                last_error=None if outcome == "delivered" else detail,
            )
        )
        body = json.loads(delivery.body)
        conn.execute(
            insert(alert_history).values(
                rule_id=delivery.rule_id,
                ts=now,
                event="delivery",
                state=delivery.kind,
                value=body.get("value"),
                delivery_id=delivery.id,
                attempt=attempt,
                outcome=outcome,
                detail=detail[:500],
            )
        )


def pending_deliveries(engine: Engine) -> int:
    d = alert_deliveries.c
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(alert_deliveries).where(d.status == "pending")
            ).scalar()
            or 0
        )


HISTORY_KEEP_US = 90 * 86_400 * 1_000_000


def prune_deliveries(engine: Engine, before_us: int) -> int:
    """Drop finished deliveries queued before `before_us` (their attempts
    stay in the history), and history entries older than 90 days."""
    d = alert_deliveries.c
    with _write(engine) as conn:
        conn.execute(delete(alert_history).where(alert_history.c.ts < now_us() - HISTORY_KEEP_US))
        return int(
            conn.execute(
                delete(alert_deliveries).where(
                    and_(d.status != "pending", d.created_at < before_us)
                )
            ).rowcount
        )


__all__ = [
    "TABLES",
    "AlertRule",
    "Delivery",
    "RuleExists",
    "StateUpdate",
    "create_tables",
    "fold_run_calls",
    "insert",
]
