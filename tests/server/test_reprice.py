"""`agentwatch reprice` (issue 14) on a store a real server is using, on both
backends: exactly the server-priced LLM calls from --since on change, to
the new rates; calls with their own cost_usd, older calls and other kinds
keep theirs; the fallback flag follows; metrics (pre-aggregates) agree
with the events afterwards; --dry-run shows the difference, writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.server.test_explore import walk
from tests.server.test_ingest import ev, post

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=3)


def reprice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", "reprice", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def caught_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        p = httpx.get(url + "/api/health").json()["rollups_pending"]
        if p == {"events": 0, "dirty_days": 0}:
            return
        time.sleep(0.2)
    pytest.fail("rollups did not catch up")


def events_by_id(url: str) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in walk(url, limit=1000, since=(NOW - timedelta(days=30)).isoformat())}


def test_reprice_changes_exactly_the_server_priced_calls(
    server: ServerProcess, tmp_path: Path
) -> None:
    def at(days: float) -> str:
        return (NOW - timedelta(days=days)).isoformat()

    groups: dict[str, list[dict[str, Any]]] = {
        # priced at the fallback rate (unknown model): repriced by the file
        "house": [ev(model="house-model", timestamp=at(i * 0.5)) for i in range(5)],
        # a known model the file does not name: same rates, unchanged
        "known": [ev(model="gpt-4o", timestamp=at(1)) for _ in range(3)],
        # carried its own cost: never touched
        "client": [ev(model="house-model", cost_usd=0.125, timestamp=at(1)) for _ in range(2)],
        # before --since: untouched
        "old": [ev(model="house-model", timestamp=at(10)) for _ in range(2)],
        # not LLM calls
        "task": [ev(kind="task", model="", timestamp=at(1)) for _ in range(2)],
    }
    for g in groups.values():
        for e in g:
            e["id"] = str(uuid.uuid4())
    assert post(server.url, [e for g in groups.values() for e in g]).status_code == 200
    caught_up(server.url)
    before = events_by_id(server.url)
    fallback = 3 * 1000 / 1e6 + 15 * 200 / 1e6
    for e in groups["house"]:
        assert before[e["id"]]["cost_usd"] == pytest.approx(fallback)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"house-model": {"input": 1.0, "output": 2.0}}}))
    want = 1000 * 1.0 / 1e6 + 200 * 2.0 / 1e6

    # Dry run: the difference per model, nothing written.
    args = ("--db", server.db, "--since", SINCE.isoformat(), "--prices", str(prices))
    r = reprice(*args, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "dry run: 5 of " in r.stdout and "nothing written" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("house-model"))
    assert line.split()[1:] == [
        "5",
        f"{5 * fallback:.6f}",
        f"{5 * want:.6f}",
        f"{5 * (want - fallback):+.6f}",
    ]
    assert events_by_id(server.url) == before

    r = reprice("--db", server.db, "--since", SINCE.isoformat(), "--prices", str(prices))
    assert r.returncode == 0, r.stderr
    assert "repriced 5 of 8 calls" in r.stdout  # 5 house + 3 known looked at
    after = events_by_id(server.url)
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {e["id"] for e in groups["house"]}
    for e in groups["house"]:
        assert after[e["id"]]["cost_usd"] == pytest.approx(want)
        assert {k: v for k, v in after[e["id"]].items() if k != "cost_usd"} == {
            k: v for k, v in before[e["id"]].items() if k != "cost_usd"
        }
    # The fallback flag follows the rates: the quality view no longer counts them.
    q = httpx.get(server.url + "/api/metrics/quality", params={"period": "30d"}).json()
    assert q["fallback_price"]["count"] == 2  # the two older calls, still at the fallback

    # The pre-aggregates agree with the events.
    params = {"since": (NOW - timedelta(days=30)).isoformat(), "until": NOW.isoformat()}
    s = httpx.get(server.url + "/api/metrics/summary", params=params).json()
    llm = [e for e in after.values() if e["kind"] == "llm"]
    assert s["total_cost"] == pytest.approx(sum(e["cost_usd"] for e in llm))
    rows = httpx.get(
        server.url + "/api/metrics/breakdown", params={**params, "group_by": "model"}
    ).json()
    by_model = {r["name"]: r["total_cost"] for r in rows}
    assert by_model["house-model"] == pytest.approx(5 * want + 2 * 0.125 + 2 * fallback)

    # Again: nothing left to change.
    r = reprice("--db", server.db, "--since", SINCE.isoformat(), "--prices", str(prices))
    assert r.returncode == 0 and "repriced 0 of 8 calls" in r.stdout

    # Back to the built-in rates: the fallback again, flag included.
    r = reprice("--db", server.db, "--since", SINCE.isoformat())
    assert r.returncode == 0 and "repriced 5 of 8 calls" in r.stdout
    assert events_by_id(server.url) == before


def test_reprice_bad_input_is_one_line(tmp_path: Path) -> None:
    r = reprice("--db", str(tmp_path / "none.db"), "--since", "2026-01-01")
    assert r.returncode == 1 and "no such SQLite file" in r.stderr
    r = reprice("--db", str(tmp_path / "none.db"), "--since", "soon")
    assert r.returncode == 1 and "--since" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    r = reprice("--db", str(tmp_path / "x.db"), "--since", "2026-01-01", "--prices", str(bad))
    assert r.returncode == 1 and "price file" in r.stderr
