"""Run totals over runs whose ids are stored two ways on SQLite: canonical
UUIDs packed to 16 bytes, any other id as text. One request may name both
(the dashboard's feed asks for every run it shows at once)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from agentwatch.pricing import PriceBook
from agentwatch.schema import Event
from agentwatch.server.validate import to_rows
from agentwatch.store import open_store


def test_runs_with_packed_and_text_ids_in_one_request(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "r.db"))
    try:
        now = time.time()
        evs = []
        runs = {"uuid": str(uuid.uuid4()), "text": "run <b>'hostile' \"id\"</b>"}
        for k, (label, run) in enumerate(runs.items()):
            ts = f"{now - 10 + k}"
            evs.append(
                Event(
                    id=run, agent_name="a", kind="task", task_name=label, trace_id=run, timestamp=ts
                )
            )
            for j in range(2):
                evs.append(
                    Event(
                        id=f"{label}-call-{j}",
                        agent_name="a",
                        task_name=label,
                        model="gpt-4o",
                        input_tokens=10,
                        output_tokens=5,
                        trace_id=run,
                        parent_id=run,
                        timestamp=ts,
                    )
                )
        # and a run without a trace, found through parent_id
        orphan = str(uuid.uuid4())
        evs.append(
            Event(id=orphan, agent_name="a", kind="task", task_name="walk", timestamp=f"{now}")
        )
        evs.append(
            Event(
                id="walk-call",
                agent_name="a",
                task_name="walk",
                model="gpt-4o",
                parent_id=orphan,
                timestamp=f"{now}",
            )
        )
        store.insert_events(to_rows(evs, PriceBook()))
        got = store.run_totals([*runs.values(), orphan, "not-a-run"])
        assert set(got) == {*runs.values(), orphan}
        for run in runs.values():
            assert got[run]["llm_calls"] == 2, got[run]
        assert got[orphan]["llm_calls"] == 1
    finally:
        store.close()
