"""Alert evaluation and webhook delivery (issue 13); storage is store/alerts.py.

The evaluator is a thread of the server. Every `--alert-interval` seconds it
takes (or renews) the evaluator lease in the store; only the holder
evaluates, so with several servers on one PostgreSQL exactly one does, and
another takes over once a dead holder's lease runs out (three intervals, at
least 5 s). Rules are grouped by (source, window, filters) so that each
distinct query runs once per evaluation, whatever the number of rules
sharing it. The values come from the same pre-aggregates and the same code
as the dashboard's metrics (`Store.alert_totals` is the LLM-call part of
`Store.summary`); `calls_per_run` from the calls-per-run pre-aggregate.

States and notifications, per rule:

- the state is `firing` when the condition holds, else `ok`; `no_data` when
  the window holds no matching call (for cost, requests and tokens the value
  is then 0 and the condition is tried on it: `requests < 10` fires on 0);
- a notification goes out when the state's side (firing, or not: resolved)
  differs from the last one notified; one that would repeat the same kind
  within the rule's window of the previous one is held back (a rule that
  flaps notifies at most once per transition per window) and goes out at a
  later evaluation if the state still differs by then;
- while firing, with `renotify_minutes`, the firing notification is repeated
  that often.

State, what was notified and the queued notifications are written in one
transaction that re-checks the lease, so a restart or a takeover neither
re-notifies nor forgets a firing alert.

Delivery is a second thread (on every server): it claims due rows of the
queue, POSTs them (Slack-compatible: the body has a `text`), signs them with
the rule's secret (`X-AgentWatch-Signature: sha256=<hex HMAC-SHA256 of the
body>`), and on a 5xx, 429, timeout or refused connection retries with
exponential backoff and jitter for up to `--alert-retry-for` seconds. Every
attempt goes to the history. Neither thread ever holds up ingest or queries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agentwatch.clock import now_us
from agentwatch.server.figures import cost_usd, error_rate
from agentwatch.store.alerts import AlertRule, Delivery, StateUpdate
from agentwatch.store.base import Filters, Store, Totals

log = logging.getLogger("agentwatch.alerts")

METRICS = (
    "cost",
    "requests",
    "tokens",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "calls_per_run",
)
# Metrics whose value is 0, not missing, when the window holds no call.
ADDITIVE = ("cost", "requests", "tokens")
ROLLING_WINDOWS: dict[str, int] = {
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 86_400,
    "7d": 7 * 86_400,
}
CALENDAR_WINDOWS = ("day", "month")
WINDOWS = (*ROLLING_WINDOWS, *CALENDAR_WINDOWS)
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
FILTER_KEYS = ("agent_name", "task_name", "model")
# How long the same notification is held back after one went out, for the
# calendar windows (a rolling window's own length otherwise).
CALENDAR_HOLD_S = 3600
SIGNATURE_HEADER = "X-AgentWatch-Signature"
SEND_TIMEOUT_S = 10.0
US = 1_000_000


def window_range(window: str, now: int) -> tuple[int, int]:
    """[start, end] (inclusive, epoch us) of a rule's window ending at `now`."""
    secs = ROLLING_WINDOWS.get(window)
    if secs is not None:
        return now - secs * US, now
    dt = datetime.fromtimestamp(now / US, UTC)
    start = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "month":
        start = start.replace(day=1)
    return int(start.timestamp()) * US, now


def hold_us(window: str) -> int:
    return ROLLING_WINDOWS.get(window, CALENDAR_HOLD_S) * US


def _filters(f: dict[str, str]) -> Filters:
    return Filters(
        agent_name=f.get("agent_name") or None,
        task_name=f.get("task_name") or None,
        model=f.get("model") or None,
    )


def value_of(metric: str, s: Totals | None, calls: int | None) -> float | None:
    """A rule's value from its group's query; None when there is none."""
    if metric == "calls_per_run":
        return None if calls is None else float(calls)
    assert s is not None
    n = s.requests
    if metric == "cost":
        return cost_usd(s.cost)
    if metric == "requests":
        return float(n)
    if metric == "tokens":
        return float(s.input_tokens + s.output_tokens)
    if not n:
        return None
    if metric == "error_rate":
        return error_rate(s)
    return s.p50 if metric == "latency_p50" else s.p95


def group_key(rule: AlertRule) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    source = "runs" if rule.metric == "calls_per_run" else "llm"
    return source, rule.window, tuple(sorted((k, v) for k, v in rule.filters.items() if v))


def measure(
    store: Store, rules: list[AlertRule], now: int
) -> tuple[dict[int, tuple[float | None, bool]], int]:
    """Every rule's (value, whether the window holds matching calls) at `now`,
    one query per distinct (source, window, filters); returns them by rule
    id, and the number of queries run."""
    results: dict[tuple[str, str, tuple[tuple[str, str], ...]], Any] = {}
    for r in rules:
        key = group_key(r)
        if key in results:
            continue
        source, window, flt = key
        start, end = window_range(window, now)
        f = _filters(dict(flt))
        if source == "runs":
            results[key] = store.max_calls_per_run(start, end, f)
        else:
            results[key] = store.alert_totals(start, end, f)
    out: dict[int, tuple[float | None, bool]] = {}
    for r in rules:
        got = results[group_key(r)]
        if r.metric == "calls_per_run":
            out[r.id] = (value_of(r.metric, None, got), got is not None)
        else:
            out[r.id] = (value_of(r.metric, got, None), got.requests > 0)
    return out, len(results)


# -- text and payload -----------------------------------------------------------

_LABELS = {
    "cost": "cost",
    "requests": "requests",
    "tokens": "tokens",
    "error_rate": "error rate",
    "latency_p50": "p50 latency",
    "latency_p95": "p95 latency",
    "calls_per_run": "LLM calls in one run",
}


def fmt(metric: str, v: float) -> str:
    if metric == "cost":
        return f"${v:,.2f}" if v == 0 or abs(v) >= 0.1 else f"${v:.4f}"
    if metric == "error_rate":
        return f"{v:.1f}%"
    if metric.startswith("latency"):
        return f"{v:,.0f} ms"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _window_words(window: str) -> str:
    if window == "day":
        return "today (UTC)"
    if window == "month":
        return "this month (UTC)"
    return f"over the last {window}"


def sentence(rule: AlertRule, kind: str, value: float | None) -> str:
    """One line a person reads in Slack, e.g. "Budget spender-budget: cost
    over the last 1h is $0.60 (> $0.50) for agent_name=spender"."""
    cond = f"{rule.operator} {fmt(rule.metric, rule.threshold)}"
    what = f"{_LABELS[rule.metric]} {_window_words(rule.window)}"
    now = "has no data" if value is None else f"is {fmt(rule.metric, value)}"
    if kind == "firing":
        head = "Budget" if rule.metric == "cost" else "Alert"
        line = f"{head} {rule.name}: {what} {now} ({cond})"
    elif kind == "resolved":
        line = f"Resolved {rule.name}: {what} {now} (no longer {cond})"
    else:
        line = f"Test of {rule.name}: {what} {now} (fires when {cond})"
    flt = ", ".join(f"{k}={v}" for k, v in sorted(rule.filters.items()) if v)
    return line + (f" for {flt}" if flt else "")


def rule_summary(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "metric": rule.metric,
        "window": rule.window,
        "operator": rule.operator,
        "threshold": rule.threshold,
        "filters": rule.filters,
    }


def payload(
    rule: AlertRule, kind: str, value: float | None, now: int, base_url: str, repeat: bool = False
) -> str:
    body: dict[str, Any] = {
        "alert": rule_summary(rule),
        "state": kind,
        "value": value,
        "timestamp": datetime.fromtimestamp(now / US, UTC).isoformat(),
        "text": sentence(rule, kind, value),
        "dashboard_url": f"{base_url.rstrip('/')}/?view=alerts&alert={rule.id}",
    }
    if repeat:
        body["repeat"] = True
    return json.dumps(body, separators=(",", ":"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- the state machine ------------------------------------------------------------


def decide(
    rule: AlertRule, value: float | None, has_data: bool, now: int, base_url: str
) -> StateUpdate:
    """The new state of `rule` given its value, and what to notify."""
    test = OPERATORS[rule.operator]
    if not has_data:
        # cost, requests and tokens are 0 over an empty window, and `< x` fires on it.
        value = 0.0 if rule.metric in ADDITIVE else None
        state = "firing" if value is not None and test(value, rule.threshold) else "no_data"
    elif value is None:
        state = "no_data"
    else:
        state = "firing" if test(value, rule.threshold) else "ok"
    prev = rule.state
    u = StateUpdate(
        rule_id=rule.id,
        state=state,
        value=value,
        now=now,
        prev_state=prev,
        since=now if prev != state or rule.since is None else rule.since,
        notified=rule.notified,
        last_firing_at=rule.last_firing_at,
        last_resolved_at=rule.last_resolved_at,
    )
    want = "firing" if state == "firing" else "resolved"
    told = rule.notified or "resolved"  # nothing sent yet: nothing to resolve
    if want != told:
        last = rule.last_firing_at if want == "firing" else rule.last_resolved_at
        if last is None or now - last >= hold_us(rule.window):
            u.send.append((want, payload(rule, want, value, now, base_url)))
            u.notified = want
            if want == "firing":
                u.last_firing_at = now
            else:
                u.last_resolved_at = now
        elif prev != state:  # note it once, when the transition happens
            u.deferred = want
    elif (
        want == "firing"
        and rule.renotify_minutes
        and rule.last_firing_at is not None
        and now - rule.last_firing_at >= rule.renotify_minutes * 60 * US
    ):
        u.send.append(("firing", payload(rule, "firing", value, now, base_url, repeat=True)))
        u.last_firing_at = now
    return u


# -- the threads ---------------------------------------------------------------------


class Evaluator:
    """The evaluation loop (one thread); see the module docstring."""

    def __init__(
        self,
        store: Store,
        interval_s: float,
        base_url: str,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.base_url = base_url
        self.on_queued = on_queued
        self.holder = f"{uuid.uuid4().hex[:16]}"
        self.ttl_us = int(max(3 * interval_s, 5.0) * US)
        self.leader = False
        self.last_queries = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_prune = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.leader:
            try:
                self.store.release_alert_lease(self.holder)
            except Exception as e:  # the database may be gone; the lease expires anyway
                log.debug("alert lease release failed: %s", e)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.tick()
            except Exception as e:  # the database may be briefly away: try next time
                log.warning("alert evaluation failed: %s", e)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))

    def tick(self) -> int:
        """One round: take the lease, evaluate if ours; returns rules evaluated."""
        self.leader = self.store.take_alert_lease(self.holder, self.ttl_us)
        if not self.leader:
            return 0
        n = self.evaluate()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 3600
            self.store.prune_alert_data()
        return n

    def evaluate(self, now: int | None = None) -> int:
        rules = self.store.list_alerts()
        if not rules:
            return 0
        t = now_us() if now is None else now
        values, self.last_queries = measure(self.store, rules, t)
        updates = [decide(r, *values[r.id], t, self.base_url) for r in rules]
        if not self.store.commit_alert_evaluation(self.holder, self.ttl_us, updates):
            self.leader = False
            return 0
        if any(u.send for u in updates) and self.on_queued is not None:
            self.on_queued()
        return len(rules)


def send(delivery: Delivery, timeout: float = SEND_TIMEOUT_S) -> tuple[str, str]:
    """POST one notification; (outcome, detail): outcome is delivered, retry
    (5xx, 429, timeout, refused) or failed (any other answer)."""
    body = delivery.body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": "AgentWatch-alerts"}
    if delivery.secret:
        headers[SIGNATURE_HEADER] = sign(delivery.secret, body)
    req = urllib.request.Request(delivery.webhook_url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return "delivered", f"HTTP {resp.status}"
    except urllib.error.HTTPError as e:
        detail = f"HTTP {e.code}"
        return ("retry" if e.code >= 500 or e.code == 429 else "failed"), detail
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        return "retry", f"{type(reason).__name__}: {reason}"


def backoff_s(attempt: int, base_s: float) -> float:
    """Delay before attempt `attempt + 1`: base x 2^(attempt-1), +-50% jitter."""
    return base_s * (2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.5)


def deliver_one(store: Store, d: Delivery, retry_base_s: float, retry_for_s: float) -> str:
    """Send a claimed delivery and record the attempt; returns the outcome."""
    outcome, detail = send(d)
    next_at = None
    if outcome == "retry":
        delay = backoff_s(d.attempts + 1, retry_base_s)
        next_at = now_us() + int(delay * US)
        if next_at > d.created_at + int(retry_for_s * US):
            outcome, detail = "failed", f"{detail}; gave up after {retry_for_s:g} s of retries"
            next_at = None
    store.record_alert_attempt(d, outcome, detail, next_at)
    if outcome != "delivered":
        log.warning("alert delivery %d (%s): %s", d.id, outcome, detail)
    return outcome


class Deliverer:
    """The delivery loop (one thread on every server)."""

    def __init__(
        self, store: Store, poll_s: float, retry_base_s: float, retry_for_s: float
    ) -> None:
        self.store = store
        self.poll_s = poll_s
        self.retry_base_s = retry_base_s
        self.retry_for_s = retry_for_s
        # A claim outlives any one send (timeout) by far.
        self.claim_us = int((SEND_TIMEOUT_S * 3) * US)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=SEND_TIMEOUT_S + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for d in self.store.claim_alert_deliveries(20, self.claim_us):
                    if self._stop.is_set():
                        break
                    deliver_one(self.store, d, self.retry_base_s, self.retry_for_s)
            except Exception as e:
                log.warning("alert delivery loop failed: %s", e)
            self._wake.wait(self.poll_s)
            self._wake.clear()
