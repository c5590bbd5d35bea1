"""Issue 13 in Chromium: the Alerts panel creates a rule (prefilled from the
page's filters), shows it firing with the banner on every view, names the
field a bad rule gets wrong, and shows the rule's history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.alert_receiver import Receiver, call, wait_for
from tests.browser.helpers import post

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alert_server(server_factory: Any) -> Any:
    return server_factory(None, "--alert-interval", "1").start()


def test_panel_creates_a_rule_and_shows_it_firing(
    page: Any, alert_server: Any, receiver: Receiver
) -> None:
    post(alert_server, *[call("spender", cost_usd=0.3) for _ in range(2)])
    # Opened with a filter on the page: the new rule starts with it.
    page.goto(alert_server.url + "/?view=alerts&agent=spender")
    page.wait_for_selector("section[data-view='alerts'][data-state='ready']")
    assert page.locator("#alerts-empty").is_visible()
    page.click("#alert-new")
    assert page.input_value("#alert-agent_name") == "spender"
    page.fill("#alert-name", "spender-budget")
    page.select_option("#alert-metric", "cost")
    page.select_option("#alert-window", "1h")
    page.select_option("#alert-operator", ">")
    page.fill("#alert-threshold", "0.5")
    # A bad URL first: the server's 422 names the field, and the form marks it.
    page.fill("#alert-webhook_url", "ftp://nowhere")
    page.click("#alert-save")
    page.wait_for_selector("#alert-form-error:not([hidden])")
    assert "webhook_url" in page.inner_text("#alert-form-error")
    assert page.get_attribute("[data-field='webhook_url']", "data-invalid") == "true"
    page.fill("#alert-webhook_url", receiver.url)
    page.click("#alert-save")
    row = page.locator("tr.alert-row[data-name='spender-budget']")
    row.wait_for()
    # Firing within a few evaluations: the row stands out, the banner shows.
    page.wait_for_selector(
        "tr.alert-row[data-name='spender-budget'][data-state='firing']", timeout=20_000
    )
    assert "$0.60" in row.inner_text()
    assert "agent: spender" in row.inner_text().lower() or "Agent: spender" in row.inner_text()
    banner = page.locator("#alert-banner")
    banner.wait_for(state="visible")
    assert "spender-budget" in banner.inner_text()
    (got,) = wait_for(lambda: receiver.bodies("spender-budget"), what="the webhook call")
    assert got["state"] == "firing" and got["alert"]["filters"] == {"agent_name": "spender"}
    # The history lists the state change and the delivery.
    row.get_by_role("button", name="History").click()
    page.wait_for_selector("#alert-history li.hist-state")
    wait_for(
        lambda: (
            page.locator("#alert-history li.hist-delivery").count() > 0
            or (row.get_by_role("button", name="History").click() and False)
        ),
        what="the delivery in the history",
    )
    text = page.inner_text("#alert-history")
    assert "firing" in text and "delivered" in text
    # The banner is there on the other views too.
    page.goto(alert_server.url + "/")
    page.locator("#alert-banner").wait_for(state="visible")
    assert "1 alert firing" in page.inner_text("#alert-banner")
    # The one console error is the browser's note of the 422 asked for above.
    errs = page.watch.console_errors
    assert sum("422" in e and "/api/alerts" in e for e in errs) == 1
    page.watch.console_errors = [e for e in errs if not ("422" in e and "/api/alerts" in e)]
