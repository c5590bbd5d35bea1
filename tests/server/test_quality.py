"""GET /api/metrics/quality and GET /api/quality/events (issue 14) against a
real server, on both backends: counts against known input, the per
provider/model lists, every link leading to exactly the events counted,
refused ingest kept across a restart."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post

NOW = datetime.now(UTC).replace(microsecond=0)


def known() -> list[dict[str, Any]]:
    """usage missing: 3 openai + 2 anthropic; fallback: 4 (2 models); partial:
    2 (one of them also usage missing); plus clean calls and a task."""
    out = []

    def add(n: int, **kw: Any) -> None:
        for _ in range(n):
            out.append(ev(id=str(uuid.uuid4()), **kw))

    add(3, provider="openai", model="gpt-4o", metadata={"usage_missing": True})
    add(2, provider="anthropic", model="claude-3-5-sonnet", metadata={"usage_missing": True})
    add(3, model="house-model-a")  # unknown to the price book: fallback
    add(1, model="house-model-b", provider="vllm")
    add(1, provider="openai", model="gpt-4o", metadata={"partial": True})
    add(1, provider="openai", model="gpt-4o", metadata={"partial": True, "usage_missing": True})
    add(1, model="house-model-a", cost_usd=0.5)  # its own cost: not a fallback
    add(5, provider="openai", model="gpt-4o")
    add(1, kind="task", model="", metadata={"usage_missing": True})  # not an LLM call
    # Outside a 1h window.
    add(2, model="house-model-a", timestamp=(NOW - timedelta(hours=5)).isoformat())
    return out


def quality(url: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(url + "/api/metrics/quality", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def follow(url: str, link: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        more = "&limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = httpx.get(f"{url}/{link}{more}", timeout=30)
        assert r.status_code == 200, r.text
        out += r.json()["events"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def test_quality_counts_and_links(server: ServerProcess) -> None:
    assert post(server.url, known()).status_code == 200
    q = quality(server.url, period="1h")
    assert q["llm_calls"] == 17
    assert q["usage_missing"]["count"] == 6
    assert {r["name"]: r["count"] for r in q["usage_missing"]["by_provider"]} == {
        "openai": 4,
        "anthropic": 2,
    }
    assert q["fallback_price"]["count"] == 4
    assert {r["name"]: r["count"] for r in q["fallback_price"]["by_model"]} == {
        "house-model-a": 3,
        "house-model-b": 1,
    }
    assert {r["name"]: r["count"] for r in q["fallback_price"]["by_provider"]} == {
        None: 3,
        "vllm": 1,
    }
    assert q["partial"]["count"] == 2
    assert q["partial"]["by_model"] == [
        {"name": "gpt-4o", "count": 2, "link": q["partial"]["by_model"][0]["link"]}
    ]
    # A longer window holds the two older fallback calls too.
    assert quality(server.url, period="24h")["fallback_price"]["count"] == 6
    # Every link lists exactly the events its count counts.
    for flag in ("usage_missing", "fallback_price", "partial"):
        evs = follow(server.url, q[flag]["link"])
        assert len(evs) == q[flag]["count"] == len({e["id"] for e in evs})
        assert all(e["kind"] == "llm" for e in evs)
        ts = [e["timestamp"] for e in evs]
        assert ts == sorted(ts, reverse=True)
        for group in ("by_provider", "by_model"):
            for row in q[flag][group]:
                got = follow(server.url, row["link"])
                if row["name"] is not None:
                    assert len(got) == row["count"], (flag, row)
                    key = "provider" if group == "by_provider" else "model"
                    assert {e[key] for e in got} == {row["name"]}
    evs = follow(server.url, q["usage_missing"]["link"])
    assert all(e["metadata"].get("usage_missing") is True for e in evs)
    bad = httpx.get(server.url + "/api/quality/events", params={"flag": "nope"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "flag"]
    bad = httpx.get(server.url + "/api/quality/events?flag=partial&cursor=xyz")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_refused_ingest_is_counted_and_kept(server: ServerProcess) -> None:
    assert post(server.url, [ev(), {"agent_name": "x"}, ev(latency_ms=-5)]).status_code == 422
    assert post(server.url, [{"nothing": 1}]).status_code == 422
    too_many = httpx.post(
        server.url + "/api/events",
        json={"events": [ev() for _ in range(10_001)]},
        timeout=60,
    )
    assert too_many.status_code == 413
    assert post(server.url, [ev()]).status_code == 200
    deadline = time.monotonic() + 20
    while True:  # the counts reach the store every few seconds
        rej = quality(server.url)["rejected"]
        if rej["requests"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rej["requests"] == 3
    assert rej["events"] == 3  # events[1], events[2] of the first, events[0] of the second
    assert {r["code"]: r["requests"] for r in rej["by_code"]} == {422: 2, 413: 1}
    server.restart()
    assert quality(server.url)["rejected"]["requests"] == 3
