"""Fixtures for the framework matrix: each framework builds its own clients from a URL.

The fake provider runs behind a real HTTP server on 127.0.0.1; the SDK is set
up with nothing but ``agentwatch.init()`` (an exporter in place of HTTP, as in
tests/sdk), exactly as an app using the framework would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "sdk"))

from fakes import FakeProvider, HTTPFakeProvider

from tests.sdk.conftest import Captured, _clean_sdk, captured, provider

__all__ = ["Captured", "_clean_sdk", "captured", "provider"]

# LiteLLM fetches its price map from the internet at import unless told not to;
# the tests have no internet and must not wait for it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-test")
os.environ.setdefault("ANTHROPIC_API_KEY", "sk-test")


@pytest.fixture
def server(provider: FakeProvider) -> Iterator[HTTPFakeProvider]:
    s = HTTPFakeProvider(provider)
    yield s
    s.close()
