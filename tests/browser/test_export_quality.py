"""Issue 14 in Chromium: the header's Export menu downloads what the view
shows (its window and filters) as CSV or JSONL, and the overview's
data-quality panel shows the counts, each linking to its events."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.browser.helpers import llm_event, open_dashboard, post

pytestmark = pytest.mark.browser


def download(page: Any, fmt: str) -> tuple[str, str]:
    page.click("#export-menu > summary")
    with page.expect_download() as info:
        page.click(f"#export-menu a[data-format='{fmt}']")
    d = info.value
    return d.suggested_filename, open(d.path(), encoding="utf-8").read()


def test_export_menu_downloads_the_filtered_view(page: Any, server: Any) -> None:
    evs = [llm_event(agent_name=f"bot-{i % 2}", task_name='a, "b"\nc') for i in range(6)]
    evs.append(llm_event(agent_name="bot-0", model="house-model", metadata={"usage_missing": True}))
    post(server, *evs)
    open_dashboard(page, server, "?agent=bot-0")
    name, text = download(page, "csv")
    assert name.startswith("agentwatch-events-agent-bot-0-") and name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 4 and {r["agent_name"] for r in rows} == {"bot-0"}
    assert {r["task_name"] for r in rows[:3]} == {'a, "b"\nc'}
    name, text = download(page, "jsonl")
    assert name.endswith(".jsonl")
    lines = [json.loads(x) for x in text.split("\n")[:-1]]
    assert sorted(e["id"] for e in lines) == sorted(r["id"] for r in rows)
    # The explorer's own filters go with it.
    page.goto(server.url + "/?view=explore&agent=bot-0&kind=llm&status=error")
    page.wait_for_selector("section[data-view='explore'][data-state='ready']")
    _, text = download(page, "jsonl")
    assert text == ""


def test_quality_panel_counts_and_links(page: Any, server: Any) -> None:
    post(
        server,
        llm_event(model="house-model"),
        llm_event(model="house-model"),
        llm_event(provider="openai", metadata={"usage_missing": True}),
        llm_event(provider="openai", metadata={"partial": True}),
        llm_event(),
    )
    open_dashboard(page, server)
    panel = page.locator("#quality-panel")
    page.wait_for_selector("#quality-panel[data-state='ok']")
    fallback = panel.locator("[data-flag='fallback_price']")
    assert fallback.locator("dd > a").inner_text() == "2"
    assert "house-model: 2" in fallback.inner_text()
    assert panel.locator("[data-flag='usage_missing'] dd > a").inner_text() == "1"
    assert "openai: 1" in panel.locator("[data-flag='usage_missing']").inner_text()
    assert panel.locator("[data-flag='partial'] dd > a").inner_text() == "1"
    assert "of 5 LLM calls" in panel.inner_text()
    href = fallback.locator("dd > a").get_attribute("href")
    listed = page.request.get(server.url + "/" + href).json()["events"]
    assert len(listed) == 2 and {e["model"] for e in listed} == {"house-model"}
