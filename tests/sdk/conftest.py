"""Fixtures for SDK tests: a capturing client, the fake provider, real SDK clients."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeProvider

import agentwatch
from agentwatch.sdk.safety import reset_log_once

TESTS = Path(__file__).parent
SRC = TESTS.parents[1] / "sdk" / "src"  # the SDK's distribution


def run_py(
    code: str, strict: bool = True, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports this tree's SDK, as an app would.

    strict=False runs it as in production: without AGENTWATCH_STRICT.
    """
    base = {k: v for k, v in os.environ.items() if k != "AGENTWATCH_STRICT"}
    if strict:
        base["AGENTWATCH_STRICT"] = "1"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}", **(env or {})},
    )


class Captured:
    """The init() client with an exporter in place of HTTP: events as sent."""

    def __init__(self, client: agentwatch.AgentWatch, sink: list[dict[str, Any]]) -> None:
        self.client = client
        self._sink = sink

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        assert self.client.flush(10), "flush timed out"
        return [e for e in self._sink if kind is None or e["kind"] == kind]

    def llm(self) -> list[dict[str, Any]]:
        return self.events("llm")

    def one(self) -> dict[str, Any]:
        evs = self.llm()
        assert len(evs) == 1, evs
        return evs[0]


@pytest.fixture(autouse=True)
def _clean_sdk() -> Iterator[None]:
    reset_log_once()
    yield
    agentwatch.shutdown(timeout=2)
    agentwatch.uninstrument()


@pytest.fixture
def captured() -> Captured:
    sink: list[dict[str, Any]] = []
    client = agentwatch.init(
        server_url="http://127.0.0.1:9",
        agent="test-agent",
        task="test-task",
        exporter=sink.extend,
        flush_interval=0.05,
    )
    return Captured(client, sink)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def openai_client(provider: FakeProvider) -> Any:
    import openai

    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://fake/v1",
        http_client=provider.sync_client(),
        max_retries=0,
    )


@pytest.fixture
def async_openai_client(provider: FakeProvider) -> Any:
    import openai

    return openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://fake/v1",
        http_client=provider.async_client(),
        max_retries=0,
    )


@pytest.fixture
def anthropic_client(provider: FakeProvider) -> Any:
    import anthropic

    return anthropic.Anthropic(
        api_key="sk-test", base_url="http://fake", http_client=provider.sync_client(), max_retries=0
    )


@pytest.fixture
def async_anthropic_client(provider: FakeProvider) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(
        api_key="sk-test",
        base_url="http://fake",
        http_client=provider.async_client(),
        max_retries=0,
    )
