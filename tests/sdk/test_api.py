"""The module-level API, configuration, patch lifecycle, import weight and the safety guard."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fakes import FakeProvider

import agentwatch
from agentwatch.integrations import is_instrumented
from agentwatch.sdk import safety
from tests.sdk.conftest import Captured, run_py

MSGS: list[Any] = [{"role": "user", "content": "hi"}]


def test_public_surface() -> None:
    assert sorted(agentwatch.__all__) == sorted(
        [
            "init",
            "track",
            "log_event",
            "AgentWatch",
            "flush",
            "shutdown",
            "stats",
            "instrument",
            "uninstrument",
            "__version__",
        ]
    )
    from agentwatch._version import __version__

    assert agentwatch.__version__ == __version__


def test_import_is_light() -> None:
    r = run_py(
        """
        import sys, json
        import agentwatch
        agentwatch.init(server_url="http://127.0.0.1:9")
        heavy = ["fastapi", "uvicorn", "sqlalchemy", "pydantic", "genai_prices", "httpx",
                 "httpx2", "openai", "anthropic", "agentwatch.server", "agentwatch.store",
                 "agentwatch.schema", "agentwatch.pricing", "agentwatch.cli"]
        print(json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


@pytest.mark.parametrize("order", ["import-before-init", "import-after-init"])
def test_patching_regardless_of_import_order(order: str) -> None:
    before = "import openai, anthropic" if order == "import-before-init" else ""
    after = "" if before else "import openai, anthropic"
    r = run_py(
        f"""
        import json
        {before}
        import agentwatch
        from fakes import FakeProvider
        sink = []
        agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink.extend)
        {after}
        fp = FakeProvider()
        o = openai.OpenAI(api_key="k", base_url="http://f/v1", http_client=fp.sync_client(),
                          max_retries=0)
        o.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "x"}}])
        a = anthropic.Anthropic(api_key="k", base_url="http://f", http_client=fp.sync_client(),
                                max_retries=0)
        a.messages.create(model="claude-sonnet-4-0", max_tokens=5,
                          messages=[{{"role": "user", "content": "x"}}])
        agentwatch.flush()
        print(json.dumps([e["provider"] for e in sink]))
        """
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == ["openai", "anthropic"]


def test_instrument_uninstrument_idempotent_and_reversible(
    captured: Captured, openai_client: Any, anthropic_client: Any
) -> None:
    import anthropic
    import openai
    from openai.resources.chat.completions.completions import Completions

    patched = Completions.create
    assert hasattr(patched, "__agentwatch_original__")
    agentwatch.instrument()  # again: no double wrapping
    assert Completions.create is patched
    openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert len(captured.llm()) == 1  # not counted twice

    agentwatch.uninstrument()
    agentwatch.uninstrument()
    assert not is_instrumented()
    assert Completions.create is patched.__agentwatch_original__  # type: ignore[attr-defined]
    assert not hasattr(
        anthropic.resources.messages.messages.Messages.create, "__agentwatch_original__"
    )
    openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    anthropic_client.messages.create(model="claude-sonnet-4-0", max_tokens=5, messages=MSGS)
    assert len(captured.llm()) == 1

    agentwatch.instrument()
    openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert len(captured.llm()) == 2
    assert isinstance(openai.OpenAI, type)


def test_unsupported_version_warns_once_and_does_not_patch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import openai
    from openai.resources.chat.completions.completions import Completions

    original = Completions.create
    monkeypatch.setattr(openai, "__version__", "9.0.0")
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        agentwatch.init(server_url="http://127.0.0.1:9", exporter=lambda b: None)
        agentwatch.uninstrument()
        agentwatch.instrument()
    assert Completions.create is original
    msgs = [
        r.getMessage() for r in caplog.records if "outside the supported range" in r.getMessage()
    ]
    assert len(msgs) == 1 and "openai 9.0.0" in msgs[0]


def test_log_event_before_init_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        assert agentwatch.log_event(task_name="t", model="m") is False
        assert agentwatch.log_event(task_name="t", model="m") is False
    warnings = [r for r in caplog.records if "init()" in r.getMessage()]
    assert len(warnings) == 1
    assert agentwatch.flush() is True and agentwatch.stats()["sent"] == 0


def test_log_event_brief_signature(captured: Captured) -> None:
    ok = agentwatch.log_event(
        task_name="custom-analysis",
        agent_name="analytics-bot",
        model="gpt-4o-mini",
        input_tokens=500,
        output_tokens=100,
        latency_ms=1200.0,
        status="success",
        error_message=None,
        metadata={"batch_size": 10, "user_id": "123"},
    )
    assert ok
    ev = captured.one()
    assert ev["task_name"] == "custom-analysis" and ev["agent_name"] == "analytics-bot"
    assert ev["input_tokens"] == 500 and ev["metadata"] == {"batch_size": 10, "user_id": "123"}
    assert ev["timestamp"].endswith("+00:00")
    agentwatch.log_event(model="m", kind="tool", provider="custom", session_id="s1", cost_usd=0.5)
    ev2 = captured.events()[-1]
    assert ev2["task_name"] == "test-task" and ev2["kind"] == "tool" and ev2["cost_usd"] == 0.5


def test_env_configuration(monkeypatch: pytest.MonkeyPatch, openai_client: Any) -> None:
    monkeypatch.setenv("AGENTWATCH_SERVER_URL", "http://127.0.0.1:1234/")
    monkeypatch.setenv("AGENTWATCH_AGENT", "env-agent")
    monkeypatch.setenv("AGENTWATCH_TASK", "env-task")
    monkeypatch.setenv("AGENTWATCH_BATCH_SIZE", "7")
    monkeypatch.setenv("AGENTWATCH_FLUSH_INTERVAL", "0.5")
    monkeypatch.setenv("AGENTWATCH_MAX_QUEUE", "42")
    monkeypatch.setenv("AGENTWATCH_SHUTDOWN_TIMEOUT", "1.5")
    monkeypatch.setenv("AGENTWATCH_AUTO_PATCH", "0")
    c = agentwatch.init()
    assert (c.server_url, c.agent, c.task) == ("http://127.0.0.1:1234", "env-agent", "env-task")
    s = c._sender
    assert (s.batch_size, s.flush_interval, s.max_queue, s.shutdown_timeout) == (7, 0.5, 42, 1.5)
    assert not is_instrumented()
    # Arguments win over the environment.
    c2 = agentwatch.init(server_url="http://h:1", agent="arg", auto_patch=True)
    assert (c2.server_url, c2.agent, c2.task) == ("http://h:1", "arg", "env-task")
    assert is_instrumented()


def test_disabled(monkeypatch: pytest.MonkeyPatch, openai_client: Any) -> None:
    monkeypatch.setenv("AGENTWATCH_DISABLED", "1")
    sink: list[dict[str, Any]] = []
    agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink.extend)
    assert not is_instrumented()
    assert agentwatch.log_event(model="m") is False
    openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
    agentwatch.flush()
    assert sink == []


def test_queue_full_drops_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    # A closed port: nothing can be delivered, the queue fills to its bound.
    agentwatch.init(server_url="http://127.0.0.1:9", max_queue=50, batch_size=10, auto_patch=False)
    results = [agentwatch.log_event(model="m") for _ in range(200)]
    st = agentwatch.stats()
    assert results.count(False) == st["dropped_queue_full"]
    assert 150 - 10 <= st["dropped_queue_full"] <= 150  # the thread may have taken one batch
    assert st["sent"] == 0


def test_strict_mode_raises_internal_errors(
    captured: Captured,
    openai_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agentwatch.integrations import openai as integ

    def broken(*a: Any, **k: Any) -> None:
        raise KeyError("telemetry bug")

    monkeypatch.setattr(integ, "_record_result", broken)
    monkeypatch.setenv("AGENTWATCH_STRICT", "1")
    with pytest.raises(KeyError, match="telemetry bug"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)

    # In production the host's call succeeds and the bug is logged once.
    monkeypatch.setenv("AGENTWATCH_STRICT", "0")
    with caplog.at_level(logging.WARNING, logger="agentwatch"):
        for _ in range(3):
            r = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS)
            assert r.choices[0].message.content == "Hello!"
    logged = [x for x in caplog.records if "internal error in openai.result" in x.getMessage()]
    assert len(logged) == 1


def test_stream_observer_bug_never_breaks_stream(
    captured: Captured, openai_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentwatch.integrations.openai import ChatStreamState

    def broken(self: Any, chunk: Any, now: float, call: Any) -> bool:
        raise ValueError("observer bug")

    monkeypatch.setattr(ChatStreamState, "on_item", broken)
    monkeypatch.setenv("AGENTWATCH_STRICT", "0")
    s = openai_client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    # Without our filter the caller now also sees the usage chunk it did not ask for;
    # what matters is that every chunk arrives and nothing raises.
    text = "".join((c.choices[0].delta.content or "") for c in s if c.choices)
    assert text == "Hello!"
    assert safety.strict() is False


def test_shutdown_and_reinit(provider: FakeProvider) -> None:
    sink1: list[dict[str, Any]] = []
    sink2: list[dict[str, Any]] = []
    agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink1.extend)
    agentwatch.log_event(model="a")
    agentwatch.init(server_url="http://127.0.0.1:9", exporter=sink2.extend)  # flushes the first
    agentwatch.log_event(model="b")
    assert agentwatch.shutdown(timeout=5)
    assert [e["model"] for e in sink1] == ["a"] and [e["model"] for e in sink2] == ["b"]
    assert agentwatch.log_event(model="c") is False  # after shutdown: like before init
