"""The store interface every backend implements, and the query value types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentwatch.pricing import Rates
    from agentwatch.store.alerts import AlertRule, Delivery, StateUpdate
    from agentwatch.store.dialect import Backend
    from agentwatch.store.explore import EventQuery
    from agentwatch.store.keys import ApiKey
    from agentwatch.store.reprice import RepriceResult

# Dimensions the metrics endpoints can filter and group on. Only these names
# ever reach SQL as column references; values are always bound parameters.
DIMENSIONS: tuple[str, ...] = ("agent_name", "model", "task_name")


def error_line(e: BaseException) -> str:
    """A storage error in one line: the database driver's own first line.
    SQLAlchemy's text of the same error adds the SQL and its parameters
    (on PostgreSQL, a whole batch of events)."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


@dataclass(frozen=True, slots=True)
class Filters:
    """Equality filters on event columns; None means no filter."""

    agent_name: str | None = None
    task_name: str | None = None
    model: str | None = None
    status: str | None = None
    kind: str | None = None
    trace_id: str | None = None
    parent_id: str | None = None
    provider: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    # Time range in epoch microseconds: since <= ts <= until.
    since_us: int | None = None
    until_us: int | None = None


@dataclass(frozen=True, slots=True)
class InsertResult:
    inserted: int
    # None when every row was new; otherwise the (ts, id) of the rows that
    # were new (an event is a repeat when one with the same timestamp and id
    # is already stored).
    new_keys: set[tuple[int, str]] | None

    @property
    def new_ids(self) -> set[str] | None:
        return None if self.new_keys is None else {i for _, i in self.new_keys}


@dataclass(slots=True)
class Totals:
    """Raw sums and latency percentiles of a set of events (for the metrics,
    LLM calls; for a query of task runs, `requests` counts the runs). The
    store returns these and nothing derived: the routers name, rate and round
    them (server/api/metrics.py)."""

    requests: int = 0
    errors: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    p50: float | None = None
    p95: float | None = None


@dataclass(slots=True)
class BreakdownRow:
    """One group of a breakdown: its value (None: the calls that have no
    provider, user or session) and its totals."""

    name: str | None
    totals: Totals


@dataclass(slots=True)
class Summary:
    """A summary's figures: the LLM calls' totals, the agents seen (any
    kind of event) and the task runs counted."""

    llm: Totals = field(default_factory=Totals)
    agents: list[str] = field(default_factory=list)
    task_runs: int = 0


class Store(Protocol):
    """What the server needs from storage. Implementations are synchronous and
    thread-safe: the server calls reads from a thread pool and writes from one
    writer thread."""

    backend: Backend  # decided once, when the store is opened

    def insert_events(self, rows: list[tuple[Any, ...]]) -> InsertResult:
        """Insert rows (tuples in tables.INSERT_COLUMNS order, validated and
        priced) in one transaction; rows whose (timestamp, id) is already
        stored are skipped. Readers see them at once; the pre-aggregates catch
        up at the next build_rollups."""
        ...

    def build_rollups(self, max_rows: int = ...) -> int:
        """Fold events committed since the last build into the pre-aggregates;
        returns how many were read (0: caught up). The writer calls it."""
        ...

    def recount_dirty(self, quiet_us: int = ..., max_age_us: int = ...) -> int:
        """Recount one day that old-dated events made dirty, if due; returns
        the day (epoch us) or -1."""
        ...

    def close_days(self) -> int:
        """Make the day rows of a day that has closed, if one is due; returns
        the day (epoch us) or -1."""
        ...

    def checkpoint(self) -> bool:
        """SQLite: move the WAL into the database file (writer, between commits)."""
        ...

    def disk_bytes(self) -> tuple[int, int]:
        """SQLite: the sizes of the database file and of its WAL now (the
        writer checkpoints when the WAL outgrows its share); (0, 0) for other
        backends."""
        ...

    def pending_rollups(self) -> dict[str, int]: ...

    def query_events(self, f: Filters, limit: int, offset: int) -> list[dict[str, Any]]: ...

    def summary(self, start_us: int, end_us: int, f: Filters) -> Summary: ...

    def timeseries(
        self, start_us: int, end_us: int, origin_us: int, width_us: int, f: Filters
    ) -> dict[int, Totals]:
        """The LLM calls' totals per time bucket [origin + i * width_us,
        origin + (i + 1) * width_us), keyed by i; buckets without calls absent."""
        ...

    def breakdown(
        self,
        group_by: str,
        start_us: int,
        end_us: int,
        f: Filters,
        rest: bool = False,
        limit: int | None = None,
    ) -> list[BreakdownRow]:
        """The LLM calls' totals per value of `group_by`, highest cost first."""
        ...

    def first_timestamp_us(self, f: Filters) -> int | None: ...

    def count_events(self) -> int: ...

    def delete_events_before(self, ts_us: int, chunk: int = 5000) -> int: ...

    def prune_minute_rollups(self) -> int: ...

    def start_tail(
        self,
        on_rows: Callable[[list[tuple[Any, ...]]], None],
        wanted: Callable[[], bool] | None = None,
    ) -> bool:
        """Stream every event committed by any server sharing the store to
        `on_rows`, in commit order; False if only this server writes."""
        ...

    def stop_tail(self) -> None: ...

    def close(self) -> None: ...

    # -- explorer (issue 15) --
    def explore_events(self, q: EventQuery) -> dict[str, Any]:
        """One page of events for `GET /api/events`: {"events": [...], "next":
        [sort value, seq] | None}, in q.sort order with seq as the tie-breaker
        in the same direction; q.after continues after that keyset."""
        ...

    def breakdown_raw(
        self, group_by: str, start_us: int, end_us: int, f: Filters, limit: int | None = None
    ) -> list[BreakdownRow]:
        """Breakdown rows per provider, user_id or session_id, highest cost
        first, then a row named None for the calls without a value."""
        ...

    def run_totals(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per stored task run: cost_usd, input_tokens, output_tokens,
        llm_calls, tool_calls, failed_steps of its whole subtree."""
        ...

    def session_view(self, session_id: str, limit: int = 1000) -> dict[str, Any] | None:
        """A session's top-level runs and calls in time order with totals."""
        ...

    # -- API keys (issue 11) --
    def add_key(self, key: ApiKey) -> None: ...

    def list_keys(self) -> list[ApiKey]: ...

    def revoke_key(self, name: str) -> bool: ...

    def touch_keys(self, used: dict[str, int]) -> None: ...

    # -- alerts (issue 13) --
    def add_alert(self, values: dict[str, Any]) -> int:
        """Store a new rule (raises store.alerts.RuleExists for a taken name)."""
        ...

    def list_alerts(self) -> list[AlertRule]: ...

    def get_alert(
        self, rule_id: int | None = None, name: str | None = None
    ) -> AlertRule | None: ...

    def update_alert(self, rule_id: int, values: dict[str, Any]) -> bool: ...

    def delete_alert(self, rule_id: int) -> bool: ...

    def alert_history(self, rule_id: int, limit: int = 200) -> list[dict[str, Any]]: ...

    def alert_totals(self, start_us: int, end_us: int, f: Filters) -> Totals:
        """The LLM-call part of `summary` (same pre-aggregates, same code)."""
        ...

    def max_calls_per_run(self, start_us: int, end_us: int, f: Filters) -> int | None:
        """Most LLM calls one run made in [start, end] (minute resolution),
        from the calls-per-run pre-aggregate; None when none matched."""
        ...

    def take_alert_lease(self, holder: str, ttl_us: int) -> bool: ...

    def release_alert_lease(self, holder: str) -> None: ...

    def commit_alert_evaluation(
        self, holder: str, ttl_us: int, updates: list[StateUpdate]
    ) -> bool: ...

    def queue_alert_delivery(self, rule_id: int, kind: str, body: str) -> int: ...

    def claim_alert_deliveries(
        self, limit: int, claim_us: int, only: int | None = None
    ) -> list[Delivery]: ...

    def record_alert_attempt(
        self, delivery: Delivery, outcome: str, detail: str, next_at: int | None
    ) -> None: ...

    def prune_alert_data(self) -> int: ...
    # -- export (issue 14) --
    def export_events(self, q: EventQuery, chunk: int = ...) -> Iterator[list[tuple[Any, ...]]]:
        """Every event matching q's filters as logical rows, oldest first
        (by time, then id), `chunk` at a time; each chunk is read on a
        connection of its own, released before the chunk is handed over."""
        ...

    # -- data quality (issue 14) --
    def quality_counts(self, start_us: int, end_us: int) -> dict[str, Any]:
        """LLM calls in the window with usage missing, the fallback price, or
        a partial stream: {flag: {"count", "by_provider", "by_model"}}."""
        ...

    def quality_events(
        self,
        flag: str,
        start_us: int,
        end_us: int,
        provider: str | None = None,
        model: str | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """One page (newest first) of the LLM calls carrying `flag`."""
        ...

    def add_rejects(self, now_us: int, by_code: dict[int, list[int]]) -> None:
        """Add refused ingest requests ({status: [requests, invalid events]})."""
        ...

    def rejects(self, start_us: int, end_us: int) -> dict[int, list[int]]:
        """Refused ingest requests per status over the days of the window."""
        ...

    # -- reprice (issue 14) --
    def reprice(
        self,
        rates: Callable[[str, str | None], Rates],
        since_us: int,
        until_us: int | None = None,
        dry_run: bool = False,
        progress: Callable[[RepriceResult], None] | None = None,
    ) -> RepriceResult:
        """Recompute the cost of every LLM call from since_us on that the
        server priced (not those that carried their own cost_usd) with
        `rates(model, provider)`; the changed days' pre-aggregates are marked
        for recounting in the same transactions. dry_run: nothing is written."""
        ...
