"""An agent -> tool -> LLM trace sent over OTLP, shown as a run in the dashboard's waterfall."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "otlp"))

from build import agent, llm, new_span, new_trace, post, request, span

from agentwatch.otlp.mapping import event_id

pytestmark = pytest.mark.browser


def test_otlp_agent_run_waterfall(page: Any, server: Any) -> None:
    base = time.time_ns() - 60 * 1_000_000_000
    t = new_trace()
    ids = {k: new_span() for k in ("agent", "plan", "llm1", "tool", "llm2")}
    tool_attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_flights"}
    calls = llm(tin=10_000, tout=1000)  # gpt-4o: $0.025 in + $0.010 out = $0.035 each
    spans = [
        span(t, ids["agent"], None, "invoke_agent planner", agent(), 0, 10_000, base),
        span(t, ids["plan"], ids["agent"], "plan", {}, 500, 3000, base),  # not stored
        span(t, ids["llm1"], ids["plan"], "chat gpt-4o", calls, 1000, 2000, base),
        span(
            t,
            ids["tool"],
            ids["agent"],
            "execute_tool search_flights",
            tool_attrs,
            4000,
            3000,
            base,
        ),
        span(t, ids["llm2"], ids["tool"], "chat gpt-4o", calls, 4500, 2000, base),
    ]
    r = post(server.url, request(*spans, service="trip-service"))
    assert r.status_code == 200 and r.json() == {}, r.text
    run_id = event_id(bytes.fromhex(t), bytes.fromhex(ids["agent"]))

    page.goto(server.url + "/")
    page.wait_for_selector('html[data-ready="true"]')
    page.click(f"#feed li[data-id='{run_id}']")
    page.wait_for_selector("#detail .wf-row")
    rows = page.locator("#detail .wf-row")
    assert rows.count() == 3
    assert page.locator("#wf-cost").text_content() == "$0.07"
    assert page.locator("#wf-duration").text_content() == "10.0 s"
    assert page.locator("#wf-calls").text_content() == "2"
    names = [rows.nth(i).locator(".wf-name").text_content() for i in range(3)]
    assert names == ["gpt-4o", "search_flights", "gpt-4o"]
    depths = page.evaluate(
        "() => [...document.querySelectorAll('#detail .wf-label')]"
        ".map(l => l.style.getPropertyValue('--depth'))"
    )
    assert depths == ["0", "0", "1"]  # the second call nests under the tool
    bars = page.evaluate(
        "() => [...document.querySelectorAll('#detail .wf-bar')]"
        ".map(b => [parseFloat(b.style.left), parseFloat(b.style.width)])"
    )
    assert bars == [pytest.approx([10, 20]), pytest.approx([40, 30]), pytest.approx([45, 20])]
    # A call opens its own detail (with the span's metadata) and leads back to the run.
    rows.nth(2).click()
    tool_id = event_id(bytes.fromhex(t), bytes.fromhex(ids["tool"]))
    page.wait_for_selector(f"#detail dd[data-field='parent_id'] >> text={tool_id}")
    meta = page.locator("#detail [data-field='metadata']").text_content()
    assert f'"otel.span_id": "{ids["llm2"]}"' in meta
    assert page.locator("#detail .detail-task").text_content() == "invoke_agent planner"
