"""The SDK against a server with keys (issue 11, item 4), end to end: a real
SDK in a subprocess, as an app runs it, against a real server and the real
`agentwatch keys` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.server.test_auth import create_key, stored, wait_for

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 5

APP = """
import json, logging, sys
import agentwatch

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
url, key = sys.argv[1], sys.argv[2]
kwargs = {"api_key": key} if key != "-" else {}
agentwatch.init(server_url=url, agent="sdk-auth", auto_patch=False, flush_interval=0.1, **kwargs)
for i in range(COUNT):
    agentwatch.log_event(task_name="t", model="gpt-4o", input_tokens=10, output_tokens=5,
                         latency_ms=12.5)
agentwatch.flush(10)
print(json.dumps(agentwatch.stats()))
agentwatch.shutdown()
print("app finished normally")
""".replace("COUNT", str(EVENTS))


def run_app(
    url: str, key: str | None, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """The app's stats and its stderr; asserts it exited normally."""
    # As a user runs it: without the test suite's AGENTWATCH_STRICT, which
    # would turn the SDK's guarded internal errors into exceptions.
    base = {
        k: v for k, v in os.environ.items() if k not in ("AGENTWATCH_STRICT", "AGENTWATCH_API_KEY")
    }
    p = subprocess.run(
        [sys.executable, "-c", APP, url, key or "-"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "app finished normally", p.stdout
    return json.loads(lines[-2]), p.stderr


@pytest.fixture
def keyed_server(
    server_factory: type[ServerProcess], db_url: str
) -> tuple[ServerProcess, dict[str, str]]:
    keys = {s: create_key(db_url, s, f"sdk-{s}") for s in ("ingest", "read")}
    srv = server_factory().start()
    import httpx

    wait_for(lambda: httpx.get(srv.url + "/api/events").status_code == 401)
    return srv, keys


def test_the_sdk_with_a_wrong_key_exits_normally_and_counts_the_drops(
    keyed_server: tuple[ServerProcess, dict[str, str]],
) -> None:
    srv, keys = keyed_server
    wrong = "agentwatch_AAAAAAAAAAAA_" + "C" * 40
    stats, err = run_app(srv.url, wrong)
    assert stats["dropped_auth"] == EVENTS
    assert stats["sent"] == 0
    assert err.count("the server refused the key") == 1, err  # logged once, clearly
    assert stored(srv.url, keys["read"]) == []

    # No key at all (401) and a key of the wrong scope (403) are refused the same way.
    for key in (None, keys["read"]):
        stats, err = run_app(srv.url, key)
        assert stats["dropped_auth"] == EVENTS and stats["sent"] == 0
        assert err.count("the server refused the key") == 1, err
    assert stored(srv.url, keys["read"]) == []


def test_the_sdk_with_the_right_key_delivers(
    keyed_server: tuple[ServerProcess, dict[str, str]],
) -> None:
    srv, keys = keyed_server
    stats, _ = run_app(srv.url, keys["ingest"])
    assert stats["sent"] == EVENTS and stats["dropped_auth"] == 0
    # The same key from the environment.
    stats, _ = run_app(srv.url, None, env={"AGENTWATCH_API_KEY": keys["ingest"]})
    assert stats["sent"] == EVENTS and stats["dropped_auth"] == 0
    got = stored(srv.url, keys["read"], agent_name="sdk-auth")
    assert len(got) == 2 * EVENTS


def test_demo_takes_an_api_key(keyed_server: tuple[ServerProcess, dict[str, str]]) -> None:
    srv, keys = keyed_server
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "demo.py"),
            "--backfill",
            "--server",
            srv.url,
            "--api-key",
            keys["ingest"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    import httpx

    assert httpx.get(srv.url + "/api/health").json()["events"] > 3000
