"""The dashboard in a real Chromium against a real server.

Each test starts its own `agentwatch serve` (tests/conftest.py), fills it
through the public HTTP API (the demo backfill or hand-made events), opens the
page and checks what a user would check: the numbers, the charts, the feed.
The `page` fixture fails any test whose page logs a console error, throws,
opens a dialog or sends a request anywhere but the local server.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentwatch import demo
from tests.browser.helpers import (
    HOSTILE,
    ROOT,
    api,
    llm_event,
    open_dashboard,
    post,
    run_event,
)

pytestmark = pytest.mark.browser


def card_values(page: Any) -> dict[str, str]:
    return page.evaluate(
        """() => ({
          cost: document.querySelector('#cost-value').dataset.value,
          requests: document.querySelector('#requests-value').dataset.value,
          requestsText: document.querySelector('#requests-value').textContent,
          rate: document.querySelector('#success-badge').dataset.value,
          level: document.querySelector('#success-badge').dataset.level,
          p50: document.querySelector('#p50-value').dataset.value,
          p95: document.querySelector('#p95-value').dataset.value,
          agents: document.querySelector('#agents-value').dataset.value,
          tags: [...document.querySelectorAll('#agent-tags .tag')].map(t => t.textContent),
        })"""
    )


def assert_cards_match(page: Any, server: Any, period: str, **filters: str) -> None:
    """The cards show exactly what /api/metrics/summary returns for the same view."""
    expected = api(server, "/api/metrics/summary", period=period, **filters)
    # A refresh may still be in flight after a click; wait for it to land.
    page.wait_for_function(
        "n => document.querySelector('#requests-value').dataset.value === String(n)",
        arg=expected["total_requests"],
    )
    got = card_values(page)
    assert int(got["requests"]) == expected["total_requests"]
    assert got["requestsText"] == f"{expected['total_requests']:,}"
    assert float(got["cost"]) == pytest.approx(expected["total_cost"])
    assert float(got["rate"]) == pytest.approx(expected["success_rate"])
    assert float(got["p50"]) == pytest.approx(expected["latency_p50"])
    assert float(got["p95"]) == pytest.approx(expected["latency_p95"])
    assert int(got["agents"]) == len(expected["active_agents"])
    assert sorted(got["tags"]) == sorted(expected["active_agents"])


def chart_state(page: Any) -> dict[str, Any]:
    """What each chart holds and whether its canvas has visible pixels."""
    return page.evaluate(
        """() => {
          const c = window.agentwatch.charts;
          const painted = (chart) => {
            const cv = chart.canvas, ctx = cv.getContext('2d');
            const px = ctx.getImageData(0, 0, cv.width, cv.height).data;
            let n = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
            return n;
          };
          const sum = (a) => a.reduce((s, v) => s + (v || 0), 0);
          return {
            costLabels: c.cost.data.labels.length,
            costSum: sum(c.cost.data.datasets[0].data),
            tokensSum: sum(c.cost.data.datasets[1].data),
            p95Max: Math.max(...c.latency.data.datasets[1].data.map(v => v || 0)),
            costPixels: painted(c.cost),
            latencyPixels: painted(c.latency),
          };
        }"""
    )


def breakdown_rows(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('#breakdown-table tbody tr[data-name]')].map(tr => ({
          name: tr.dataset.name,
          requests: Number(tr.children[1].dataset.value),
          cost: Number(tr.children[4].dataset.value),
          error: Number(tr.children[5].dataset.value),
          level: tr.querySelector('.error-bar').dataset.level,
        }))"""
    )


# ---------------------------------------------------------------- tests


def test_cards_and_charts_show_the_api_numbers(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server)
    assert_cards_match(page, demo_server, "24h")
    assert page.locator("#conn-label").text_content() == "Connected"
    assert page.locator("#updated").text_content().startswith("Updated")
    assert page.locator("#card-cost .sparkline path").count() == 2

    series = api(demo_server, "/api/metrics/timeseries", period="24h", bucket=20)
    charts = chart_state(page)
    assert charts["costLabels"] == len(series["timestamps"])
    assert charts["costSum"] == pytest.approx(sum(series["cost"]))
    assert charts["tokensSum"] == sum(series["tokens"])
    assert charts["costPixels"] > 1000 and charts["latencyPixels"] > 1000
    assert not page.locator("#empty").is_visible()


def test_switching_the_range_changes_the_numbers(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server)
    day = card_values(page)
    page.click("#ranges button[data-range='7d']")
    page.wait_for_function(
        "n => document.querySelector('#requests-value').dataset.value !== n", arg=day["requests"]
    )
    assert "range=7d" in page.url
    assert page.get_attribute("#ranges button[data-range='7d']", "aria-pressed") == "true"
    assert_cards_match(page, demo_server, "7d")
    week = card_values(page)
    assert int(week["requests"]) > int(day["requests"])
    # The charts follow the range too.
    series = api(demo_server, "/api/metrics/timeseries", period="7d", bucket=120)
    page.wait_for_function(
        "n => window.agentwatch.charts.cost.data.labels.length === n",
        arg=len(series["timestamps"]),
    )
    assert chart_state(page)["costSum"] == pytest.approx(sum(series["cost"]))

    # The URL holds the view: a reload (or a shared link) shows the same range.
    page.reload()
    page.wait_for_selector('html[data-ready="true"]')
    assert page.get_attribute("#ranges button[data-range='7d']", "aria-pressed") == "true"
    assert_cards_match(page, demo_server, "7d")


def test_breakdown_tabs_and_sorting(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server, "?range=7d")
    rows = breakdown_rows(page)
    expected = api(demo_server, "/api/metrics/breakdown", group_by="agent_name", period="7d")
    assert [r["name"] for r in rows] == [e["name"] for e in expected]  # cost desc, as the API
    for r, e in zip(rows, expected, strict=True):
        assert r["requests"] == e["requests"]
        want = "good" if e["error_rate"] < 5 else "warn" if e["error_rate"] <= 15 else "bad"
        assert r["level"] == want

    page.click("#breakdown-tabs [data-group='model']")
    models = api(demo_server, "/api/metrics/breakdown", group_by="model", period="7d")
    page.wait_for_function(
        "n => document.querySelectorAll('#breakdown-table tbody tr[data-name]').length === n",
        arg=len(models),
    )
    assert {r["name"] for r in breakdown_rows(page)} == {m["name"] for m in models}
    assert page.get_attribute("#breakdown-tabs [data-group='model']", "aria-selected") == "true"
    assert "tab=model" in page.url

    # Requests: first click sorts descending, the second ascending.
    page.click("#breakdown-table th[data-key='requests'] button")
    counts = [r["requests"] for r in breakdown_rows(page)]
    assert counts == sorted(counts, reverse=True)
    th = "#breakdown-table th[data-key='requests']"
    assert page.get_attribute(th, "aria-sort") == "descending"
    page.click("#breakdown-table th[data-key='requests'] button")
    counts = [r["requests"] for r in breakdown_rows(page)]
    assert counts == sorted(counts)
    page.click("#breakdown-table th[data-key='name'] button")
    names = [r["name"] for r in breakdown_rows(page)]
    assert names == sorted(names, key=str.lower) or names == sorted(names)

    page.click("#breakdown-tabs [data-group='task_name']")
    tasks = api(demo_server, "/api/metrics/breakdown", group_by="task_name", period="7d")
    page.wait_for_function(
        "n => document.querySelectorAll('#breakdown-table tbody tr[data-name]').length === n",
        arg=len(tasks),
    )
    levels = {r["name"]: r["level"] for r in breakdown_rows(page)}
    for t in tasks:
        want = "good" if t["error_rate"] < 5 else "warn" if t["error_rate"] <= 15 else "bad"
        assert levels[t["name"]] == want, t
    # The demo has one flaky task, so all three colours are on show.
    assert levels["suggest-fix"] == "bad"


def test_a_filter_narrows_every_panel(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server, "?range=7d")
    page.click("#breakdown-table tbody tr[data-name='support-agent']")
    page.wait_for_selector("#filterbar .chip")
    assert "agent=support-agent" in page.url
    assert page.locator("#filterbar .chip-value").text_content() == "support-agent"

    page.wait_for_function(
        "() => document.querySelectorAll('#breakdown-table tbody tr[data-name]').length === 1"
    )
    assert_cards_match(page, demo_server, "7d", agent_name="support-agent")
    assert [r["name"] for r in breakdown_rows(page)] == ["support-agent"]

    series = api(
        demo_server, "/api/metrics/timeseries", period="7d", bucket=120, agent_name="support-agent"
    )
    page.wait_for_function(
        "v => Math.abs(window.agentwatch.charts.cost.data.datasets[0].data"
        ".reduce((s, x) => s + (x || 0), 0) - v) < 1e-9",
        arg=sum(series["cost"]),
    )
    # The feed holds only this agent's events.
    page.wait_for_function(
        "() => { const b = [...document.querySelectorAll('#feed .badge.agent')];"
        " return b.length > 0 && b.every(x => x.textContent === 'support-agent'); }"
    )
    # A live event from another agent does not show up; one from this agent does.
    other = llm_event(agent_name="research-bot", task_name="filtered-out")
    mine = llm_event(agent_name="support-agent", task_name="filtered-in")
    post(demo_server, other, mine)
    page.wait_for_selector(f"#feed li[data-id='{mine['id']}']")
    assert page.locator(f"#feed li[data-id='{other['id']}']").count() == 0

    # By-model tab under the filter: the API's per-model numbers for this agent.
    page.click("#breakdown-tabs [data-group='model']")
    models = api(
        demo_server,
        "/api/metrics/breakdown",
        group_by="model",
        period="7d",
        agent_name="support-agent",
    )
    page.wait_for_function(
        "names => { const got = [...document.querySelectorAll("
        "'#breakdown-table tbody tr[data-name]')].map(r => r.dataset.name).sort();"
        " return JSON.stringify(got) === JSON.stringify(names); }",
        arg=sorted(m["name"] for m in models),
    )

    # A second filter from a model row; both chips show, each clears its own.
    page.click(f"#breakdown-table tbody tr[data-name='{models[0]['name']}']")
    page.wait_for_function("() => document.querySelectorAll('#filterbar .chip').length === 2")
    assert_cards_match(page, demo_server, "7d", agent_name="support-agent", model=models[0]["name"])
    page.click("#filterbar .chip[data-dim='agent_name'] .chip-clear")
    page.wait_for_function("() => document.querySelectorAll('#filterbar .chip').length === 1")
    assert "agent=" not in page.url
    assert_cards_match(page, demo_server, "7d", model=models[0]["name"])
    page.click("#filterbar .chip-clear")
    page.wait_for_selector("#filterbar", state="hidden")
    assert_cards_match(page, demo_server, "7d")


def test_agent_tag_filters_and_back_button_restores(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server)
    page.click("#agent-tags .tag >> text=research-bot")
    page.wait_for_selector("#filterbar .chip")
    assert_cards_match(page, demo_server, "24h", agent_name="research-bot")
    page.go_back()
    page.wait_for_selector("#filterbar", state="hidden")
    assert_cards_match(page, demo_server, "24h")


def test_url_state_is_applied_on_load(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server, "?range=7d&task=draft-reply&tab=model")
    assert page.get_attribute("#ranges button[data-range='7d']", "aria-pressed") == "true"
    assert page.get_attribute("#breakdown-tabs [data-group='model']", "aria-selected") == "true"
    assert page.locator("#filterbar .chip-value").text_content() == "draft-reply"
    assert_cards_match(page, demo_server, "7d", task_name="draft-reply")


def test_posted_event_appears_in_the_live_feed(page: Any, demo_server: Any) -> None:
    open_dashboard(page, demo_server)
    page.wait_for_selector("#conn[data-state='connected']")
    ev = llm_event(task_name="brand-new-task", cost_usd=0.1234)
    post(demo_server, ev)
    # The promise: a posted event shows within 2 s.
    row = page.locator(f"#feed li[data-id='{ev['id']}']")
    row.wait_for(timeout=2_000)
    assert page.locator("#feed li").first.get_attribute("data-id") == ev["id"]  # newest on top
    text = row.inner_text()
    for part in ("unit-agent", "brand-new-task", "gpt-4o-mini", "1.2K / 300", "$0.12", "850 ms"):
        assert part in text


def test_feed_is_capped(page: Any, server: Any) -> None:
    post(server, llm_event())
    open_dashboard(page, server)
    page.wait_for_selector("#conn[data-state='connected']")
    cap = 100  # FEED_CAP in static/js/feed.js
    last = None
    for i in range(3):
        batch = [llm_event(task_name=f"cap-{i}-{j}") for j in range(50)]
        post(server, *batch)
        last = batch[-1]
    page.wait_for_selector(f"#feed li[data-id='{last['id']}']")
    assert page.locator("#feed li").count() == cap


def test_reconnects_after_a_server_restart(page: Any, demo_server: Any) -> None:
    page.watch.allow_network_errors = True
    open_dashboard(page, demo_server)
    page.wait_for_selector("#conn[data-state='connected']")
    demo_server.stop()
    page.wait_for_selector("#conn[data-state='reconnecting']")
    assert page.locator("#conn-label").text_content() == "Reconnecting"
    demo_server.start()
    page.wait_for_selector("#conn[data-state='connected']", timeout=15_000)
    assert page.locator("#conn-label").text_content() == "Connected"
    ev = llm_event(task_name="after-restart")
    post(demo_server, ev)
    page.wait_for_selector(f"#feed li[data-id='{ev['id']}']")


def test_event_detail_shows_every_field(page: Any, server: Any) -> None:
    ev = llm_event(
        task_name="detail-task",
        status="error",
        error_message="RateLimitError: 429 slow down",
        metadata={"prompt_version": "v7", "nested": {"k": [1, 2]}},
        cache_read_tokens=200,
        reasoning_tokens=50,
        trace_id="trace-abc",
        user_id="user-42",
        session_id="sess-9",
    )
    post(server, ev)
    open_dashboard(page, server)
    page.click(f"#feed li[data-id='{ev['id']}']")
    dialog = page.locator("#detail")
    dialog.wait_for()
    for key, value in {
        "id": ev["id"],
        "agent_name": "unit-agent",
        "task_name": "detail-task",
        "model": "gpt-4o-mini",
        "input_tokens": "1,200",
        "cache_read_tokens": "200",
        "reasoning_tokens": "50",
        "trace_id": "trace-abc",
        "user_id": "user-42",
        "session_id": "sess-9",
        "latency_ms": "850 ms",
    }.items():
        assert dialog.locator(f"dd[data-field='{key}']").text_content() == value, key
    assert dialog.locator("[data-field='error_message']").text_content() == ev["error_message"]
    meta = json.loads(dialog.locator("[data-field='metadata']").text_content())
    assert meta["prompt_version"] == "v7" and meta["nested"] == {"k": [1, 2]}
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_task_run_waterfall(page: Any, server: Any) -> None:
    start = datetime.now(UTC) - timedelta(seconds=30)
    run_id, trace = str(uuid.uuid4()), uuid.uuid4().hex
    run = run_event(run_id, start, trace_id=trace)
    calls = []
    steps = [(0, 2000, 0.01), (2500, 4000, 0.02), (7000, 2500, 0.03)]
    for i, (offset, dur, cost) in enumerate(steps):
        calls.append(
            llm_event(
                task_name="plan-trip",
                agent_name="planner",
                model="gpt-4o",
                timestamp=(start + timedelta(milliseconds=offset)).isoformat(),
                latency_ms=float(dur),
                cost_usd=cost,
                trace_id=trace,
                parent_id=run_id,
                metadata={"step": i + 1},
            )
        )
    post(server, run, *calls)
    open_dashboard(page, server)
    page.click(f"#feed li[data-id='{run_id}']")
    page.wait_for_selector("#detail .wf-row")
    rows = page.locator("#detail .wf-row")
    assert rows.count() == 3
    assert page.locator("#wf-cost").text_content() == "$0.06"
    assert page.locator("#wf-duration").text_content() == "10.0 s"
    assert page.locator("#wf-calls").text_content() == "3"
    bars = page.evaluate(
        "() => [...document.querySelectorAll('#detail .wf-bar')]"
        ".map(b => [parseFloat(b.style.left), parseFloat(b.style.width)])"
    )
    assert bars == [
        pytest.approx([0, 20]),
        pytest.approx([25, 40]),
        pytest.approx([70, 25]),
    ]
    offsets = [rows.nth(i).locator(".wf-offset").text_content() for i in range(3)]
    assert offsets == ["+0 ms", "+2.50 s", "+7.00 s"]
    # A step opens its own detail, and leads back to its run.
    rows.nth(1).click()
    page.wait_for_selector(f"#detail dd[data-field='id'] >> text={calls[1]['id']}")
    page.click("#detail button >> text=Open parent run")
    page.wait_for_selector(f"#detail dd[data-field='id'] >> text={run_id}")
    page.wait_for_selector("#detail .wf-row")


def test_hostile_markup_is_shown_as_text(page: Any, server: Any) -> None:
    ev = llm_event(
        agent_name=HOSTILE,
        task_name="<script>window.__pwned=2</script>",
        model="<b>bold</b>",
        status="error",
        error_message=HOSTILE,
        metadata={HOSTILE: HOSTILE, "note": "<svg onload=alert(3)>"},
        user_id=HOSTILE,
    )
    post(server, ev)
    open_dashboard(page, server)
    row = page.locator(f"#feed li[data-id='{ev['id']}']")
    assert HOSTILE in row.inner_text()
    assert "<script>window.__pwned=2</script>" in row.inner_text()
    # Tags, breakdown and the filter chip render the name as text too.
    assert HOSTILE in page.locator("#agent-tags").inner_text()
    page.locator("#agent-tags .tag").first.click()
    page.wait_for_selector("#filterbar .chip")
    assert page.locator("#filterbar .chip-value").text_content() == HOSTILE
    page.wait_for_function("() => document.querySelectorAll('#feed li').length > 0")
    page.locator("#feed li").first.click()
    page.wait_for_selector("#detail[open]")
    assert page.locator("#detail [data-field='error_message']").text_content() == HOSTILE
    meta = json.loads(page.locator("#detail [data-field='metadata']").text_content())
    assert meta == {HOSTILE: HOSTILE, "note": "<svg onload=alert(3)>"}
    page.wait_for_timeout(300)  # give any injected handler a chance to run
    assert page.evaluate("() => window.__pwned") is None
    injected = "img, script:not([src]), svg[onload], b"
    assert page.evaluate(f"() => document.querySelectorAll('{injected}').length") == 0
    # page fixture: no dialog (alert) was opened, no request to "x" left the page.


def test_fresh_server_shows_the_empty_state(page: Any, server: Any) -> None:
    open_dashboard(page, server, ready="empty")
    empty = page.locator("#empty")
    assert empty.is_visible()
    assert "python demo.py --backfill" in empty.inner_text()
    assert "agentwatch.init" in empty.inner_text()
    assert not page.locator(".cards").is_visible()
    assert not page.locator(".charts").is_visible()
    page.wait_for_selector("#conn[data-state='connected']")
    # The first event brings the dashboard to life without a reload.
    post(server, llm_event())
    page.wait_for_selector('html[data-ready="true"]')
    assert not empty.is_visible()
    page.wait_for_function("() => document.querySelector('#requests-value').dataset.value === '1'")


def test_tablet_layout_and_screenshots(
    page: Any, tablet_page: Any, demo_server: Any, tmp_path: Path
) -> None:
    """No horizontal scrolling at 768 px; cards two by two. Screenshots for the docs.

    Set AGENTWATCH_SCREENSHOTS=1 to write them to docs/images/ instead of tmp_path.
    """
    out = ROOT / "docs" / "images" if os.environ.get("AGENTWATCH_SCREENSHOTS") == "1" else tmp_path
    # Some live traffic so the feed shows fresh rows.
    post(demo_server, *demo.live_batch(demo.Generator(7, stream="shot"), datetime.now(UTC)))
    for p, name in ((page, "dashboard-desktop.png"), (tablet_page, "dashboard-tablet.png")):
        open_dashboard(p, demo_server)
        p.wait_for_selector("#conn[data-state='connected']")
        p.wait_for_timeout(1_800)  # let the fresh-row highlight fade
        p.screenshot(path=str(out / name), full_page=True)
        assert (out / name).stat().st_size > 50_000

    width = tablet_page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 768
    boxes = [
        tablet_page.locator(f"#card-{c}").bounding_box() for c in ("cost", "requests", "latency")
    ]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[2]["y"] > boxes[0]["y"]
    charts = [tablet_page.locator(f"#{c}").bounding_box() for c in ("cost-chart", "latency-chart")]
    assert charts[1]["y"] > charts[0]["y"]  # stacked
    assert charts[0]["width"] > 600


def test_long_names_keep_the_numbers_in_view(page: Any, server: Any) -> None:
    long_agent = "agent-" + "with-a-very-long-name-" * 10
    long_model = "model-" + "x" * 120
    post(
        server,
        llm_event(agent_name=long_agent, model=long_model, status="error", error_message="e"),
    )
    open_dashboard(page, server)
    table = page.locator("#breakdown-table").bounding_box()
    rate = page.locator("#breakdown-table tbody tr .error-pct").first.bounding_box()
    assert rate["x"] + rate["width"] <= table["x"] + table["width"] + 1
    assert (
        page.locator("#breakdown-table tbody td.cell-name").first.get_attribute("title")
        == long_agent
    )
    # A cut model name keeps the whole name as its tooltip, in the feed and the breakdown.
    page.wait_for_selector("#feed li[data-id]")
    assert page.locator("#feed li[data-id] .f-model").first.get_attribute("title") == long_model
    page.click("#breakdown-tabs [data-group='model']")
    page.wait_for_selector(f"#breakdown-table td.cell-name[title='{long_model}']")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1440
