"""GET /api/export and `agentwatch export` (issue 14) against a real server,
on both backends: CSV and JSONL round trips of hostile strings, every
filter against GET /api/events, the attachment header, bad input, the CLI
through the API and straight from the database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from agentwatch.export import CSV_COLUMNS
from tests.conftest import ServerProcess
from tests.server.test_auth import create_key
from tests.server.test_explore import walk
from tests.server.test_ingest import ev, post

NOW = datetime.now(UTC).replace(microsecond=0)

# Strings a CSV writer or reader gets wrong when it quotes badly.
HOSTILE = [
    'comma, "quotes" and ""doubled""',
    "line\nbreak",
    "crlf\r\nbreak and lone\rcr",
    '"',
    ",",
    " leading and trailing spaces ",
    "=SUM(A1:A2)",
    "tab\tinside",
    "unicode: é ü ß 中文 🤖 \u2028 \u00a0",
    "'single' `back` \\backslash\\",
]


def export(url: str, fmt: str = "csv", **params: Any) -> httpx.Response:
    r = httpx.get(url + "/api/export", params={"format": fmt, **params}, timeout=60)
    return r


def csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    assert tuple(header) == CSV_COLUMNS
    return [dict(zip(header, row, strict=True)) for row in reader]


def jsonl_rows(text: str) -> list[dict[str, Any]]:
    assert text == "" or text.endswith("\n")
    # (split on LF only: str.splitlines also splits on U+2028 inside strings)
    return [json.loads(line) for line in text.split("\n")[:-1]]


def hostile_events() -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(HOSTILE):
        out.append(
            ev(
                timestamp=(NOW - timedelta(minutes=len(HOSTILE) - i)).isoformat(),
                task_name=s,
                agent_name=f"agent {s}"[:200],
                model=s,
                status="error",
                error_message=s,
                metadata={"text": s, s: [1, 2.5, None, True], "nested": {"k": s}},
                provider=s,
                user_id=s,
                session_id=s,
                cost_usd=0.1 + i,
            )
        )
    return out


def test_csv_and_jsonl_round_trip_hostile_strings(server: ServerProcess) -> None:
    sent = hostile_events()
    assert post(server.url, sent).status_code == 200
    api = {e["id"]: e for e in walk(server.url, limit=1000)}
    assert len(api) == len(sent)

    r = export(server.url, "csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert b"\r\n" in r.content  # RFC 4180 line ends
    rows = csv_rows(r.content.decode("utf-8"))
    assert [row["id"] for row in rows] == [e["id"] for e in sent]  # oldest first
    for row in rows:
        e = api[row["id"]]
        for col in CSV_COLUMNS:
            want = e[col]
            if col == "metadata":
                assert json.loads(row[col]) == want
            elif want is None:
                assert row[col] == ""
            elif isinstance(want, float):
                assert float(row[col]) == want
            elif isinstance(want, int):
                assert int(row[col]) == want
            else:
                assert row[col] == want, col

    r = export(server.url, "jsonl")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = jsonl_rows(r.text)
    assert [e["id"] for e in lines] == [e["id"] for e in sent]
    for e in lines:
        assert e == api[e["id"]]  # exactly what GET /api/events shows


def test_attachment_names_what_was_exported(server: ServerProcess) -> None:
    post(server.url, [ev(agent_name="bot/../x y")])
    r = export(server.url, "jsonl", agent_name="bot/../x y", status="success")
    cd = r.headers["content-disposition"]
    assert cd.startswith('attachment; filename="agentwatch-events-agent-bot_x_y-status-success-')
    assert cd.endswith('.jsonl"')
    assert r.headers["content-disposition"].isascii()
    r = export(server.url)
    assert r.headers["content-disposition"].endswith('.csv"')
    r = export(server.url, since="2026-11-01T02:00:00+02:00")
    assert "-since-20261101T000000Z-" in r.headers["content-disposition"]  # in UTC


def test_bad_input_is_422_naming_the_field(server: ServerProcess) -> None:
    for params, field in (
        ({"format": "xml"}, "format"),
        ({"format": "csv", "status": "maybe"}, "status"),
        ({"format": "csv", "kind": "job"}, "kind"),
        ({"format": "csv", "since": "yesterday"}, "since"),
    ):
        r = httpx.get(server.url + "/api/export", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["loc"] == ["query", field]
    r = httpx.get(
        server.url + "/api/export",
        params={"since": NOW.isoformat(), "until": (NOW - timedelta(hours=1)).isoformat()},
    )
    assert r.status_code == 422 and "since" in r.json()["detail"]


def varied_events(n: int = 120) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        kind = ("llm", "task", "tool")[i % 3]
        out.append(
            ev(
                timestamp=(NOW - timedelta(minutes=n - i)).isoformat(),
                agent_name=f"agent-{i % 4}",
                task_name=f"task-{i % 5}",
                model=f"model-{i % 3}",
                status="error" if i % 7 == 0 else "success",
                error_message="boom" if i % 7 == 0 else None,
                kind=kind,
                provider=f"prov-{i % 2}",
                user_id=f"user-{i % 6}",
                session_id=f"sess-{i % 8}",
            )
        )
    return out


FILTERS: list[dict[str, str]] = [
    {},
    {"agent_name": "agent-1"},
    {"task_name": "task-3"},
    {"model": "model-2"},
    {"status": "error"},
    {"kind": "tool"},
    {"provider": "prov-1"},
    {"user_id": "user-5"},
    {"session_id": "sess-2"},
    {"agent_name": "agent-2", "status": "success", "kind": "llm"},
    {"agent_name": "nobody"},
    {"since": (NOW - timedelta(minutes=60)).isoformat()},
    {"until": (NOW - timedelta(minutes=30)).isoformat()},
    {
        "since": (NOW - timedelta(minutes=90)).isoformat(),
        "until": (NOW - timedelta(minutes=45)).isoformat(),
        "model": "model-0",
    },
]


def test_every_filter_matches_the_event_list(server: ServerProcess) -> None:
    assert post(server.url, varied_events()).status_code == 200
    for f in FILTERS:
        want = sorted(e["id"] for e in walk(server.url, limit=1000, **f))
        got_csv = [r["id"] for r in csv_rows(export(server.url, "csv", **f).text)]
        got_jsonl = [e["id"] for e in jsonl_rows(export(server.url, "jsonl", **f).text)]
        assert sorted(got_csv) == want, f
        assert got_jsonl == got_csv, f
    # A filter that matches nothing: the header alone, and an empty JSONL file.
    assert export(server.url, "csv", agent_name="nobody").text == ",".join(CSV_COLUMNS) + "\r\n"
    assert export(server.url, "jsonl", agent_name="nobody").text == ""


def test_export_spans_many_chunks_in_time_order(server: ServerProcess) -> None:
    """More events than one store chunk (5,000), several sharing a timestamp:
    each exactly once, in (time, id) order."""
    same = NOW - timedelta(hours=2)
    batch = [
        ev(timestamp=(same if i % 3 else same + timedelta(microseconds=i)).isoformat())
        for i in range(12_000)
    ]
    for i in range(0, len(batch), 4000):
        assert post(server.url, batch[i : i + 4000]).status_code == 200
    lines = jsonl_rows(export(server.url, "jsonl").text)
    assert len(lines) == len(batch)
    assert len({e["id"] for e in lines}) == len(batch)
    keys = [(e["timestamp"], e["id"]) for e in lines]
    assert keys == sorted(keys)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", "export", *args],
        capture_output=True,
        timeout=timeout,
    )


def test_cli_against_the_api_and_the_database(server: ServerProcess, tmp_path: Path) -> None:
    sent = hostile_events() + varied_events(30)
    assert post(server.url, sent).status_code == 200
    for f in (
        {},
        {"agent_name": "agent-1"},
        {"status": "error", "kind": "llm"},
        {"since": (NOW - timedelta(minutes=20)).isoformat()},
    ):
        args = [a for k, v in f.items() for a in (f"--{k.replace('_', '-')}", v)]
        for fmt in ("csv", "jsonl"):
            want = export(server.url, fmt, **f).content
            r = cli("--format", fmt, "--server", server.url, *args)
            assert r.returncode == 0, r.stderr
            assert r.stdout == want, (f, fmt)
            out = tmp_path / f"x.{fmt}"
            r = cli("--format", fmt, "--db", server.db, "-o", str(out), "--quiet", *args)
            assert r.returncode == 0, r.stderr
            assert out.read_bytes() == want, (f, fmt)
            assert r.stderr == b""
    r = cli("--server", server.url, "--db", server.db)
    assert r.returncode == 1 and b"either --server" in r.stderr
    r = cli("--server", server.url, "--since", "last week")
    assert r.returncode == 1 and b"--since" in r.stderr and b"Traceback" not in r.stderr
    # The closing line says how many events were written, on stderr only.
    r = cli("--format", "jsonl", "--server", server.url, "-o", str(tmp_path / "all.jsonl"))
    assert r.returncode == 0
    assert f"exported {len(sent)} events".encode() in r.stderr


def test_export_needs_a_read_key(tmp_path: Path) -> None:
    db = str(tmp_path / "keyed.db")
    ingest = create_key(db, "ingest", "sdk")
    read = create_key(db, "read", "analyst")
    srv = ServerProcess(db).start()
    try:
        _keyed_checks(srv, ingest, read)
    finally:
        srv.stop()


def _keyed_checks(srv: ServerProcess, ingest: str, read: str) -> None:
    r = httpx.post(
        srv.url + "/api/events",
        json={"events": [ev(id=str(uuid.uuid4()))]},
        headers={"Authorization": f"Bearer {ingest}"},
    )
    assert r.status_code == 200
    assert httpx.get(srv.url + "/api/export").status_code == 401
    bad = httpx.get(srv.url + "/api/export", headers={"Authorization": f"Bearer {ingest}"})
    assert bad.status_code == 403
    ok = httpx.get(srv.url + "/api/export", headers={"Authorization": f"Bearer {read}"})
    assert ok.status_code == 200 and len(csv_rows(ok.text)) == 1
    r = cli("--server", srv.url, "--api-key", read, "--format", "jsonl")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    r = cli("--server", srv.url, "--format", "jsonl")
    assert r.returncode == 1 and b"HTTP 401" in r.stderr
