"""API keys in the SDK and the demo: sent as a Bearer token; a refusal is counted, never raised.

The server side of keys is its own work; here a small real HTTP server of the
test's own answers 200 for the right key and 401/403 otherwise, with a JSON
`detail` the way the server's contract says.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes import JudgingServer

import agentwatch
from agentwatch import demo
from agentwatch.sdk.config import resolve
from tests.sdk.conftest import run_py

KEY = "aw_ingest_0123456789abcdefghijklmnopqrstuv"
UNKNOWN = "missing or unknown API key; create one with `agentwatch keys create`"
WRONG_SCOPE = "this key has the read scope; POST /api/events needs ingest or admin"


@pytest.fixture
def keyed() -> Iterator[Callable[..., JudgingServer]]:
    """A server that wants `KEY` (401 without it; 403 for the key `read_key`)."""
    made: list[JudgingServer] = []

    def make() -> JudgingServer:
        def judge(events: list[dict[str, Any]], headers: dict[str, str]) -> tuple[int, Any]:
            auth = headers.get("Authorization", "")
            if auth == f"Bearer {KEY}":
                return 200, {"status": "ok", "count": len(events)}
            if auth == "Bearer read_key":
                return 403, {"detail": WRONG_SCOPE}
            return 401, {"detail": UNKNOWN}

        made.append(JudgingServer(judge))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_the_key_travels_as_a_bearer_token(keyed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = keyed()
    client = agentwatch.init(server_url=srv.url, api_key=KEY, auto_patch=False)
    assert KEY not in repr(client)
    assert KEY not in repr(resolve(srv.url, None, None, {"api_key": KEY}))  # nor in the config
    for i in range(5):
        assert agentwatch.log_event(model="m", input_tokens=i)
    assert agentwatch.flush(20)
    assert sorted(e["input_tokens"] for e in srv.accepted.values()) == [0, 1, 2, 3, 4]
    assert all(h["Authorization"] == f"Bearer {KEY}" for h in srv.headers)
    st = agentwatch.stats()
    assert (st["sent"], st["dropped_auth"]) == (5, 0)

    # From the environment, for a client object too.
    monkeypatch.setenv("AGENTWATCH_API_KEY", f"  {KEY}\n")  # as `$(cat keyfile)` gives it
    watch = agentwatch.AgentWatch(server_url=srv.url)
    watch.log_event(model="m", task_name="from-env")
    assert watch.flush(20)
    watch.shutdown()
    assert any(e["task_name"] == "from-env" for e in srv.accepted.values())


@pytest.mark.parametrize(
    ("key", "status", "detail", "hint"),
    [
        ("aw_wrong", 401, UNKNOWN, False),
        ("read_key", 403, WRONG_SCOPE, False),
        (None, 401, UNKNOWN, True),
    ],
    ids=["unknown-key", "wrong-scope", "no-key"],
)
def test_a_refused_key_drops_and_counts_and_says_so_once(
    keyed: Any,
    caplog: pytest.LogCaptureFixture,
    key: str | None,
    status: int,
    detail: str,
    hint: bool,
) -> None:
    srv = keyed()
    agentwatch.init(server_url=srv.url, api_key=key, auto_patch=False, batch_size=100)
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        results = [agentwatch.log_event(model="m") for _ in range(250)]
        assert agentwatch.flush(20)
        agentwatch.log_event(model="m")
        assert agentwatch.flush(20)
    assert all(results)  # the app is never told: queued, then dropped off its path
    st = agentwatch.stats()
    assert (st["sent"], st["dropped_auth"], st["dropped_rejected"]) == (0, 251, 0)
    assert st["retries"] == 0 and st["last_error"] == f"{status} {detail}"
    assert srv.accepted == {} and srv.requests <= 4  # one try per batch: no bisecting
    said = [r.getMessage() for r in caplog.records if "refused the key" in r.getMessage()]
    assert len(said) == 1
    assert f"the server refused the key: {detail}" in said[0]
    assert ("AGENTWATCH_API_KEY" in said[0]) is hint


def test_a_malformed_key_is_refused_at_init(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        agentwatch.init(server_url="http://127.0.0.1:9", api_key="aw_x\r\nX-Evil: 1")
    monkeypatch.delenv("AGENTWATCH_STRICT")
    c = agentwatch.init(server_url="http://127.0.0.1:9", api_key="aw_x\r\nX-Evil: 1")
    assert "Authorization" not in c._sender._headers  # no header injection, no crash


def test_an_app_with_a_wrong_key_exits_normally(keyed: Any) -> None:
    srv = keyed()
    code = f"""
        import json, agentwatch
        agentwatch.init(server_url="{srv.url}", api_key="aw_revoked", auto_patch=False)

        @agentwatch.track(task="job")
        def job():
            agentwatch.log_event(model="m", input_tokens=3)
            return "done"

        print(job())
        agentwatch.flush(20)
        print(json.dumps(agentwatch.stats()))
        """
    r = run_py(code, strict=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "done"
    st = json.loads(lines[-1])
    assert (st["sent"], st["dropped_auth"]) == (0, 2)  # the run and the call inside it
    assert r.stderr.count("the server refused the key") == 1 and "Traceback" not in r.stderr


END = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)


def test_demo_sends_the_key(
    keyed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = keyed()
    sent = demo.run_backfill(srv.url, end=END, out=io.StringIO(), api_key=KEY)
    assert len(srv.accepted) == sent > 3_000

    assert demo.main(["--backfill", "--server", srv.url, "--api-key", "aw_wrong"]) == 1
    err = capsys.readouterr().err
    assert f"the server refused the key (401): {json.dumps({'detail': UNKNOWN})}" in err

    monkeypatch.setenv("AGENTWATCH_API_KEY", KEY)
    assert demo.main(["--live", "--server", srv.url, "--batches", "2", "--speed", "100"]) == 0
    assert "Session summary" in capsys.readouterr().out
    assert len(srv.accepted) > sent

    monkeypatch.delenv("AGENTWATCH_API_KEY")
    assert demo.main(["--backfill", "--server", srv.url]) == 1
    assert "pass --api-key or set AGENTWATCH_API_KEY" in capsys.readouterr().err
