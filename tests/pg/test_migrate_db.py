"""`agentwatch migrate-db`: a SQLite store copied into PostgreSQL, idempotently,
and the two then answer every query the same."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from agentwatch.pricing import PriceBook
from agentwatch.server.validate import to_rows
from agentwatch.store import open_store
from agentwatch.store.base import Filters
from tests.pg.test_parity import _close, assert_same_answers
from tests.store.test_rollups import make

pytestmark = pytest.mark.postgres


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args], capture_output=True, text=True, timeout=120
    )


def test_migrate_db_copies_sqlite_into_postgres_once(pg_url: str, tmp_path: Path) -> None:
    src = str(tmp_path / "agentwatch.db")
    rows = to_rows(make(random.Random(5), 2500), PriceBook())
    store = open_store(src)
    store.insert_events(rows[:2000])
    store.close()

    r = run("migrate-db", "--from", src, "--to", pg_url, "--chunk", "700", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "copied 2000 events" in r.stdout and "(0 already there)" in r.stdout
    # Rerun: nothing copied twice.
    r = run("migrate-db", "--from", src, "--to", pg_url, "--quiet")
    assert r.returncode == 0 and "copied 0 events" in r.stdout, r.stdout + r.stderr
    # More events arrive in the old store (and one already in PostgreSQL): only
    # the missing ones are copied, and the rollups count each event once.
    store = open_store(src)
    store.insert_events(rows[2000:])
    store.close()
    dst = open_store(pg_url)
    dst.insert_events(rows[2400:2401])
    dst.close()
    r = run("migrate-db", "--from", src, "--to", pg_url, "--quiet")
    assert "copied 499 events" in r.stdout and "(2001 already there)" in r.stdout, r.stdout

    a, b = open_store(src), open_store(pg_url)
    try:
        assert b.count_events() == a.count_events() == 2500
        assert_same_answers(a, b, random.Random(9), exact_order=False)
        # The copied rollups equal rollups rebuilt from the copied events.
        before = b.summary(0, 2**62, Filters())
        b.rebuild_rollups()
        assert _close(b.summary(0, 2**62, Filters()), before)
    finally:
        a.close()
        b.close()


def test_migrate_db_errors_are_one_line(tmp_path: Path) -> None:
    r = run("migrate-db", "--from", str(tmp_path / "nope.db"), "--to", "postgresql://x@h/d")
    assert r.returncode == 1 and "no such SQLite file" in r.stderr
    src = str(tmp_path / "a.db")
    open_store(src).close()
    r = run("migrate-db", "--from", src, "--to", "postgresql://u:pw@127.0.0.1:1/d")
    assert (
        r.returncode == 1
        and r.stderr.count("\n") == 1
        and "pw" not in r.stderr.replace("postgresql", "")
    )
