"""Who the simulated traffic comes from: five agents, their tasks, models and error rates.

Figures are rough public ones (throughput per model, a plausible mix of
failures); they shape the data so that a dashboard has something to show:
a busy agent, an expensive one, a flaky task, reasoning and cached tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
