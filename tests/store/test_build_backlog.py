"""A backlog of committed events larger than one build (fast ingest, builds
behind) is built in slices from the events the writer holds in memory: a
chunk built in part keeps its rest, and the slices answer every query as one
build over everything does, on SQLite (the only backend that holds them).
(Not the same rows: the density rule decides a bucket's raw mark from what
one build sees of it.)"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from agentwatch.pricing import PriceBook
from agentwatch.server.validate import to_rows
from agentwatch.store import SqlStore, open_store
from agentwatch.store import rollups as ru
from tests.store.test_unbuilt import compare, make

NOW = time.time_ns() // 1000


def test_a_backlog_is_built_in_slices_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock held still: which buckets count as closed must not change
    # between the two stores' builds.
    monkeypatch.setattr(ru, "now_us", lambda: NOW)
    rows = to_rows(make(random.Random(3), 2000, NOW, 3 * ru.HOUR_US), PriceBook())
    sliced = open_store(str(tmp_path / "sliced.db"))
    whole = open_store(str(tmp_path / "whole.db"))
    assert isinstance(sliced, SqlStore) and isinstance(whole, SqlStore)
    try:
        for i in range(0, 2000, 500):
            sliced.insert_events(rows[i : i + 500])
            whole.insert_events(rows[i : i + 500])
        built = []
        while True:
            n = sliced.build_rollups(max_rows=700)  # cuts the second and the third chunk
            if n == 0:
                break
            built.append(n)
            with sliced.engine.connect() as conn:
                w = ru.get_watermark(conn)
            held = sum(len(a) for _, _, a in sliced._pending)
            assert held == 2000 - sum(built)  # the rest of a chunk built in part is kept
            if held:
                assert sliced._pending[0][0] == w + 1  # and it is what comes next
        assert built == [700, 700, 600]
        assert whole.build_rollups() == 2000
        compare(sliced, whole, random.Random(4), NOW, 40)
    finally:
        sliced.close()
        whole.close()
