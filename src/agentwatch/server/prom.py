"""Prometheus metrics (issue 14): what this server process ingested, and its health.

Counted at ingest, per process: each commit's new events are folded into
plain dicts on the writer thread (one pass over the rows, a handful of dict
updates per event), and `GET /metrics` turns them into metric families with
prometheus_client at scrape time. Several servers on one database each
count what they committed; Prometheus sums them.

Cardinality guard: the free-form labels (agent_name, model, task_name) of
each group of series are let through for the first `max_series` distinct
combinations; past that, a new combination is counted under `other` (every
free-form label of it), so a task name holding ids cannot multiply the
series without bound. Counts are never dropped.

Rejected ingest requests are seen by `IngestWatch`, an ASGI middleware: a
4xx/5xx answer to an ingest route is counted by status code, with the
number of invalid events when the answer names them (422). The counts are
also added to the store (`store.add_rejects`, every few seconds) for the
data-quality view.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from agentwatch.clock import now_us
from agentwatch.store.tables import INSERT_COLUMNS

log = logging.getLogger("agentwatch.prom")

# Latency buckets (seconds) for LLM calls: a cached answer in 100 ms to a
# long reasoning call of two minutes.
LATENCY_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
# A commit of one group takes a millisecond to a second.
COMMIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
)  # fmt: skip
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
OTHER = "other"
# Ingest routes whose refusals count as rejected events.
INGEST_PATHS = frozenset({"/api/events", "/v1/traces"})
FLUSH_EVERY_S = 5.0

_I = {n: i for i, n in enumerate(INSERT_COLUMNS)}
_AGENT, _TASK, _MODEL = _I["agent_name"], _I["task_name"], _I["model"]
_STATUS, _KIND, _COST, _LAT = _I["status"], _I["kind"], _I["cost_usd"], _I["latency_ms"]
_TOK = tuple(_I[f"{t}_tokens"] for t in TOKEN_TYPES)


class _Guard:
    """Label combinations let through: the first `limit`, then `other`."""

    def __init__(self, limit: int, width: int) -> None:
        self.limit = limit
        self.seen: set[tuple[str, ...]] = set()
        self.other = (OTHER,) * width
        self.overflow = 0  # events counted under `other`

    def __call__(self, key: tuple[str, ...]) -> tuple[str, ...]:
        if key in self.seen:
            return key
        if len(self.seen) < self.limit:
            self.seen.add(key)
            return key
        self.overflow += 1
        return self.other


def _counter(
    name: str, doc: str, labels: tuple[str, ...], values: Mapping[Any, float]
) -> CounterMetricFamily:
    """A labelled counter family, its series in label order."""
    m = CounterMetricFamily(name, doc, labels=labels)
    for k, v in sorted(values.items()):
        m.add_metric(k, v)
    return m


class Metrics:
    """This process's ingest counts and health, and their exposition."""

    def __init__(self, max_series: int = 2000) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._llm_guard = _Guard(max_series, 2)
        self._task_guard = _Guard(max_series, 2)
        # (agent, model, status) -> calls; (agent, model) -> [5 token sums],
        # cost, [latency bucket counts..., +Inf], latency sum.
        self.requests: dict[tuple[str, ...], int] = {}
        self.tokens: dict[tuple[str, ...], list[int]] = {}
        self.cost: dict[tuple[str, ...], float] = {}
        self.lat_counts: dict[tuple[str, ...], list[int]] = {}
        self.lat_sum: dict[tuple[str, ...], float] = {}
        self.runs: dict[tuple[str, ...], int] = {}
        self.accepted = 0
        self.duplicates = 0
        self.commit_counts = [0] * (len(COMMIT_BUCKETS) + 1)
        self.commit_sum = 0.0
        # HTTP status -> [requests, invalid events]
        self.rejected: dict[int, list[int]] = {}
        self._unflushed: dict[int, list[int]] = {}
        self.queue_depth: Callable[[], int] = lambda: 0
        self.live_clients: Callable[[], int] = lambda: 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- counting (writer thread) ------------------------------------------
    def committed(self, rows: list[tuple[Any, ...]], seconds: float, offered: int) -> None:
        """One commit: its new rows, how long it took, how many were offered."""
        b = bisect.bisect_left
        bounds = LATENCY_BUCKETS
        nb = len(bounds) + 1
        with self._lock:
            self.accepted += len(rows)
            self.duplicates += max(0, offered - len(rows))
            self.commit_counts[b(COMMIT_BUCKETS, seconds)] += 1
            self.commit_sum += seconds
            req, tok, cost, lc, ls, runs = (
                self.requests,
                self.tokens,
                self.cost,
                self.lat_counts,
                self.lat_sum,
                self.runs,
            )
            for r in rows:
                kind = r[_KIND]
                if kind == "llm":
                    key = self._llm_guard((r[_AGENT], r[_MODEL]))
                    rk = (*key, r[_STATUS])
                    req[rk] = req.get(rk, 0) + 1
                    t = tok.get(key)
                    if t is None:
                        t = tok[key] = [0, 0, 0, 0, 0]
                        lc[key] = [0] * nb
                        ls[key] = 0.0
                        cost[key] = 0.0
                    for i, col in enumerate(_TOK):
                        t[i] += r[col]
                    cost[key] += r[_COST]
                    lat = r[_LAT] / 1000.0
                    lc[key][b(bounds, lat)] += 1
                    ls[key] += lat
                elif kind == "task":
                    key = self._task_guard((r[_AGENT], r[_TASK]))
                    tk = (*key, r[_STATUS])
                    runs[tk] = runs.get(tk, 0) + 1

    def rejected_request(self, status: int, invalid_events: int) -> None:
        with self._lock:
            for d in (self.rejected, self._unflushed):
                c = d.setdefault(status, [0, 0])
                c[0] += 1
                c[1] += invalid_events

    def take_unflushed(self) -> dict[int, list[int]]:
        with self._lock:
            out, self._unflushed = self._unflushed, {}
        return out

    def give_back(self, counts: dict[int, list[int]]) -> None:
        """Counts a flush could not store, kept for the next one."""
        with self._lock:
            for code, (n, ev) in counts.items():
                c = self._unflushed.setdefault(code, [0, 0])
                c[0] += n
                c[1] += ev

    # -- exposition --------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            req = dict(self.requests)
            tok = {k: list(v) for k, v in self.tokens.items()}
            cost = dict(self.cost)
            lc = {k: list(v) for k, v in self.lat_counts.items()}
            ls = dict(self.lat_sum)
            runs = dict(self.runs)
            accepted, dups = self.accepted, self.duplicates
            commits, commit_sum = list(self.commit_counts), self.commit_sum
            rejected = {k: list(v) for k, v in self.rejected.items()}
            overflow = self._llm_guard.overflow + self._task_guard.overflow
        yield _counter(
            "agentwatch_llm_requests",
            "LLM calls ingested by this server",
            ("agent_name", "model", "status"),
            req,
        )
        m = CounterMetricFamily(
            "agentwatch_llm_tokens",
            "Tokens of the LLM calls ingested (cache_read/cache_write are part of input, "
            "reasoning part of output)",
            labels=("agent_name", "model", "type"),
        )
        for k, t in sorted(tok.items()):
            for name, v in zip(TOKEN_TYPES, t, strict=True):
                m.add_metric((*k, name), v)
        yield m
        yield _counter(
            "agentwatch_llm_cost_usd",
            "Cost in US dollars of the LLM calls ingested",
            ("agent_name", "model"),
            cost,
        )
        h = HistogramMetricFamily(
            "agentwatch_llm_latency_seconds",
            "Latency of the LLM calls ingested",
            labels=("agent_name", "model"),
        )
        for k, counts in sorted(lc.items()):
            cum, acc = [], 0
            for le, n in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                acc += n
                cum.append((_le(le), acc))
            h.add_metric(k, cum, ls[k])
        yield h
        yield _counter(
            "agentwatch_task_runs",
            "Task runs ingested",
            ("agent_name", "task_name", "status"),
            runs,
        )
        yield CounterMetricFamily(
            "agentwatch_events_accepted", "Events committed (new) by this server", value=accepted
        )
        yield CounterMetricFamily(
            "agentwatch_events_duplicate",
            "Events accepted that were already stored (a retried batch), not stored again",
            value=dups,
        )
        m = CounterMetricFamily(
            "agentwatch_ingest_rejected_requests",
            "Ingest requests refused, by HTTP status (nothing of such a request is stored)",
            labels=("code",),
        )
        for code, (n, _) in sorted(rejected.items()):
            m.add_metric((str(code),), n)
        yield m
        yield CounterMetricFamily(
            "agentwatch_events_rejected",
            "Invalid events named by refused ingest requests (422)",
            value=sum(e for _, e in rejected.values()),
        )
        cum, acc = [], 0
        for le, n in zip((*COMMIT_BUCKETS, float("inf")), commits, strict=True):
            acc += n
            cum.append((_le(le), acc))
        h = HistogramMetricFamily(
            "agentwatch_batch_commit_seconds", "Time of each group commit of ingested events"
        )
        h.add_metric((), cum, commit_sum)
        yield h
        yield GaugeMetricFamily(
            "agentwatch_ingest_queue_depth",
            "Ingest requests waiting for the writer",
            value=self.queue_depth(),
        )
        yield GaugeMetricFamily(
            "agentwatch_live_clients",
            "Live-stream (SSE) clients connected",
            value=self.live_clients(),
        )
        yield CounterMetricFamily(
            "agentwatch_metrics_overflow_events",
            "Events counted under label value `other` (past --metrics-max-series)",
            value=overflow,
        )
        yield GaugeMetricFamily(
            "agentwatch_metrics_max_series",
            "Label combinations let through per group of series (--metrics-max-series)",
            value=self.max_series,
        )


def _le(v: float) -> str:
    return "+Inf" if v == float("inf") else repr(float(v))


class IngestWatch:
    """ASGI middleware: counts refused ingest requests (status >= 400)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in INGEST_PATHS
        ):
            await self.app(scope, receive, send)
            return
        status = 0
        body: list[bytes] = []

        async def watch(msg: Any) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            elif (
                msg["type"] == "http.response.body"
                and status == 422
                and sum(len(b) for b in body) < 1_000_000
            ):
                body.append(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status >= 400:
                self.metrics.rejected_request(status, _invalid_events(b"".join(body)))


def _invalid_events(body: bytes) -> int:
    """Distinct event indexes a 422 answer names (0 if none)."""
    if not body:
        return 0
    try:
        errors = orjson.loads(body).get("errors") or []
        return len({e.get("index") for e in errors if e.get("index") is not None})
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return 0


class RejectFlusher:
    """Adds the refused-request counts to the store every few seconds (a
    thread of its own; the counts wait in memory while the store is away)."""

    def __init__(self, metrics: Metrics, add: Callable[[int, dict[int, list[int]]], None]):
        self.metrics = metrics
        self.add = add
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentwatch-rejects", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY_S):
            self.flush()

    def flush(self) -> None:
        counts = self.metrics.take_unflushed()
        if not counts:
            return
        try:
            self.add(now_us(), counts)
        except Exception as e:
            log.warning("could not store rejected-request counts: %s", str(e).splitlines()[0])
            self.metrics.give_back(counts)


def exposition(metrics: Metrics) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry)


__all__ = [
    "LATENCY_BUCKETS",
    "IngestWatch",
    "Metrics",
    "RejectFlusher",
    "exposition",
]
