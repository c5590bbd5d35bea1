"""Fixtures for the PostgreSQL-only tests: a fresh database and servers on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, pg_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    with pg_database() as url:
        yield url


@pytest.fixture
def pg_servers(pg_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Servers on this test's database: append ServerProcess(pg_url, ...) and
    they are stopped at teardown (before the database is dropped)."""
    started: list[ServerProcess] = []
    yield started
    for s in started:
        s.stop()
