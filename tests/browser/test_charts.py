"""Issue 15, items 1, 5 and 6 in Chromium: charts that tell the truth (a
single point shows, a gap stays a gap, a time axis with dates, tooltips with
the bucket's range and calls, sane empty ticks, zoom by dragging, stacked
cost), cards with deltas against the previous period that refresh on live
events, one money format, and the stale state."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser.helpers import api, at, chart_data, llm_event, open_dashboard, post

pytestmark = pytest.mark.browser

DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}(, \d{4})?$")
CLOCK = re.compile(r"^\d{2}:\d{2}$")


def values(ds: dict[str, Any]) -> list[tuple[int, float]]:
    return [(i, v) for i, v in enumerate(ds["data"]) if v is not None]


def test_a_single_call_is_a_visible_point(page: Any, server: Any) -> None:
    post(server, llm_event(latency_ms=854.0, cost_usd=0.0151))
    open_dashboard(page, server)
    lat = chart_data(page, "latency")
    for ds in lat["datasets"]:  # p50 and p95
        pts = values(ds)
        assert [v for _, v in pts] == [854.0], ds["label"]  # its own latency, not a bin's
        assert ds["radius"][pts[0][0]] > 0, "a lone value is drawn as a dot"
    cost = chart_data(page, "cost")
    assert [v for _, v in values(cost["datasets"][0])] == [0.0151]
    # The cards agree: one call's p50 and p95 are its latency, never below the average.
    assert page.text_content("#p50-value") == "854 ms"
    assert page.text_content("#p95-value") == "854 ms"
    assert page.text_content("#avg-latency") == "854 ms"
    assert page.text_content("#cost-value") == "$0.0151"
    assert page.get_attribute("#cost-value", "title") == "$0.0151"
    # Ticks read differently from each other (the old axis said "1 ms 1 ms 0 ms").
    for name in ("cost", "latency", "requests"):
        ticks = chart_data(page, name)["yTicks"]
        assert len(set(ticks)) == len(ticks), (name, ticks)


def test_a_gap_is_a_gap(page: Any, server: Any) -> None:
    post(
        server,
        llm_event(timestamp=at(hours=6), latency_ms=400.0),
        llm_event(timestamp=at(hours=5, minutes=55), latency_ms=900.0),
        llm_event(timestamp=at(hours=1), latency_ms=600.0, status="error", error_message="x"),
    )
    open_dashboard(page, server)
    series = api(server, "/api/metrics/timeseries", period="24h", bucket=20)
    empty = [i for i, n in enumerate(series["requests"]) if n == 0]
    checks = [
        ("latency", "p50"),
        ("latency", "p95"),
        ("cost", "Tokens"),
        ("requests", "error rate"),
    ]
    for chart, label in checks:
        data = chart_data(page, chart)
        ds = next(d for d in data["datasets"] if d["label"] == label)
        assert not ds["spanGaps"], (chart, label)
        pts = values(ds)
        assert len(pts) >= 2, (chart, label)
        # Every bucket without calls is null, not 0 and not interpolated ...
        assert all(ds["data"][i] is None for i in empty), (chart, label)
        # ... so the line breaks: the calls 6 h and 1 h ago are not joined.
        assert ds["segments"] >= 2, (chart, label, ds["segments"])
    # Bars have nothing to draw in empty buckets either.
    bars = chart_data(page, "requests")["datasets"][0]
    assert [i for i, _ in values(bars)] == [i for i, n in enumerate(series["requests"]) if n]


def test_time_axis_with_dates_and_tooltips_with_range_and_calls(page: Any, server: Any) -> None:
    # Two calls a day, in one 20-minute bucket of the 24 h chart (each pair an
    # hour or so ago, its 20 minutes aligned, so a boundary never splits it).
    from datetime import UTC, datetime, timedelta

    base = datetime.now(UTC) - timedelta(hours=1)
    base -= timedelta(minutes=base.minute % 20, seconds=base.second, microseconds=base.microsecond)
    post(
        server,
        *[
            llm_event(
                timestamp=(base - timedelta(days=d) + timedelta(minutes=5 * k + 1)).isoformat(),
                cost_usd=0.015125,
            )
            for d in range(6)
            for k in range(2)
        ],
    )
    open_dashboard(page, server, "?range=7d")
    for name in ("cost", "latency", "requests"):
        data = chart_data(page, name)
        assert data["xType"] == "time"
        labels = [t["label"] for t in data["xTicks"]]
        assert len(labels) >= 4 and all(DATE.match(x) for x in labels), (
            labels
        )  # a date on every tick
    # 24 h: times of day, and the date at midnight.
    page.click("#ranges button[data-range='24h']")
    page.wait_for_function("() => window.agentwatch.charts.cost.data.labels.length === 73")
    labels = [t["label"] for t in chart_data(page, "cost")["xTicks"]]
    assert any(DATE.match(x) for x in labels) and any(CLOCK.match(x) for x in labels), labels
    # The tooltip names the bucket's time range and its number of calls, and the exact cost.
    tip = page.evaluate(
        """() => {
          const c = window.agentwatch.charts.cost;
          const i = c.data.datasets[0].data.findIndex(v => v !== null);
          c.tooltip.setActiveElements([{datasetIndex: 0, index: i}], {x: 10, y: 10});
          c.update('none');
          return {title: c.tooltip.title, body: c.tooltip.body.map(b => b.lines.join(' '))};
        }"""
    )
    assert re.search(r"\d{2}:\d{2} \u2013 \d{2}:\d{2} · 2 calls$", tip["title"][0]), tip
    assert any("$0.03025" in line for line in tip["body"]), tip  # twice $0.015125, exact


def test_loading_and_empty_charts_say_so(page: Any, server: Any) -> None:
    post(server, llm_event())
    held: list[Any] = []
    page.route("**/api/metrics/summary*", lambda route: held.append(route))
    page.goto(server.url + "/")
    page.wait_for_function("() => document.querySelectorAll('#card-cost.is-loading').length === 1")
    # Loading shows placeholders, not a dash that reads as "no data".
    assert page.text_content("#cost-value") == ""
    assert page.text_content("#cost-empty") == "Loading…"
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    for r in held:
        r.continue_()
    page.unroute("**/api/metrics/summary*")
    page.wait_for_selector('html[data-ready="true"]')
    assert page.locator("#card-cost.is-loading").count() == 0
    # A filter that matches nothing: the overlay says so and the axes stay sane.
    page.goto(server.url + "/?agent=nobody")
    page.wait_for_selector('html[data-ready="true"]')
    assert page.locator("#latency-empty").is_visible()
    assert page.text_content("#latency-empty") == "No LLM calls in this range."
    for name in ("cost", "latency", "requests"):
        ticks = chart_data(page, name)["yTicks"]
        assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), (name, ticks)


def test_drag_across_a_chart_zooms(page: Any, server: Any) -> None:
    post(server, *[llm_event(timestamp=at(hours=h), cost_usd=0.01 * (h + 1)) for h in range(24)])
    open_dashboard(page, server)
    box = page.evaluate(
        """() => {
          const c = window.agentwatch.charts.latency, a = c.chartArea;
          const r = c.canvas.getBoundingClientRect();
          return {x: r.left + a.left, y: r.top + (a.top + a.bottom) / 2, w: a.right - a.left};
        }"""
    )
    page.mouse.move(box["x"] + box["w"] * 0.25, box["y"])
    page.mouse.down()
    page.mouse.move(box["x"] + box["w"] * 0.4, box["y"], steps=5)
    page.mouse.move(box["x"] + box["w"] * 0.5, box["y"], steps=5)
    page.mouse.up()
    page.wait_for_function("() => new URL(location.href).searchParams.has('from')")
    assert page.locator("#window-chip").is_visible()
    q = page.evaluate("() => Object.fromEntries(new URL(location.href).searchParams)")
    # About a quarter of the day, starting about 18 h ago.
    span_h = (_ts(q["to"]) - _ts(q["from"])) / 3600
    assert 5 <= span_h <= 7, q
    expected = api(server, "/api/metrics/summary", since=q["from"], until=q["to"])
    page.wait_for_function(
        "n => document.querySelector('#requests-value').dataset.value === String(n)",
        arg=expected["total_requests"],
    )
    assert float(page.get_attribute("#cost-value", "data-value")) == pytest.approx(
        expected["total_cost"]
    )
    cost = chart_data(page, "cost")
    assert (
        cost["xMin"] >= _ts(q["from"]) * 1000 - 3_600_000
        and cost["xMax"] <= _ts(q["to"]) * 1000 + 3_600_000
    )
    assert page.get_attribute("#ranges button[data-range='24h']", "aria-pressed") == "false"
    # The URL keeps it: a reload shows the same window; the chip's clear button goes back.
    page.reload()
    page.wait_for_selector('html[data-ready="true"]')
    assert page.locator("#window-chip").is_visible()
    page.click("#window-clear")
    page.wait_for_function("() => !new URL(location.href).searchParams.has('from')")
    assert page.get_attribute("#ranges button[data-range='24h']", "aria-pressed") == "true"


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_cost_stacks_by_model_and_lines_stay_visible(page: Any, server: Any) -> None:
    evs = []
    for h in range(0, 12, 2):
        evs.append(llm_event(timestamp=at(hours=h), model="gpt-4o", cost_usd=0.02))
        evs.append(llm_event(timestamp=at(hours=h, minutes=1), model="o3-mini", cost_usd=0.005))
    post(server, *evs)
    open_dashboard(page, server)
    page.select_option("#stack-select", "model")
    page.wait_for_function(
        "() => window.agentwatch.charts.cost.data.datasets.some(d => d.label === 'o3-mini')"
    )
    assert "stack=model" in page.url
    cost = chart_data(page, "cost")
    bars = [d for d in cost["datasets"] if d["type"] == "bar"]
    assert {d["label"] for d in bars} == {"gpt-4o", "o3-mini"}
    series = api(server, "/api/metrics/timeseries", period="24h", bucket=20)
    for i, total in enumerate(series["cost"]):
        stacked = sum((d["data"][i] or 0) for d in bars)
        assert stacked == pytest.approx(total), i
    # p50 and p95 both show: p95 dashed and drawn above p50.
    p50, p95 = chart_data(page, "latency")["datasets"]
    assert p95["borderDash"] and p95["order"] < p50["order"]
    # Requests: succeeded + failed bars add up to the requests per bucket.
    req = chart_data(page, "requests")["datasets"]
    for i, n in enumerate(series["requests"]):
        assert (req[0]["data"][i] or 0) + (req[1]["data"][i] or 0) == n


def test_deltas_against_the_previous_period(page: Any, server: Any) -> None:
    now = [
        llm_event(timestamp=at(hours=1), cost_usd=0.01, latency_ms=100.0),
        llm_event(timestamp=at(hours=2), cost_usd=0.02, latency_ms=200.0),
        llm_event(timestamp=at(hours=3), cost_usd=0.03, latency_ms=300.0),
    ]
    before = [
        llm_event(timestamp=at(hours=30), cost_usd=0.02, latency_ms=400.0),
        llm_event(timestamp=at(hours=40), cost_usd=0.02, latency_ms=400.0, agent_name="other"),
    ]
    post(server, *now, *before)
    open_dashboard(page, server)
    page.wait_for_function(
        "() => document.querySelector('#requests-delta').dataset.trend !== undefined"
    )
    assert page.text_content("#requests-delta") == "+50% vs previous 24 h"
    assert page.text_content("#cost-delta") == "+50% vs previous 24 h"
    assert page.text_content("#latency-delta") == "\u221250% vs previous 24 h"
    assert page.get_attribute("#latency-delta", "data-tone") == "good"  # faster is better
    assert page.text_content("#agents-delta") == "\u22121 vs previous 24 h"
    # 7 d: nothing before the window; "new" rather than a division by zero.
    page.click("#ranges button[data-range='7d']")
    page.wait_for_function("() => document.querySelector('#requests-value').dataset.value === '5'")
    page.wait_for_function(
        "() => document.querySelector('#requests-delta').textContent.startsWith('new')"
    )
    assert page.text_content("#requests-delta") == "new: none in the previous 7 d"
    # All time has no previous period: no delta line.
    page.click("#ranges button[data-range='all']")
    page.wait_for_selector("#requests-delta", state="hidden")


def test_cards_refresh_on_live_events_and_money_is_exact(page: Any, server: Any) -> None:
    post(server, llm_event(cost_usd=0.5))
    summaries: list[str] = []
    page.on(
        "request",
        lambda r: summaries.append(r.url) if "/api/metrics/summary?period" in r.url else None,
    )
    open_dashboard(page, server)
    page.wait_for_selector("#conn[data-state='connected']")
    first = len(summaries)
    t0 = time.monotonic()
    for i in range(4):  # a burst of live events: one refresh, not one per event
        post(server, llm_event(cost_usd=0.015125 if i == 0 else 0.000063))
        page.wait_for_timeout(200)
    page.wait_for_function(
        "() => document.querySelector('#requests-value').dataset.value === '5'", timeout=10_000
    )
    assert time.monotonic() - t0 < 10  # well before the 30 s timer
    page.wait_for_timeout(1500)
    assert len(summaries) - first <= 2, summaries
    # One money format: three significant digits under $1, exact in tooltips and the dialog.
    texts = page.eval_on_selector_all(
        "#feed li[data-id] .f-cost", "els => els.map(e => e.textContent)"
    )
    assert "$0.0151" in texts and "$0.000063" in texts and "$0.50" in texts
    row = page.locator("#feed li[data-id]").filter(has_text="$0.0151").first
    assert row.locator(".f-cost").get_attribute("title") == "$0.015125"
    row.click()
    assert page.text_content("#detail dd[data-field='cost_usd']") == "$0.015125"
    assert page.text_content("#cost-value") == "$0.515"
    assert page.get_attribute("#cost-value", "title") == "$0.515314"
