"""How a figure is shown: the rounding and the rates, written once.

The store returns raw sums (store/base.py `Totals`); the metrics routers and
the alert evaluator show them the same way, so a rule on cost or error rate
fires on exactly the number the dashboard displays. Free of FastAPI, so the
evaluator and `agentwatch alerts test` do not load it for this.
"""

from __future__ import annotations

from agentwatch.store.base import Totals


def rounded(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def cost_usd(cost: float) -> float:
    """A cost as shown: rounded to a millionth of a dollar."""
    return round(cost, 6)


def error_rate(t: Totals) -> float | None:
    """Errors per hundred LLM calls, to 3 places; None without calls."""
    return round(100.0 * t.errors / t.requests, 3) if t.requests else None


def avg_latency(t: Totals) -> float | None:
    return rounded(t.latency_sum / t.requests) if t.requests else None
