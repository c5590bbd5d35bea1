"""The event generator: seeded, deterministic, shaped like real agent traffic.

Every random choice comes from one ``random.Random(seed)``; event ids are
UUIDv5 values of the seed, a stream name and the event's position, so the
same seed makes the same events and a second backfill stores nothing twice.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from agentwatch.demo.profiles import (
    ERRORS,
    MODEL_SPEED,
    PROFILES,
    REASONING_MODELS,
    AgentProfile,
    Task,
    hour_weight,
    provider_for,
)

DEFAULT_SEED = 42
BACKFILL_DAYS = 7
# About 500 events a day: the brief's figure for a week of demo data.
TARGET_EVENTS = 3_500
# Namespace for deterministic event ids (uuid5 of seed + position).
ID_NAMESPACE = uuid.UUID("6f1c2b7e-3d4a-5e6f-8a9b-0c1d2e3f4a5b")


def pick(rng: random.Random, items: Iterable[tuple[Any, float]]) -> Any:
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
        model = model or pick(rng, task.models)
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
            message = pick(rng, ERRORS)
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
            meta["reasoning_effort"] = pick(rng, (("low", 0.3), ("medium", 0.5), ("high", 0.2)))
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
        profile = profile or pick(rng, ((p, p.weight) for p in PROFILES))
        task: Task = pick(rng, profile.tasks)
        user = rng.choice(profile.users) if profile.users else None
        session = f"s-{rng.getrandbits(32):08x}"
        if rng.random() >= task.run_share:
            return [self._call(profile, task, start, session_id=session, user_id=user)]

        run_id = self._id()
        trace_id = uuid.uuid5(ID_NAMESPACE, f"trace:{run_id}").hex
        steps = rng.randint(*task.steps)
        # Runs usually stay on one model; a step may escalate to another.
        model = pick(rng, task.models)
        children: list[dict[str, Any]] = []
        t = start + timedelta(milliseconds=rng.uniform(5, 40))
        failed = False
        for i in range(steps):
            if task.tool and i > 0 and rng.random() < 0.6:
                tool = self._tool(profile, task, t, trace_id, run_id)
                children.append(tool)
                t += timedelta(milliseconds=tool["latency_ms"] + rng.uniform(5, 30))
            step_model = model if rng.random() < 0.8 else pick(rng, task.models)
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
