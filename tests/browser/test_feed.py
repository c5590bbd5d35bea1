"""Issue 15, item 2 (and 6) in Chromium: the live feed stays strictly newest
first after a filter is cleared and after a server restart, dates rows that
are not from today, marks rows older than the range, has column headers,
pauses and resumes, loads older pages, shows a run's totals, and is one tab
stop with arrow keys inside. The live state and staleness show in the header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.helpers import at, llm_event, open_dashboard, post, run_with_calls

pytestmark = pytest.mark.browser


def feed_rows(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('#feed li[data-id]')].map(li => ({
          id: li.dataset.id,
          ts: li.querySelector('time').getAttribute('datetime'),
          time: li.querySelector('time').textContent,
          older: li.classList.contains('older'),
          tab: li.tabIndex,
          cost: li.querySelector('.f-cost').textContent,
          tokens: li.querySelector('.f-tokens').textContent,
        }))"""
    )


def assert_newest_first(rows: list[dict[str, Any]]) -> None:
    stamps = [datetime.fromisoformat(r["ts"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True), [r["ts"] for r in rows]
    assert len({r["id"] for r in rows}) == len(rows)


def test_order_after_clearing_a_filter(page: Any, server: Any) -> None:
    old = [
        llm_event(agent_name="code-reviewer", timestamp=at(hours=5, minutes=3 * i))
        for i in range(8)
    ]
    new = [llm_event(agent_name="support-agent", timestamp=at(minutes=2 * i)) for i in range(8)]
    post(server, *old, *new)
    open_dashboard(page, server, "?agent=code-reviewer")
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 8")
    page.click("#filterbar .chip-clear")
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 16")
    rows = feed_rows(page)
    assert_newest_first(rows)
    assert rows[0]["id"] == new[0]["id"]


def test_order_and_live_state_across_a_server_restart(page: Any, server: Any) -> None:
    page.watch.allow_network_errors = True
    post(server, *[llm_event(timestamp=at(minutes=10 + i)) for i in range(10)])
    open_dashboard(page, server)
    page.wait_for_selector("#conn[data-state='connected']")
    assert page.get_attribute("#feed-panel", "data-live") == "on"
    assert page.get_attribute("#brand-dot", "data-state") == "connected"
    fresh = llm_event(timestamp=at(seconds=1))
    late = llm_event(timestamp=at(minutes=14, seconds=30))  # arrives now, stamped in the past
    post(server, fresh)
    post(server, late)
    page.wait_for_selector(f"#feed li[data-id='{late['id']}']")
    rows = feed_rows(page)
    assert_newest_first(rows)
    assert rows[0]["id"] == fresh["id"] and rows[1]["id"] != late["id"]

    server.stop()
    page.wait_for_selector("#conn[data-state='reconnecting']")
    assert page.get_attribute("#feed-panel", "data-live") == "reconnecting"
    assert page.get_attribute("#brand-dot", "data-state") == "reconnecting"
    # After a few seconds without the stream the page says its numbers are stale, and dims them.
    page.wait_for_selector('html[data-stale="true"]', timeout=15_000)
    assert page.locator("#stale").is_visible()
    assert page.text_content("#stale").startswith("Stale: numbers from")
    # Dimmed through a 0.3 s transition: read once it has had its frames (on a
    # loaded machine the first read can come before the transition's first).
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('#card-cost .card-main')).opacity < 1",
        timeout=5_000,
    )

    server.start()
    page.wait_for_selector("#conn[data-state='connected']", timeout=15_000)
    page.wait_for_selector('html[data-stale="false"]', timeout=15_000)
    after = llm_event(timestamp=at(minutes=12, seconds=10))
    post(server, after)
    page.wait_for_selector(f"#feed li[data-id='{after['id']}']")
    rows = feed_rows(page)
    assert_newest_first(rows)
    assert rows[0]["id"] == fresh["id"]
    assert len(rows) == 13


def test_dates_older_rows_and_headers(page: Any, server: Any) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1, hours=2)
    post(
        server,
        *[
            llm_event(
                agent_name="nightly", timestamp=(yesterday - timedelta(minutes=i)).isoformat()
            )
            for i in range(5)
        ],
    )
    post(server, llm_event(agent_name="nightly", timestamp=at(minutes=20)))
    open_dashboard(page, server, "?agent=nightly&range=1h")
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 6")
    rows = feed_rows(page)
    assert not rows[0]["older"] and all(r["older"] for r in rows[1:])
    # A row from another day carries its date; today's rows only the time.
    assert rows[0]["time"].count(":") == 2 and not rows[0]["time"][0].isalpha()
    assert all(r["time"][0].isalpha() for r in rows[1:]), [r["time"] for r in rows]
    assert page.text_content("#feed .feed-divider") == "Older than the selected range (1 h)"
    assert page.text_content("#feed-count") == "1 in range · 5 older"
    headers = page.eval_on_selector_all(
        ".feed-header [role=columnheader]", "els => els.map(e => e.textContent.trim())"
    )
    assert headers == ["Status", "Time", "Agent", "Task", "Model", "Tokens", "Cost", "Latency"]


def test_pause_resume_and_load_more(page: Any, server: Any) -> None:
    base = datetime.now(UTC) - timedelta(hours=2)
    evs = [llm_event(timestamp=(base - timedelta(seconds=30 * i)).isoformat()) for i in range(80)]
    post(server, *evs)
    open_dashboard(page, server)
    page.wait_for_selector("#conn[data-state='connected']")
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 50")
    page.click("#feed-pause")
    assert page.get_attribute("#feed-pause", "aria-pressed") == "true"
    assert page.get_attribute("#feed-panel", "data-live") == "paused"
    live = llm_event(task_name="while-paused")
    post(server, live)
    page.wait_for_function(
        "() => document.querySelector('#feed-pause').textContent === 'Resume (1 new)'"
    )
    assert page.locator(f"#feed li[data-id='{live['id']}']").count() == 0
    page.click("#feed-pause")
    page.wait_for_selector(f"#feed li[data-id='{live['id']}']")
    assert page.text_content("#feed-pause") == "Pause"
    # Older pages, by cursor: all 80 stored events plus the live one, each once, in order.
    page.click("#feed-more")
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 81")
    rows = feed_rows(page)
    assert_newest_first(rows)
    assert {r["id"] for r in rows} == {e["id"] for e in evs} | {live["id"]}
    page.wait_for_selector("#feed-more", state="hidden")


def test_a_run_row_shows_its_totals(page: Any, server: Any) -> None:
    evs = run_with_calls(datetime.now(UTC) - timedelta(minutes=5), [0.0151, 0.002, 0.0003])
    post(server, *evs)
    open_dashboard(page, server)
    run = evs[0]
    page.wait_for_function(
        "id => document.querySelector(`#feed li[data-id='${id}']`)?.dataset.runCost !== undefined",
        arg=run["id"],
    )
    row = next(r for r in feed_rows(page) if r["id"] == run["id"])
    assert row["cost"] == "$0.0174"
    assert row["tokens"] == "3.6K / 900"  # 3 calls of 1,200 / 300


def test_feed_is_one_tab_stop_with_arrow_keys(page: Any, server: Any) -> None:
    post(server, *[llm_event(timestamp=at(minutes=i)) for i in range(12)])
    open_dashboard(page, server)
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 12")
    rows = feed_rows(page)
    assert [r["tab"] for r in rows].count(0) == 1 and rows[0]["tab"] == 0
    # Tab from the pause button lands on the first row; the next Tab leaves the feed.
    page.focus("#feed-pause")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.id") == rows[0]["id"]
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("() => document.activeElement.dataset.id") == rows[2]["id"]
    page.keyboard.press("End")
    assert page.evaluate("() => document.activeElement.dataset.id") == rows[-1]["id"]
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail[open]")
    assert page.text_content("#detail dd[data-field='id']") == rows[-2]["id"]
    assert f"open={rows[-2]['id']}" in page.url
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    # The dialog's close event, whose handler writes the URL and puts focus
    # back, runs a task after the dialog hides: wait for it.
    page.wait_for_function("() => !location.search.includes('open=')", timeout=5000)
    # Focus is back on the row it came from, which now holds the tab stop.
    assert page.evaluate("() => document.activeElement.dataset.id") == rows[-2]["id"]
    page.keyboard.press("Tab")
    in_feed = page.evaluate(
        "() => document.querySelector('#feed').contains(document.activeElement)"
    )
    assert not in_feed
