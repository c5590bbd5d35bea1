"""Issue 15, items 3, 4 and 7 in Chromium: the explorer finds any call or
run (a failed run from yesterday, by status and time range, opens its
waterfall), pages by cursor without repeating or skipping while events
arrive, sorts, searches error messages and opens any id; breakdowns by
user, session and provider lead to the explorer and the session view; the
keyboard path through the page; 768 px; hostile strings."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import (
    HOSTILE,
    ROOT,
    api,
    at,
    llm_event,
    open_dashboard,
    post,
    run_with_calls,
)

pytestmark = pytest.mark.browser


def open_explorer(page: Any, server: Any, query: str = "") -> None:
    page.goto(server.url + "/?view=explore" + query)
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")


def wait_loaded(page: Any, after: int) -> int:
    """Wait for the explorer's load number `after + 1` (or later) to land."""
    page.wait_for_function(
        "n => Number(document.querySelector(\"section[data-view='explore']\").dataset.loads) > n"
        " && document.querySelector(\"section[data-view='explore']\").dataset.state === 'ready'",
        arg=after,
    )
    return int(page.get_attribute("section[data-view='explore']", "data-loads"))


def loads(page: Any) -> int:
    return int(page.get_attribute("section[data-view='explore']", "data-loads") or 0)


def result_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#explore-table tbody tr[data-id]", "els => els.map(e => e.dataset.id)"
    )


def local_input(page: Any, dt: datetime) -> str:
    """A datetime-local value for the browser's time zone."""
    return page.evaluate(
        """ms => { const d = new Date(ms), p = n => String(n).padStart(2, '0');
          const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
          return `${day}T${p(d.getHours())}:${p(d.getMinutes())}`; }""",
        dt.timestamp() * 1000,
    )


def test_finds_a_failed_run_from_yesterday_and_opens_its_waterfall(page: Any, server: Any) -> None:
    now = datetime.now(UTC)
    target_at = now - timedelta(hours=27)
    target = run_with_calls(target_at, [0.01, 0.02, 0.005], failed=True, task_name="nightly-report")
    noise = []
    noise += run_with_calls(now - timedelta(hours=2), [0.01], failed=True)  # failed, but today
    noise += run_with_calls(now - timedelta(hours=26), [0.01, 0.01])  # yesterday, but fine
    noise += run_with_calls(now - timedelta(days=4), [0.03], failed=True)  # failed, days ago
    noise += [llm_event(timestamp=(now - timedelta(minutes=3 * i)).isoformat()) for i in range(120)]
    post(server, *target, *noise)
    open_dashboard(page, server)
    # From the header to the explorer; the heading gets the focus.
    page.click(".views-nav a[data-view='explore']")
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")
    assert page.evaluate("() => document.activeElement.id") == "explore-title"
    # The run is not among the newest rows...
    assert target[0]["id"] not in result_ids(page)
    # ...but status, kind and yesterday's time range find it.
    n = loads(page)
    page.select_option("#explore-form select[name=status]", "error")
    page.select_option("#explore-form select[name=kind]", "task")
    page.fill("#explore-form input[name=from]", local_input(page, now - timedelta(hours=36)))
    page.fill("#explore-form input[name=to]", local_input(page, now - timedelta(hours=20)))
    page.click("#explore-form button[type=submit]")
    wait_loaded(page, n)
    assert result_ids(page) == [target[0]["id"]]
    assert "status=error" in page.url and "kind=task" in page.url and "from=" in page.url
    row = page.locator(f"#explore-table tr[data-id='{target[0]['id']}']")
    page.wait_for_function(
        "id => document.querySelector(`#explore-table tr[data-id='${id}']`).dataset.runCost",
        arg=target[0]["id"],
    )
    assert row.locator(".x-cost").text_content() == "$0.035"  # the run's own calls
    row.click()
    page.wait_for_selector("#detail .wf-row")
    assert page.locator("#detail .wf-row").count() == 3
    assert page.text_content("#wf-cost") == "$0.035"
    assert page.text_content("#wf-errors") == "1"
    # A shared link opens the same view, dialog included.
    url = page.url
    page.keyboard.press("Escape")
    page.goto(url if "open=" in url else url + f"&open={target[0]['id']}")
    page.wait_for_selector("#detail[open] .wf-row")
    assert result_ids(page) == [target[0]["id"]]


def test_cursor_pages_neither_repeat_nor_skip_while_events_arrive(page: Any, server: Any) -> None:
    base = datetime.now(UTC) - timedelta(hours=3)
    stored = [
        llm_event(timestamp=(base - timedelta(seconds=20 * i)).isoformat()) for i in range(120)
    ]
    post(server, *stored)
    open_explorer(page, server)
    page.wait_for_selector("#conn[data-state='connected']")
    pages = [result_ids(page)]
    n = loads(page)
    for k in range(2):
        # New events arrive while the user reads the page.
        post(server, *[llm_event(task_name=f"arrived-{k}-{j}") for j in range(15)])
        page.wait_for_selector("#explore-newer-notice:not([hidden])")
        page.click("#explore-next")
        n = wait_loaded(page, n)
        pages.append(result_ids(page))
    seen = [i for p in pages for i in p]
    assert [len(p) for p in pages] == [50, 50, 20]
    assert len(seen) == len(set(seen)) == 120  # nothing twice, nothing skipped
    assert set(seen) == {e["id"] for e in stored}  # and nothing that arrived meanwhile
    assert page.get_attribute("#explore-next", "disabled") is not None
    assert page.text_content("#explore-page") == "Page 3"
    # Back a page (the button, then the browser's Back): the very same rows.
    page.click("#explore-prev")
    n = wait_loaded(page, n)
    assert result_ids(page) == pages[1]
    page.click("#explore-prev")
    n = wait_loaded(page, n)
    # The first page too: the results are a snapshot; the newer events wait in the notice.
    assert result_ids(page) == pages[0] and page.text_content("#explore-page") == "Page 1"
    assert page.text_content("#explore-newer-notice") == "30 new matching events: show"
    # The browser's Back and Forward walk the same pages.
    page.go_back()
    n = wait_loaded(page, n)
    assert result_ids(page) == pages[1] and page.text_content("#explore-page") == "Page 2"
    page.go_back()
    n = wait_loaded(page, n)
    assert result_ids(page) == pages[2]
    page.click("#explore-newer-notice")
    wait_loaded(page, n)
    assert "cursor=" not in page.url
    top = result_ids(page)
    assert len(top) == 50 and top[0] not in seen  # the arrivals lead now
    assert page.locator("#explore-newer-notice").is_hidden()


def test_sort_search_open_by_id_and_url_state(page: Any, server: Any) -> None:
    costs = [0.5, 0.0151, 2.25, 0.000063, 0.09]
    evs = [llm_event(timestamp=at(minutes=i), cost_usd=c) for i, c in enumerate(costs)]
    evs[1].update(status="error", error_message="APITimeoutError: Request timed out after 30s")
    evs[3].update(status="error", error_message="RateLimitError: 429 slow down")
    traced = run_with_calls(datetime.now(UTC) - timedelta(minutes=30), [0.01])
    post(server, *evs, *traced)
    open_explorer(page, server)
    n = loads(page)
    page.click("#explore-table th[data-key='cost'] button")
    n = wait_loaded(page, n)
    assert "sort=cost" in page.url
    assert page.get_attribute("#explore-table th[data-key='cost']", "aria-sort") == "descending"
    cells = page.eval_on_selector_all(
        "#explore-table tbody tr[data-kind='llm'] .x-cost", "els => els.map(e => e.textContent)"
    )
    assert cells[:3] == ["$2.25", "$0.50", "$0.09"]
    page.click("#explore-table th[data-key='cost'] button")
    n = wait_loaded(page, n)
    assert "order=asc" in page.url
    # Search the error messages (any case).
    page.fill("#explore-form input[name=error_contains]", "TIMED OUT")
    page.click("#explore-form button[type=submit]")
    n = wait_loaded(page, n)
    assert result_ids(page) == [evs[1]["id"]]
    assert "Request timed out" in page.text_content("#explore-table .cell-error-text")
    # The URL holds the whole view: a reload shows the same rows in the same order.
    page.reload()
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")
    assert result_ids(page) == [evs[1]["id"]]
    assert page.input_value("#explore-form input[name=error_contains]") == "TIMED OUT"
    # Open by id, and by trace id (the run at its root opens, with its waterfall).
    page.fill("#goto-input", evs[2]["id"])
    page.click("#goto-form button[type=submit]")
    page.wait_for_selector(f"#detail dd[data-field='id'] >> text={evs[2]['id']}")
    page.keyboard.press("Escape")
    page.fill("#goto-input", traced[0]["trace_id"])
    page.click("#goto-form button[type=submit]")
    page.wait_for_selector("#detail .wf-row")
    assert page.text_content("#detail dd[data-field='id']") == traced[0]["id"]
    page.keyboard.press("Escape")
    page.fill("#goto-input", "no-such-id")
    page.click("#goto-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#goto-msg').textContent.startsWith('No event')"
    )


def test_users_sessions_and_providers(page: Any, server: Any) -> None:
    now = datetime.now(UTC)
    first = run_with_calls(
        now - timedelta(hours=3), [0.01, 0.02], user_id="ana", session_id="sess-1"
    )
    second = run_with_calls(now - timedelta(hours=2), [0.04], user_id="ana", session_id="sess-1")
    single = llm_event(
        timestamp=(now - timedelta(hours=2, minutes=30)).isoformat(),
        cost_usd=0.5,
        user_id="ana",
        session_id="sess-1",
        provider="openai",
    )
    other = llm_event(user_id="ben", session_id="sess-2", cost_usd=0.001, provider="anthropic")
    post(server, *second, single, *first, other)
    open_dashboard(page, server)
    # By user: a row per user, as the API says; a click explores that user's calls.
    page.click("#breakdown-tabs [data-group='user_id']")
    users = api(server, "/api/metrics/breakdown", group_by="user_id", period="24h", limit=100)
    page.wait_for_function(
        "n => document.querySelectorAll('#breakdown-table tbody tr[data-name]').length === n",
        arg=sum(1 for u in users if u["name"] is not None),
    )
    assert "tab=user_id" in page.url
    page.click("#breakdown-table tbody tr[data-name='ben']")
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")
    assert "user=ben" in page.url
    assert result_ids(page) == [other["id"]]
    page.go_back()
    page.wait_for_selector("section[data-view='overview']:not([hidden])")
    # By provider.
    page.click("#breakdown-tabs [data-group='provider']")
    page.wait_for_selector("#breakdown-table tbody tr[data-name='openai']")
    # By session: a click opens the session view, runs in order with their totals.
    page.click("#breakdown-tabs [data-group='session_id']")
    page.click("#breakdown-table tbody tr[data-name='sess-1']")
    page.wait_for_selector("section[data-view='session'][data-state='ready']")
    assert page.evaluate("() => document.activeElement.id") == "session-title"
    assert page.text_content("#session-title") == "Session sess-1"
    rows = page.eval_on_selector_all(
        "#session-table tbody tr[data-id]",
        "els => els.map(e => [e.dataset.id, e.querySelector('.x-cost').textContent])",
    )
    assert rows == [[first[0]["id"], "$0.03"], [single["id"], "$0.50"], [second[0]["id"], "$0.04"]]
    view = api(server, "/api/sessions/sess-1")
    assert page.get_attribute("#session-cost", "title") == "$0.57"
    assert view["totals"]["cost_usd"] == pytest.approx(0.57)
    assert page.text_content("#session-runs") == "2"
    assert "user ana" in page.text_content("#session-meta")
    # A run in the session opens its waterfall; its detail leads back to the session.
    page.click(f"#session-table tr[data-id='{second[0]['id']}']")
    page.wait_for_selector("#detail .wf-row")
    page.click("#detail button >> text=This user's calls")
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")
    assert "user=ana" in page.url
    assert set(result_ids(page)) == {e["id"] for e in [*first, *second, single]}


def test_keyboard_path_through_the_page(page: Any, server: Any) -> None:
    post(server, *[llm_event(timestamp=at(minutes=i)) for i in range(60)])
    open_dashboard(page, server)
    page.wait_for_function("() => document.querySelectorAll('#feed li[data-id]').length === 50")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # Every stop from the top of the page to the breakdown: the feed is one stop, not 50.
    stops = []
    page.focus(".brand")
    for _ in range(60):
        page.keyboard.press("Tab")
        stops.append(
            page.evaluate(
                """() => { const a = document.activeElement;
                  if (a.closest('#feed')) return 'feed';
                  if (a.closest('#breakdown-tabs')) return 'tabs';
                  return (a.id || a.dataset.range || a.textContent.trim()).slice(0, 30); }"""
            )
        )
        if stops[-1] == "tabs":
            break
    assert stops.count("feed") == 1, stops
    assert "Overview" in stops and "Explorer" in stops and "24h" in stops, stops
    assert len(stops) < 30, stops
    # Arrow keys through the breakdown tabs; the page follows.
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('tab=model')")
    # The explorer's results are one stop too; Enter opens a row, Escape comes back to it.
    page.click(".views-nav a[data-view='explore']")
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")
    page.focus("#explore-table tbody tr[tabindex='0']")
    page.keyboard.press("ArrowDown")
    target = page.evaluate("() => document.activeElement.dataset.id")
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    assert page.evaluate("() => document.activeElement.dataset.id") == target
    tab_stops = page.eval_on_selector_all(
        "#explore-table tbody tr[tabindex='0']", "els => els.length"
    )
    assert tab_stops == 1


def test_tablet_width_hostile_strings_and_screenshots(
    page: Any, tablet_page: Any, demo_server: Any, tmp_path: Path
) -> None:
    """The explorer and the session view at 768 px: no sideways scrolling;
    hostile names stay text. Screenshots for the docs with AGENTWATCH_SCREENSHOTS=1."""
    out = ROOT / "docs" / "images" if os.environ.get("AGENTWATCH_SCREENSHOTS") == "1" else tmp_path
    # A support chat: one session, three runs and a call in between.
    t = datetime.now(UTC) - timedelta(hours=3)
    chat: list[dict[str, Any]] = []
    for i, costs in enumerate([[0.0042, 0.0061], [0.0124], [0.0031, 0.0027, 0.0188]]):
        chat += run_with_calls(
            t + timedelta(minutes=9 * i),
            costs,
            failed=i == 1,
            task_name="answer-ticket",
            agent_name="support-agent",
            user_id="acme-corp",
            session_id="s-support-chat-17",
        )
    chat.append(
        llm_event(
            timestamp=(t + timedelta(minutes=4)).isoformat(),
            agent_name="support-agent",
            task_name="classify-ticket",
            user_id="acme-corp",
            session_id="s-support-chat-17",
            cost_usd=0.00018,
        )
    )
    post(demo_server, *chat)
    for p, suffix in ((page, "desktop"), (tablet_page, "tablet")):
        open_explorer(p, demo_server, "&status=error&range=7d")
        assert p.evaluate("() => document.documentElement.scrollWidth") <= p.viewport_size["width"]
        p.screenshot(path=str(out / f"explorer-{suffix}.png"), full_page=False)
        p.goto(demo_server.url + "/?view=session&sid=s-support-chat-17")
        p.wait_for_selector("section[data-view='session'][data-state='ready']")
        p.wait_for_timeout(300)
        assert p.locator("#session-table tbody tr[data-id]").count() == 4
        assert p.evaluate("() => document.documentElement.scrollWidth") <= p.viewport_size["width"]
        p.screenshot(path=str(out / f"session-{suffix}.png"), full_page=True)
    bad = llm_event(
        agent_name=HOSTILE,
        task_name="<script>window.__pwned=2</script>",
        user_id=HOSTILE,
        session_id=HOSTILE,
        status="error",
        error_message=HOSTILE,
        provider=HOSTILE,
    )
    post(demo_server, bad)
    for p in (page, tablet_page):
        open_explorer(p, demo_server, "&status=error&range=7d")
        assert HOSTILE in p.text_content("#explore-table")
        p.goto(demo_server.url + f"/?view=session&sid={bad['session_id']}")
        p.wait_for_selector("section[data-view='session'][data-state='ready']")
        assert p.text_content("#session-title") == f"Session {HOSTILE}"
        p.locator("#session-table tbody tr[data-id]").first.click()
        p.wait_for_selector("#detail[open]")
        assert p.text_content("#detail [data-field='error_message']") == HOSTILE
        p.wait_for_timeout(300)  # give any injected handler a chance to run
        assert p.evaluate("() => window.__pwned") is None
        assert p.evaluate("() => document.querySelectorAll('img, script:not([src])').length") == 0
