"""The demo data generator: deterministic, idempotent, and shaped like real traffic."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentwatch import demo

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)  # a Friday afternoon


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return demo.backfill_events(end=END, tz=UTC)


def test_backfill_is_deterministic(events: list[dict[str, Any]]) -> None:
    again = demo.backfill_events(end=END, tz=UTC)
    assert again == events
    other_seed = demo.backfill_events(seed=7, end=END, tz=UTC)
    assert other_seed != events
    # Ids depend on the seed and the position only, not on the clock.
    later = demo.backfill_events(end=END + timedelta(hours=5), tz=UTC)
    assert {e["id"] for e in later} & {e["id"] for e in events}


def test_backfill_shape(events: list[dict[str, Any]]) -> None:
    assert 3_000 <= len(events) <= 4_000
    assert len({e["id"] for e in events}) == len(events)
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in events]
    assert min(stamps) >= END - timedelta(days=7)
    assert max(stamps) <= END

    agents = Counter(e["agent_name"] for e in events)
    assert len(agents) == 5
    # Each agent has its own tasks.
    tasks_by_agent: dict[str, set[str]] = {}
    for e in events:
        tasks_by_agent.setdefault(e["agent_name"], set()).add(e["task_name"])
    all_tasks = [t for ts in tasks_by_agent.values() for t in ts]
    assert len(all_tasks) == len(set(all_tasks)) >= 10

    llm = [e for e in events if e["kind"] == "llm"]
    models = Counter(e["model"] for e in llm)
    for brief_model in ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514"):
        assert models[brief_model] > 50
    error_rate = sum(e["status"] == "error" for e in llm) / len(llm)
    assert 0.01 < error_rate < 0.08
    assert all(e["error_message"] for e in llm if e["status"] == "error")
    assert all(e["error_message"] is None for e in llm if e["status"] == "success")
    assert all(e["input_tokens"] > 0 and e["latency_ms"] > 0 for e in llm)
    assert all("cost_usd" not in e for e in events)  # the server prices them
    assert any(e["reasoning_tokens"] for e in llm)
    assert any(e["cache_read_tokens"] for e in llm)


def test_backfill_daily_pattern(events: list[dict[str, Any]]) -> None:
    by_hour = Counter(datetime.fromisoformat(e["timestamp"]).hour for e in events)
    peak = sum(by_hour[h] for h in range(9, 17)) / 8
    night = sum(by_hour[h] for h in (*range(22, 24), *range(0, 6))) / 8
    # Overnight runs at about 10% of the daytime rate.
    assert 0.05 < night / peak < 0.2
    assert min(by_hour[h] for h in range(9, 17)) > max(by_hour[h] for h in range(0, 6))


def test_task_runs_nest_their_calls(events: list[dict[str, Any]]) -> None:
    by_id = {e["id"]: e for e in events}
    runs = [e for e in events if e["kind"] == "task"]
    assert len(runs) >= 100
    children = [e for e in events if e.get("parent_id")]
    assert children
    for c in children:
        run = by_id[c["parent_id"]]
        assert run["kind"] == "task"
        assert c["trace_id"] == run["trace_id"]
        assert (c["task_name"], c["agent_name"]) == (run["task_name"], run["agent_name"])
        start = datetime.fromisoformat(run["timestamp"])
        end = start + timedelta(milliseconds=run["latency_ms"])
        c_start = datetime.fromisoformat(c["timestamp"])
        assert start <= c_start
        assert c_start + timedelta(milliseconds=c["latency_ms"]) <= end
    for run in runs:
        kids = [c for c in children if c["parent_id"] == run["id"]]
        assert any(k["kind"] == "llm" for k in kids)
        assert run["metadata"]["steps"] == len(kids)


def test_live_batches_hold_one_to_three_events() -> None:
    gen = demo.Generator(3, stream="test")
    now = datetime.now(UTC)
    for _ in range(200):
        batch = demo.live_batch(gen, now)
        assert 1 <= len(batch) <= 3
        ids = {e["id"] for e in batch}
        for e in batch:
            if e.get("parent_id"):
                assert e["parent_id"] in ids  # a run is never sent without its head
            assert datetime.fromisoformat(e["timestamp"]) <= now + timedelta(seconds=1)


def test_backfill_against_a_server_stores_nothing_twice(server: Any) -> None:
    out = io.StringIO()
    sent = demo.run_backfill(server.url, end=END, out=out)
    assert "100%" in out.getvalue()
    health = httpx.get(server.url + "/api/health").json()
    assert health["events"] == sent
    demo.run_backfill(server.url, end=END, out=io.StringIO())
    assert httpx.get(server.url + "/api/health").json()["events"] == sent

    # What the server stored is what the generator made (priced by the server).
    runs = httpx.get(server.url + "/api/events", params={"kind": "task", "limit": 5}).json()
    run = runs["events"][0]
    calls = httpx.get(
        server.url + "/api/events", params={"parent_id": run["id"], "limit": 100}
    ).json()["events"]
    assert calls and all(c["trace_id"] == run["trace_id"] for c in calls)
    llm = [c for c in calls if c["kind"] == "llm"]
    assert all(c["cost_usd"] > 0 for c in llm if c["input_tokens"])


def test_cli_wrapper_and_live_mode(server: Any) -> None:
    """`python demo.py --live` streams batches and prints a session summary."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "demo.py"),
            "--live",
            "--server",
            server.url,
            "--speed",
            "50",
            "--batches",
            "3",
            "--seed",
            "11",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Session summary" in proc.stdout
    assert "\033[" not in proc.stdout  # no colour codes when not on a terminal
    sent = httpx.get(server.url + "/api/health").json()["events"]
    assert 3 <= sent <= 9
    assert f"events sent    {sent}" in proc.stdout


def test_unreachable_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = demo.main(["--backfill", "--server", "http://127.0.0.1:9"])
    assert rc == 1
    assert "cannot reach" in capsys.readouterr().err


def test_live_line_and_summary_format() -> None:
    e = demo.Generator(1, stream="fmt").unit(datetime.now(UTC))[0]
    line = demo.format_line(e, 0.0123, colour=False)
    assert e["agent_name"] in line
    coloured = demo.format_line(e, 0.0123, colour=True)
    assert "\033[" in coloured
    s = demo.Session()
    s.add(
        {
            **e,
            "kind": "llm",
            "status": "error",
            "latency_ms": 100.0,
            "input_tokens": 1,
            "output_tokens": 2,
        },
        0.5,
    )
    text = demo.summary(s, colour=False)
    assert "1 LLM calls" in text and "$0.5000" in text


def test_server_comes_from_the_sdk_variable(
    server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """AGENTWATCH_SERVER_URL, as for the SDK; the older AGENTWATCH_SERVER still works."""
    monkeypatch.setenv("AGENTWATCH_SERVER_URL", server.url)
    monkeypatch.setenv("AGENTWATCH_SERVER", "http://127.0.0.1:9")  # the new name wins
    assert demo.main(["--backfill", "--end", END.isoformat()]) == 0
    assert f"into {server.url}" in capsys.readouterr().out
    assert httpx.get(server.url + "/api/health").json()["events"] > 3_000

    monkeypatch.delenv("AGENTWATCH_SERVER_URL")
    assert demo.build_parser().parse_args([]).server == "http://127.0.0.1:9"
    monkeypatch.delenv("AGENTWATCH_SERVER")
    assert demo.build_parser().parse_args([]).server == "http://localhost:8787"
