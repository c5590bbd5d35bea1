"""What the terminal shows: the backfill's progress bar, live lines and the session summary."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO


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


def cost_fn() -> Callable[[dict[str, Any]], float]:
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


def colour_enabled(out: TextIO) -> bool:
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


def summary(session: Session, colour: bool) -> str:
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
