"""What the browser tests share: posting events, asking the API, opening the page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from agentwatch import demo

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<img src=x onerror="window.__pwned=1;alert(1)">'


# ---------------------------------------------------------------- helpers


def api(server: Any, path: str, **params: Any) -> Any:
    r = httpx.get(server.url + path, params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def post(server: Any, *events: dict[str, Any]) -> None:
    r = httpx.post(server.url + "/api/events", json={"events": list(events)}, timeout=10)
    assert r.status_code == 200, r.text


def llm_event(**over: Any) -> dict[str, Any]:
    e = {
        "id": str(uuid.uuid4()),
        "task_name": "unit-task",
        "agent_name": "unit-agent",
        "model": "gpt-4o-mini",
        "input_tokens": 1200,
        "output_tokens": 300,
        "latency_ms": 850.0,
        "status": "success",
        "timestamp": datetime.now(UTC).isoformat(),
        "metadata": {"source": "test"},
    }
    e.update(over)
    return e


def open_dashboard(page: Any, server: Any, query: str = "", ready: str = "true") -> None:
    page.goto(server.url + "/" + query)
    page.wait_for_selector(f'html[data-ready="{ready}"]')


def backfill(server: Any) -> None:
    assert demo.main(["--backfill", "--server", server.url]) == 0


def at(**delta: float) -> str:
    """An ISO timestamp this long ago (timedelta keywords)."""
    from datetime import timedelta

    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def run_event(run_id: str, when: datetime, **over: Any) -> dict[str, Any]:
    e = {
        "id": run_id,
        "kind": "task",
        "task_name": "plan-trip",
        "agent_name": "planner",
        "model": "",
        "latency_ms": 10_000.0,
        "status": "success",
        "timestamp": when.isoformat(),
        "trace_id": run_id,
    }
    e.update(over)
    return e


def run_with_calls(
    when: datetime, costs: list[float], *, failed: bool = False, **over: Any
) -> list[dict[str, Any]]:
    """A task run and one nested LLM call per cost (the last one failed if `failed`)."""
    from datetime import timedelta

    run_id = str(uuid.uuid4())
    run = run_event(
        run_id,
        when,
        status="error" if failed else "success",
        error_message="APITimeoutError: step timed out" if failed else None,
        **over,
    )
    calls = []
    for i, cost in enumerate(costs):
        last = i == len(costs) - 1
        calls.append(
            llm_event(
                task_name=run["task_name"],
                agent_name=run["agent_name"],
                timestamp=(when + timedelta(seconds=1 + 2 * i)).isoformat(),
                latency_ms=1500.0,
                cost_usd=cost,
                trace_id=run_id,
                parent_id=run_id,
                status="error" if failed and last else "success",
                error_message="APITimeoutError: step timed out" if failed and last else None,
                user_id=over.get("user_id"),
                session_id=over.get("session_id"),
            )
        )
    return [run, *calls]


def chart_data(page: Any, name: str) -> dict[str, Any]:
    """A chart's datasets (label, values, and each point's drawn radius) and axes."""
    return page.evaluate(
        """name => {
          const c = window.agentwatch.charts[name];
          return {
            labels: c.data.labels,
            xType: c.options.scales.x.type,
            xMin: c.scales.x.min, xMax: c.scales.x.max,
            xTicks: c.scales.x.ticks.map(t => ({value: t.value, label: t.label, major: !!t.major})),
            yTicks: c.scales.y.ticks.map(t => t.label),
            datasets: c.data.datasets.map((d, i) => {
              const meta = c.getDatasetMeta(i);
              return {
                label: d.label, data: d.data, spanGaps: !!d.spanGaps, type: d.type || c.config.type,
                borderDash: d.borderDash || [], order: d.order,
                radius: meta.data.map(p => p.options ? p.options.radius : 0),
                segments: meta.dataset ? meta.dataset.segments.length : null,
              };
            }),
          };
        }""",
        name,
    )
