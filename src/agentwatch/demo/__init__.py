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

Modules: ``profiles`` (the simulated agents), ``generator`` (events from a
seed), ``send`` (the HTTP POST), ``view`` (what the terminal shows), ``cli``
(the modes and their options).
"""

from agentwatch.demo.cli import build_parser, main, run_backfill, run_live
from agentwatch.demo.generator import DEFAULT_SEED, Generator, backfill_events, live_batch
from agentwatch.demo.profiles import PROFILES, AgentProfile, Task, hour_weight, provider_for
from agentwatch.demo.send import DemoError, post_events
from agentwatch.demo.view import Session, format_line, summary

__all__ = [
    "DEFAULT_SEED",
    "PROFILES",
    "AgentProfile",
    "DemoError",
    "Generator",
    "Session",
    "Task",
    "backfill_events",
    "build_parser",
    "format_line",
    "hour_weight",
    "live_batch",
    "main",
    "post_events",
    "provider_for",
    "run_backfill",
    "run_live",
    "summary",
]
