"""Simulated agent traffic for demos and screenshots: ``python demo.py`` / ``agentwatch demo``.

Two modes:

``--backfill``
    Seven days of history (about 3,500 events) from ``random.Random(seed)``.
    Event ids are UUIDv5 values derived from the seed and the event's position,
    so running the backfill twice stores nothing twice (the server is
    idempotent on ``id``). The window ends at the current time rounded down to
    10 minutes, so two runs within those 10 minutes send byte-identical batches.

``--live``
    One to three events every two to five seconds (divided by ``--speed``),
    printed as coloured lines; Ctrl+C prints a session summary.

The generator talks to the server only through the public HTTP API
(``POST /api/events``), like any other client, using the standard library.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TextIO

DEFAULT_SERVER = "http://localhost:8787"
DEFAULT_SEED = 42
BACKFILL_DAYS = 7
# About 500 events a day: the brief's figure for a week of demo data.
TARGET_EVENTS = 3_500
# Events per POST: large enough that a backfill is a handful of requests,
# small enough that the progress bar moves.
BATCH_SIZE = 250
# Namespace for deterministic event ids (uuid5 of seed + position).
ID_NAMESPACE = uuid.UUID("6f1c2b7e-3d4a-5e6f-8a9b-0c1d2e3f4a5b")


@dataclass(frozen=True)
class Task:
    name: str
    # (model, weight)
    models: tuple[tuple[str, float], ...]
    input_tokens: tuple[int, int]  # median-ish range for the log-normal draw
    output_tokens: tuple[int, int]
    error_rate: float
    # Share of this task's traffic that arrives as a multi-step task run.
    run_share: float = 0.0
    steps: tuple[int, int] = (2, 4)
    tool: str | None = None


@dataclass(frozen=True)
class AgentProfile:
    name: str
    weight: float
    tasks: tuple[tuple[Task, float], ...]
    users: tuple[str, ...] = ()
    # Client-side overhead per call (prompt building, retries, network), in ms.
    overhead_ms: float = 40.0


PROVIDERS = {
    "gpt": "openai",
    "o3": "openai",
    "o4": "openai",
    "claude": "anthropic",
    "gemini": "google",
}

# (time to first token in ms, ms per output token): rough public throughput figures.
MODEL_SPEED: dict[str, tuple[float, float]] = {
    "gpt-4o": (450.0, 11.0),
    "gpt-4o-mini": (300.0, 7.0),
    "gpt-3.5-turbo": (250.0, 6.0),
    "o3-mini": (900.0, 5.0),
    "claude-opus-4-20250514": (1_100.0, 18.0),
    "claude-sonnet-4-20250514": (650.0, 10.0),
    "claude-haiku-3-5-20241022": (350.0, 7.0),
    "gemini-2.0-flash": (250.0, 4.5),
}

# Reasoning models report hidden reasoning tokens as part of their output.
REASONING_MODELS = {"o3-mini", "o4-mini"}

ERRORS: tuple[tuple[str, float], ...] = (
    ("RateLimitError: 429 Too Many Requests: rate limit reached for requests", 0.5),
    ("APITimeoutError: request timed out after 30.0s", 0.06),
    ("InternalServerError: 529 overloaded_error: the API is temporarily overloaded", 0.16),
    ("BadRequestError: 400 context_length_exceeded: prompt is too long", 0.14),
    ("APIConnectionError: connection reset by peer", 0.14),
)

PROFILES: tuple[AgentProfile, ...] = (
    AgentProfile(
        name="research-bot",
        weight=0.22,
        users=("u-ana", "u-ben", "u-chen"),
        overhead_ms=90,
        tasks=(
            (
                Task(
                    "web-research",
                    (("gpt-4o", 0.6), ("claude-sonnet-4-20250514", 0.4)),
                    (3_000, 14_000),
                    (400, 1_600),
                    0.035,
                    run_share=0.45,
                    steps=(2, 5),
                    tool="web_search",
                ),
                0.5,
            ),
            (
                Task(
                    "summarize-findings",
                    (("claude-sonnet-4-20250514", 0.7), ("gpt-4o", 0.3)),
                    (6_000, 24_000),
                    (500, 1_800),
                    0.025,
                ),
                0.35,
            ),
            (
                Task(
                    "cite-sources",
                    (("gpt-4o-mini", 1.0),),
                    (1_500, 5_000),
                    (150, 500),
                    0.02,
                ),
                0.15,
            ),
        ),
    ),
    AgentProfile(
        name="support-agent",
        weight=0.32,
        users=("acme-corp", "globex", "initech", "umbrella", "hooli"),
        overhead_ms=35,
        tasks=(
            (
                Task(
                    "classify-ticket",
                    (("gpt-4o-mini", 0.7), ("claude-haiku-3-5-20241022", 0.3)),
                    (400, 1_800),
                    (20, 120),
                    0.015,
                ),
                0.45,
            ),
            (
                Task(
                    "draft-reply",
                    (("claude-haiku-3-5-20241022", 0.6), ("gpt-4o-mini", 0.4)),
                    (1_200, 4_000),
                    (150, 600),
                    0.03,
                    run_share=0.3,
                    steps=(2, 3),
                    tool="kb_lookup",
                ),
                0.4,
            ),
            (
                Task(
                    "escalation-check",
                    (("gpt-3.5-turbo", 1.0),),
                    (600, 2_000),
                    (30, 150),
                    0.02,
                ),
                0.15,
            ),
        ),
    ),
    AgentProfile(
        name="code-reviewer",
        weight=0.14,
        users=("u-dev-1", "u-dev-2"),
        overhead_ms=160,
        tasks=(
            (
                Task(
                    "review-diff",
                    (("claude-opus-4-20250514", 0.35), ("claude-sonnet-4-20250514", 0.65)),
                    (5_000, 30_000),
                    (600, 2_500),
                    0.05,
                    run_share=0.4,
                    steps=(2, 4),
                    tool="read_file",
                ),
                0.55,
            ),
            (
                Task(
                    "suggest-fix",
                    (("claude-sonnet-4-20250514", 0.6), ("o3-mini", 0.4)),
                    (3_000, 16_000),
                    (400, 2_000),
                    0.22,  # the flaky one: shows up red in the breakdown
                ),
                0.3,
            ),
            (
                Task(
                    "explain-change",
                    (("gpt-4o", 1.0),),
                    (2_000, 8_000),
                    (300, 900),
                    0.03,
                ),
                0.15,
            ),
        ),
    ),
    AgentProfile(
        name="data-pipeline",
        weight=0.2,
        users=("etl-nightly", "etl-hourly"),
        overhead_ms=25,
        tasks=(
            (
                Task(
                    "extract-entities",
                    (("gpt-4o-mini", 0.8), ("gpt-3.5-turbo", 0.2)),
                    (800, 3_500),
                    (100, 400),
                    0.012,
                ),
                0.5,
            ),
            (
                Task(
                    "normalize-records",
                    (("gpt-3.5-turbo", 0.6), ("gemini-2.0-flash", 0.4)),
                    (500, 2_500),
                    (80, 350),
                    0.01,
                    run_share=0.25,
                    steps=(3, 5),
                ),
                0.35,
            ),
            (
                Task(
                    "dedupe-check",
                    (("gpt-4o-mini", 1.0),),
                    (300, 1_200),
                    (10, 60),
                    0.008,
                ),
                0.15,
            ),
        ),
    ),
    AgentProfile(
        name="content-writer",
        weight=0.12,
        users=("marketing", "blog-team"),
        overhead_ms=110,
        tasks=(
            (
                Task(
                    "draft-post",
                    (("gpt-4o", 0.5), ("claude-sonnet-4-20250514", 0.5)),
                    (1_500, 6_000),
                    (900, 3_000),
                    0.06,
                    run_share=0.35,
                    steps=(2, 3),
                ),
                0.45,
            ),
            (
                Task(
                    "rewrite-headline",
                    (("gpt-4o-mini", 0.7), ("o3-mini", 0.3)),
                    (300, 1_200),
                    (30, 150),
                    0.09,
                ),
                0.3,
            ),
            (
                Task(
                    "seo-keywords",
                    (("gemini-2.0-flash", 0.6), ("gpt-4o-mini", 0.4)),
                    (800, 3_000),
                    (80, 300),
                    0.04,
                ),
                0.25,
            ),
        ),
    ),
)


def hour_weight(dt: datetime) -> float:
    """Relative traffic for the hour starting at ``dt`` (local to the viewer).

    Peak 09:00-17:00; overnight (22:00-06:00) runs at 10% of the peak rate;
    the shoulders in between at 35%. Weekends are quieter.
    """
    h = dt.hour
    if 9 <= h < 17:
        w = 1.0
    elif h >= 22 or h < 6:
        w = 0.1
    else:
        w = 0.35
    if dt.weekday() >= 5:
        w *= 0.6
    return w


def provider_for(model: str) -> str | None:
    for prefix, provider in PROVIDERS.items():
        if model.startswith(prefix):
            return provider
    return None


def _pick(rng: random.Random, items: Iterable[tuple[Any, float]]) -> Any:
    pool = list(items)
    return rng.choices([x for x, _ in pool], weights=[w for _, w in pool], k=1)[0]


def _tokens(rng: random.Random, lo_hi: tuple[int, int]) -> int:
    """Log-uniform within the range, with a rare long tail (big documents)."""
    lo, hi = lo_hi
    v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if rng.random() < 0.03:
        v *= rng.uniform(1.5, 3.0)
    return max(1, int(v))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass
class Generator:
    """Builds events; every random choice comes from one seeded ``random.Random``."""

    seed: int = DEFAULT_SEED
    # Part of every id: a live session uses its own stream so its ids never
    # collide with a backfill's or another session's.
    stream: str = "backfill"
    rng: random.Random = field(init=False)
    _n: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _id(self) -> str:
        self._n += 1
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.stream}:{self.seed}:{self._n}"))

    def _call(
        self,
        profile: AgentProfile,
        task: Task,
        start: datetime,
        model: str | None = None,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        trace_id: str | None = None,
        parent_id: str | None = None,
        step: int | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        model = model or _pick(rng, task.models)
        inp = _tokens(rng, task.input_tokens)
        out = _tokens(rng, task.output_tokens)
        reasoning = 0
        if model in REASONING_MODELS:
            reasoning = int(out * rng.uniform(0.8, 3.0))
            out += reasoning
        cache_read = 0
        if model.startswith("claude") and rng.random() < 0.45:
            cache_read = int(inp * rng.uniform(0.3, 0.8))
        # Time to first token grows with the prompt; then the model's decode speed.
        ttft, ms_per_token = MODEL_SPEED.get(model, (600.0, 12.0))
        latency = (ttft + inp * 0.01 + out * ms_per_token) * rng.lognormvariate(0, 0.3)
        latency += profile.overhead_ms
        failed = rng.random() < task.error_rate
        message = None
        if failed:
            message = _pick(rng, ERRORS)
            if message.startswith("APITimeout"):
                latency = 30_000 + rng.uniform(0, 400)
            elif message.startswith(("RateLimit", "BadRequest")):
                latency = rng.uniform(80, 400)
            out = 0
            reasoning = 0
        meta: dict[str, Any] = {"source": "demo", "prompt_version": f"v{rng.randint(2, 4)}"}
        if step is not None:
            meta["step"] = step
        if model in REASONING_MODELS:
            meta["reasoning_effort"] = _pick(rng, (("low", 0.3), ("medium", 0.5), ("high", 0.2)))
        event: dict[str, Any] = {
            "id": self._id(),
            "kind": "llm",
            "task_name": task.name,
            "agent_name": profile.name,
            "model": model,
            "provider": provider_for(model),
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": cache_read,
            "reasoning_tokens": reasoning,
            "latency_ms": round(latency, 1),
            "status": "error" if failed else "success",
            "error_message": message,
            "timestamp": _iso(start),
            "metadata": meta,
            "session_id": session_id,
            "user_id": user_id,
        }
        if trace_id:
            event["trace_id"] = trace_id
            event["parent_id"] = parent_id
        return event

    def _tool(
        self, profile: AgentProfile, task: Task, start: datetime, trace_id: str, parent_id: str
    ) -> dict[str, Any]:
        rng = self.rng
        failed = rng.random() < 0.03
        return {
            "id": self._id(),
            "kind": "tool",
            "task_name": task.name,
            "agent_name": profile.name,
            "model": "",
            "latency_ms": round(rng.uniform(60, 1_400), 1),
            "status": "error" if failed else "success",
            "error_message": f"ToolError: {task.tool} returned HTTP 503" if failed else None,
            "timestamp": _iso(start),
            "metadata": {"source": "demo", "tool": task.tool},
            "trace_id": trace_id,
            "parent_id": parent_id,
        }

    def unit(self, start: datetime, profile: AgentProfile | None = None) -> list[dict[str, Any]]:
        """One unit of traffic: a single LLM call, or a task run with its nested calls."""
        rng = self.rng
        profile = profile or _pick(rng, ((p, p.weight) for p in PROFILES))
        task: Task = _pick(rng, profile.tasks)
        user = rng.choice(profile.users) if profile.users else None
        session = f"s-{rng.getrandbits(32):08x}"
        if rng.random() >= task.run_share:
            return [self._call(profile, task, start, session_id=session, user_id=user)]

        run_id = self._id()
        trace_id = uuid.uuid5(ID_NAMESPACE, f"trace:{run_id}").hex
        steps = rng.randint(*task.steps)
        # Runs usually stay on one model; a step may escalate to another.
        model = _pick(rng, task.models)
        children: list[dict[str, Any]] = []
        t = start + timedelta(milliseconds=rng.uniform(5, 40))
        failed = False
        for i in range(steps):
            if task.tool and i > 0 and rng.random() < 0.6:
                tool = self._tool(profile, task, t, trace_id, run_id)
                children.append(tool)
                t += timedelta(milliseconds=tool["latency_ms"] + rng.uniform(5, 30))
            step_model = model if rng.random() < 0.8 else _pick(rng, task.models)
            call = self._call(
                profile,
                task,
                t,
                step_model,
                session_id=session,
                user_id=user,
                trace_id=trace_id,
                parent_id=run_id,
                step=i + 1,
            )
            children.append(call)
            t += timedelta(milliseconds=call["latency_ms"] + rng.uniform(10, 120))
            # A failed step ends the run half of the time; otherwise the agent retries on.
            if call["status"] == "error" and rng.random() < 0.5:
                failed = True
                break
        duration = (t - start).total_seconds() * 1000 + rng.uniform(5, 50)
        run = {
            "id": run_id,
            "kind": "task",
            "task_name": task.name,
            "agent_name": profile.name,
            "model": "",
            "latency_ms": round(duration, 1),
            "status": "error" if failed else "success",
            "error_message": children[-1]["error_message"] if failed else None,
            "timestamp": _iso(start),
            "metadata": {"source": "demo", "steps": len(children)},
            "trace_id": trace_id,
            "session_id": session,
            "user_id": user,
        }
        return [run, *children]


def backfill_events(
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    days: int = BACKFILL_DAYS,
    target: int = TARGET_EVENTS,
    tz: tzinfo | None = None,
) -> list[dict[str, Any]]:
    """The backfill data set: deterministic for a given ``seed``, ``end`` and ``tz``.

    ``end`` defaults to now, rounded down to 10 minutes; the daily pattern follows
    ``tz`` (default: this machine's local time zone).
    """
    if end is None:
        now = datetime.now(UTC)
        end = now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    tz = tz or datetime.now().astimezone().tzinfo
    gen = Generator(seed)
    rng = gen.rng
    hours = [end - timedelta(hours=h) for h in range(days * 24, 0, -1)]
    # Traffic follows the clock hour each slot mostly falls in.
    weights = [hour_weight((h + timedelta(minutes=30)).astimezone(tz)) for h in hours]
    # A unit averages ~1.6 events (some are task runs with nested calls).
    units_total = target / 1.6
    per_weight = units_total / sum(weights)
    events: list[dict[str, Any]] = []
    for hour, w in zip(hours, weights, strict=True):
        expected = w * per_weight
        # Poisson-ish jitter around the expected count, drawn from the same rng.
        n = max(0, round(rng.gauss(expected, math.sqrt(expected))))
        starts = sorted(rng.uniform(0, 3600) for _ in range(n))
        for s in starts:
            events.extend(gen.unit(hour + timedelta(seconds=s)))
    return events


# ---------------------------------------------------------------- HTTP client


class DemoError(RuntimeError):
    """The server could not be reached or refused a batch."""


def post_events(server: str, events: list[dict[str, Any]], timeout: float = 30.0) -> int:
    """POST one batch to ``/api/events``; returns the count the server acknowledged."""
    body = json.dumps({"events": events}).encode()
    req = urllib.request.Request(
        server.rstrip("/") + "/api/events",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise DemoError(f"server answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(
            f"cannot reach {server} ({reason}); is `agentwatch serve` running?"
        ) from None
    return int(payload.get("count", len(events)))


def _batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


class Progress:
    """A one-line progress bar on a terminal; a few plain lines otherwise."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total = max(total, 1)
        self.out = out
        self.width = width
        self.tty = out.isatty()
        self._last_pct = -1

    def update(self, done: int) -> None:
        frac = min(done / self.total, 1.0)
        pct = int(frac * 100)
        filled = int(frac * self.width)
        bar = "█" * filled + "░" * (self.width - filled)
        line = f"  [{bar}] {pct:3d}%  {done:,}/{self.total:,} events"
        if self.tty:
            self.out.write("\r" + line)
            if done >= self.total:
                self.out.write("\n")
            self.out.flush()
        elif pct // 25 != self._last_pct // 25 or done >= self.total:
            self.out.write(line + "\n")
            self.out.flush()
        self._last_pct = pct


def run_backfill(
    server: str,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    events = backfill_events(seed=seed, end=end)
    agents = sorted({e["agent_name"] for e in events})
    runs = sum(1 for e in events if e["kind"] == "task")
    out.write(
        f"Backfilling {len(events):,} events ({runs:,} task runs, {len(agents)} agents, "
        f"{BACKFILL_DAYS} days) into {server}\n"
    )
    progress = Progress(len(events), out)
    done = 0
    progress.update(0)
    for batch in _batches(events, BATCH_SIZE):
        post_events(server, batch)
        done += len(batch)
        progress.update(done)
    out.write(f"Done. Open {server.rstrip('/')}/ to see the dashboard.\n")
    return len(events)


# ---------------------------------------------------------------- live mode

RESET = "\033[0m"
DIM = "\033[2m"
BOLD = "\033[1m"
GREEN = "\033[32m"
RED = "\033[31m"
AGENT_COLOURS = ("\033[36m", "\033[35m", "\033[33m", "\033[34m", "\033[92m", "\033[96m")


@dataclass
class Session:
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    llm_calls: int = 0
    runs: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latencies: list[float] = field(default_factory=list)
    per_agent: dict[str, int] = field(default_factory=dict)
    failed_posts: int = 0

    def add(self, event: dict[str, Any], cost: float) -> None:
        self.events += 1
        if event["kind"] == "task":
            self.runs += 1
            return
        if event["kind"] != "llm":
            return
        self.llm_calls += 1
        self.per_agent[event["agent_name"]] = self.per_agent.get(event["agent_name"], 0) + 1
        self.errors += event["status"] == "error"
        self.input_tokens += event.get("input_tokens", 0)
        self.output_tokens += event.get("output_tokens", 0)
        self.cost += cost
        self.latencies.append(event["latency_ms"])


def _cost_fn() -> Callable[[dict[str, Any]], float]:
    """A local cost estimate for the terminal output (the server prices events itself)."""
    try:
        from agentwatch.pricing import PriceBook
    except Exception:  # pragma: no cover - pricing is part of the package

        def none(event: dict[str, Any]) -> float:
            return 0.0

        return none
    book = PriceBook()

    def cost(event: dict[str, Any]) -> float:
        if event["kind"] != "llm":
            return 0.0
        try:
            return book.cost(
                event["model"],
                event.get("input_tokens", 0),
                event.get("output_tokens", 0),
                event.get("cache_read_tokens", 0),
                event.get("cache_write_tokens", 0),
                provider=event.get("provider"),
            )
        except Exception:
            return 0.0

    return cost


def _colour_enabled(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def format_line(event: dict[str, Any], cost: float, colour: bool) -> str:
    def c(code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if colour else text

    agent = event["agent_name"]
    agent_code = AGENT_COLOURS[sum(agent.encode()) % len(AGENT_COLOURS)]
    ok = event["status"] == "success"
    mark = c(GREEN, "✓") if ok else c(RED, "✗")
    clock = datetime.fromisoformat(event["timestamp"]).astimezone().strftime("%H:%M:%S")
    prefix = "  └ " if event.get("parent_id") else ""
    kind = event["kind"]
    if kind == "task":
        what = c(BOLD, f"run {event['task_name']}")
        detail = f"{event['metadata'].get('steps', '?')} steps"
    elif kind == "tool":
        what = f"tool {event['metadata'].get('tool', '?')}"
        detail = ""
    else:
        what = f"{event['task_name']:<18} {event['model']:<26}"
        detail = f"{event['input_tokens']:>6,} in {event['output_tokens']:>5,} out  ${cost:.4f}"
    line = (
        f"{c(DIM, clock)} {mark} {prefix}{c(agent_code, f'{agent:<15}')} {what} "
        f"{detail}  {event['latency_ms']:,.0f} ms"
    )
    if not ok and event.get("error_message"):
        line += "  " + c(RED, event["error_message"].split(":")[0])
    return line


def _summary(session: Session, colour: bool) -> str:
    secs = time.monotonic() - session.started
    lat = sorted(session.latencies)

    def pct(p: float) -> str:
        if not lat:
            return "-"
        return f"{lat[min(len(lat) - 1, int(p * len(lat)))]:,.0f} ms"

    rate = 100.0 * (1 - session.errors / session.llm_calls) if session.llm_calls else 0.0
    title = "Session summary"
    lines = [
        "",
        f"{BOLD}{title}{RESET}" if colour else title,
        f"  duration       {secs:,.1f} s",
        f"  events sent    {session.events:,} ({session.llm_calls:,} LLM calls, "
        f"{session.runs:,} task runs)",
        f"  success rate   {rate:.1f}% ({session.errors:,} errors)",
        f"  tokens         {session.input_tokens:,} in / {session.output_tokens:,} out",
        f"  est. cost      ${session.cost:,.4f}",
        f"  latency        p50 {pct(0.5)}, p95 {pct(0.95)}",
    ]
    if session.failed_posts:
        lines.append(f"  failed posts   {session.failed_posts:,} (server unreachable)")
    for agent, n in sorted(session.per_agent.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {agent:<16} {n:,} calls")
    return "\n".join(lines) + "\n"


def live_batch(gen: Generator, now: datetime) -> list[dict[str, Any]]:
    """1-3 events: single calls, or a short task run (a run plus one or two calls)."""
    rng = gen.rng
    want = rng.randint(1, 3)
    events: list[dict[str, Any]] = []
    while len(events) < want:
        unit = gen.unit(now)
        if len(unit) > 1:
            if events:
                break
            # Keep the run's head so the budget holds; its duration then covers
            # only the steps that were sent, and the whole run ends now.
            want = max(want, 2)  # a run travels with at least one step
            unit = unit[:want]
            run, children = unit[0], unit[1:]
            start = datetime.fromisoformat(run["timestamp"])
            end = max(
                datetime.fromisoformat(c["timestamp"]) + timedelta(milliseconds=c["latency_ms"])
                for c in children
            )
            run["latency_ms"] = round((end - start).total_seconds() * 1000 + 5, 1)
            run["metadata"]["steps"] = len(children)
            if run["status"] == "error" and children[-1]["status"] != "error":
                run["status"], run["error_message"] = "success", None
            shift = timedelta(milliseconds=run["latency_ms"])
            for e in unit:
                e["timestamp"] = _iso(datetime.fromisoformat(e["timestamp"]) - shift)
        events.extend(unit)
    return events


def run_live(
    server: str,
    speed: float = 1.0,
    seed: int | None = None,
    max_batches: int | None = None,
    out: TextIO | None = None,
) -> Session:
    out = out or sys.stdout
    colour = _colour_enabled(out)
    gen = Generator(
        seed if seed is not None else random.SystemRandom().randrange(2**32),
        stream=f"live-{time.time_ns()}",
    )
    cost_of = _cost_fn()
    session = Session()
    out.write(f"Streaming simulated events to {server} (speed x{speed:g}); Ctrl+C to stop.\n")
    out.flush()
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            events = live_batch(gen, datetime.now(UTC))
            try:
                post_events(server, events, timeout=10.0)
            except DemoError as exc:
                session.failed_posts += 1
                out.write(f"{RED if colour else ''}! {exc}{RESET if colour else ''}\n")
            else:
                for e in events:
                    cost = cost_of(e)
                    session.add(e, cost)
                    out.write(format_line(e, cost, colour) + "\n")
            out.flush()
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
            time.sleep(gen.rng.uniform(2.0, 5.0) / speed)
    except KeyboardInterrupt:
        pass
    out.write(_summary(session, colour))
    out.flush()
    return session


# ---------------------------------------------------------------- CLI


def build_parser(prog: str = "demo.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Send simulated AI-agent traffic to an AgentWatch server.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="stream simulated events (default mode)")
    mode.add_argument(
        "--backfill", action="store_true", help="write 7 days of history (about 3,500 events)"
    )
    p.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("AGENTWATCH_SERVER", DEFAULT_SERVER),
        help=f"AgentWatch server (default: {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--speed",
        metavar="MULTIPLIER",
        type=float,
        default=1.0,
        help="speed multiplier for live mode (default: 1.0)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"random seed (backfill default: {DEFAULT_SEED}; live default: random)",
    )
    p.add_argument(
        "--end",
        metavar="ISO8601",
        default=None,
        help="backfill: end of the 7-day window (default: now, rounded down to 10 minutes)",
    )
    p.add_argument(
        "--batches",
        type=int,
        default=None,
        metavar="N",
        help="live: stop after N batches instead of running until Ctrl+C",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    # `agentwatch demo ...` and `python demo.py ...` both name themselves correctly.
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "demo.py"
    prog = "agentwatch demo" if invoked.startswith("agentwatch") else "demo.py"
    args = build_parser(prog).parse_args(argv)
    if args.speed <= 0:
        print("demo: --speed must be > 0", file=sys.stderr)
        return 2
    server = args.server.rstrip("/")
    try:
        if args.backfill:
            end = None
            if args.end:
                end = datetime.fromisoformat(args.end)
            run_backfill(server, seed=DEFAULT_SEED if args.seed is None else args.seed, end=end)
            return 0
        # SIGTERM ends a live session as cleanly as Ctrl+C (summary included).
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        run_live(server, speed=args.speed, seed=args.seed, max_batches=args.batches)
        return 0
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
