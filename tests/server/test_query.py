"""GET /api/events: filters, order, pagination, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def loaded(server: ServerProcess) -> ServerProcess:
    events = []
    for i in range(30):
        events.append(
            ev(
                id=f"e{i:02d}",
                agent_name=["a1", "a2", "a3"][i % 3],
                task_name=["t1", "t2"][i % 2],
                model=["gpt-4o", "gpt-4o-mini"][i % 2],
                status="error" if i % 5 == 0 else "success",
                error_message="boom" if i % 5 == 0 else None,
                timestamp=(T0 + timedelta(minutes=i)).isoformat(),
                kind="task" if i == 29 else "llm",
                trace_id="tr1" if i >= 25 else None,
                parent_id="e29" if 25 <= i < 29 else None,
                metadata={"i": i},
            )
        )
    assert post(server.url, events).status_code == 200
    return server


def q(url: str, **params: object) -> list[dict]:
    r = httpx.get(url + "/api/events", params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]  # type: ignore[no-any-return]


def ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


def test_newest_first_default_limit_100(loaded: ServerProcess) -> None:
    got = q(loaded.url)
    assert ids(got) == [f"e{i:02d}" for i in range(29, -1, -1)]
    assert got[0]["metadata"] == {"i": 29}


def test_filters(loaded: ServerProcess) -> None:
    assert ids(q(loaded.url, agent_name="a2")) == [f"e{i:02d}" for i in range(28, -1, -3)]
    assert all(e["task_name"] == "t1" for e in q(loaded.url, task_name="t1"))
    assert len(q(loaded.url, model="gpt-4o-mini")) == 15
    assert ids(q(loaded.url, status="error")) == ["e25", "e20", "e15", "e10", "e05", "e00"]
    assert ids(q(loaded.url, kind="task")) == ["e29"]
    assert ids(q(loaded.url, trace_id="tr1")) == ["e29", "e28", "e27", "e26", "e25"]
    assert ids(q(loaded.url, parent_id="e29")) == ["e28", "e27", "e26", "e25"]
    assert q(loaded.url, agent_name="nobody") == []


def test_since_until_inclusive(loaded: ServerProcess) -> None:
    got = q(
        loaded.url,
        since=(T0 + timedelta(minutes=10)).isoformat(),
        until=(T0 + timedelta(minutes=12)).isoformat(),
    )
    assert ids(got) == ["e12", "e11", "e10"]
    # naive means UTC
    got = q(loaded.url, since="2026-05-01T12:28:00")
    assert ids(got) == ["e29", "e28"]


def test_pagination(loaded: ServerProcess) -> None:
    pages = [ids(q(loaded.url, limit=7, offset=o)) for o in range(0, 35, 7)]
    flat = [i for p in pages for i in p]
    assert flat == [f"e{i:02d}" for i in range(29, -1, -1)]
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": 0},
        {"offset": -1},
        {"status": "meh"},
        {"since": "not-a-date"},
        {"kind": "x"},
    ],
)
def test_bad_query_params_422(loaded: ServerProcess, params: dict) -> None:
    r = httpx.get(loaded.url + "/api/events", params=params)
    assert r.status_code == 422
    assert "detail" in r.json()


def test_max_limit_accepted(loaded: ServerProcess) -> None:
    assert len(q(loaded.url, limit=1000)) == 30
