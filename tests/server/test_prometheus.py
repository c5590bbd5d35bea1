"""GET /metrics (issue 14) against a real server: the values against known
input, the cardinality guard, refused ingest, the read scope; a real
Prometheus (Debian's `prometheus`) scraping it with a key; and the Grafana
dashboard in docs/ loaded and its every query run by that Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, free_port, need
from tests.server.test_auth import create_key
from tests.server.test_ingest import ev, post

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "agentwatch-dashboard.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, key: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(url + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict[Any, float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def total(m: dict[Any, float], name: str, **labels: str) -> float:
    """Sum over the series of `name` whose labels include `labels`."""
    return sum(
        v
        for (n, ls), v in m.items()
        if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
    )


def known_events() -> list[dict[str, Any]]:
    evs = []
    for i in range(40):
        evs.append(
            ev(
                agent_name=f"agent-{i % 2}",
                model="gpt-4o" if i % 4 else "mystery-model",
                status="error" if i % 5 == 0 else "success",
                latency_ms=[50.0, 700.0, 3000.0, 150_000.0][i % 4],
                input_tokens=1000 + i,
                output_tokens=10 * i,
                cache_read_tokens=100,
                reasoning_tokens=5,
                cost_usd=None if i % 3 else 0.25,
            )
        )
    for i in range(6):
        evs.append(
            ev(
                kind="task",
                agent_name="agent-0",
                task_name=f"job-{i % 2}",
                model="",
                status="error" if i == 0 else "success",
            )
        )
    return evs


def test_metrics_count_what_was_ingested(server: ServerProcess) -> None:
    sent = known_events()
    assert post(server.url, sent[:25]).status_code == 200
    assert post(server.url, sent[25:]).status_code == 200
    assert post(server.url, sent[:10]).status_code == 200  # a retry: stored once, counted once
    bad = post(server.url, [ev(), {"agent_name": "x"}, ev(input_tokens=-1)])
    assert bad.status_code == 422
    broken = httpx.post(
        server.url + "/api/events",
        content=b"{",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert broken.status_code == 422
    stored = {e["id"]: e for e in httpx.get(server.url + "/api/events?limit=1000").json()["events"]}
    m = scrape(server.url)
    llm = [e for e in stored.values() if e["kind"] == "llm"]
    for agent in ("agent-0", "agent-1"):
        for model in ("gpt-4o", "mystery-model"):
            mine = [e for e in llm if e["agent_name"] == agent and e["model"] == model]
            for status in ("success", "error"):
                n = sum(1 for e in mine if e["status"] == status)
                got = value(
                    m, "agentwatch_llm_requests_total", agent_name=agent, model=model, status=status
                )
                assert got == n
            labels = {"agent_name": agent, "model": model}
            assert value(m, "agentwatch_llm_cost_usd_total", **labels) == pytest.approx(
                sum(e["cost_usd"] for e in mine)
            )
            for t in ("input", "output", "cache_read", "cache_write", "reasoning"):
                assert value(m, "agentwatch_llm_tokens_total", **labels, type=t) == sum(
                    e[f"{t}_tokens"] for e in mine
                )
            assert value(m, "agentwatch_llm_latency_seconds_count", **labels) == len(mine)
            for le, upto in (("0.1", 0.1), ("1.0", 1.0), ("5.0", 5.0), ("120.0", 120.0)):
                want = sum(1 for e in mine if e["latency_ms"] / 1000 <= upto)
                assert value(m, "agentwatch_llm_latency_seconds_bucket", **labels, le=le) == want
            assert value(m, "agentwatch_llm_latency_seconds_bucket", **labels, le="+Inf") == len(
                mine
            )
    assert value(
        m, "agentwatch_task_runs_total", agent_name="agent-0", task_name="job-0", status="error"
    ) == (1)
    assert value(
        m, "agentwatch_task_runs_total", agent_name="agent-0", task_name="job-0", status="success"
    ) == (2)
    assert value(m, "agentwatch_events_accepted_total") == len(sent)
    assert value(m, "agentwatch_events_duplicate_total") == 10
    assert value(m, "agentwatch_ingest_rejected_requests_total", code="422") == 2
    assert value(m, "agentwatch_events_rejected_total") == 2  # events[1] and events[2]
    assert value(m, "agentwatch_batch_commit_seconds_count") >= 2
    assert value(m, "agentwatch_live_clients") == 0
    assert value(m, "agentwatch_ingest_queue_depth") == 0


def test_cardinality_guard_counts_the_rest_as_other(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory(None, "--metrics-max-series", "3").start()
    evs = [ev(model=f"m-{i}", cost_usd=1.0) for i in range(10)]
    evs += [ev(kind="task", task_name=f"run-{uuid.uuid4()}", model="") for _ in range(8)]
    assert post(srv.url, evs).status_code == 200
    m = scrape(srv.url)
    series = {ls for (n, ls) in m if n == "agentwatch_llm_cost_usd_total"}
    assert len(series) == 4  # three let through, and other
    assert value(m, "agentwatch_llm_cost_usd_total", agent_name="other", model="other") == 7.0
    assert total(m, "agentwatch_llm_cost_usd_total") == 10.0  # nothing lost
    assert total(m, "agentwatch_llm_requests_total") == 10
    runs = {ls for (n, ls) in m if n == "agentwatch_task_runs_total"}
    assert len(runs) == 4
    assert total(m, "agentwatch_task_runs_total") == 8
    assert value(m, "agentwatch_metrics_overflow_events_total") == 7 + 5


def test_grafana_dashboard_loads_and_names_real_metrics(server: ServerProcess) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and dash["panels"]
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for want in ("cost", "requests", "error rate", "p95"):
        assert want in titles, want
    post(server.url, known_events())
    exposed = {n for n, _ in scrape(server.url)}
    # Families without samples yet (no refusal so far) are declared all the same.
    text = httpx.get(server.url + "/metrics").text
    for fam in text_string_to_metric_families(text):
        suffixes = ("_total",) if fam.type == "counter" else ("_bucket", "_count", "_sum", "")
        exposed |= {fam.name + x for x in suffixes}
    families = exposed
    for p in dash["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
        for t in p["targets"]:
            for name in re.findall(r"agentwatch_[a-z_]+", t["expr"]):
                assert name in exposed or name in families, (p["title"], name)


def test_metrics_needs_a_read_key(tmp_path: Path) -> None:
    db = str(tmp_path / "keyed.db")
    ingest = create_key(db, "ingest", "sdk")
    read = create_key(db, "read", "prometheus")
    srv = ServerProcess(db).start()
    try:
        assert httpx.get(srv.url + "/metrics").status_code == 401
        r = httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {ingest}"})
        assert r.status_code == 403
        # A batch refused for its key counts as refused.
        assert httpx.post(srv.url + "/api/events", json={"events": [ev()]}).status_code == 401
        m = scrape(srv.url, read)
        assert value(m, "agentwatch_ingest_rejected_requests_total", code="401") == 1
    finally:
        srv.stop()


# ---------------------------------------------------------------- a real Prometheus


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("prometheus did not listen")


def _query(prom: str, expr: str) -> dict[str, Any]:
    r = httpx.get(prom + "/api/v1/query", params={"query": expr}, timeout=10)
    body: dict[str, Any] = r.json()
    return body


def test_real_prometheus_scrapes_with_a_key(tmp_path: Path) -> None:
    need(Path(PROMETHEUS).exists(), "prometheus not installed (apt-get install -y prometheus)")
    db = str(tmp_path / "scraped.db")
    read = create_key(db, "read", "prometheus")
    ingest = create_key(db, "ingest", "sdk")
    srv = ServerProcess(db).start()
    port = free_port()
    key_file = tmp_path / "key"
    key_file.write_text(read)
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: agentwatch\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        "      type: Bearer\n"
        f"      credentials_file: {key_file}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{srv.port}']\n"
    )
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    prom = f"http://127.0.0.1:{port}"
    try:
        _wait_port(port, proc)
        sent = known_events()
        r = httpx.post(
            srv.url + "/api/events",
            json={"events": sent},
            headers={"Authorization": f"Bearer {ingest}"},
        )
        assert r.status_code == 200
        stored = httpx.get(
            srv.url + "/api/events?limit=1000", headers={"Authorization": f"Bearer {read}"}
        ).json()["events"]
        want = sum(e["cost_usd"] for e in stored if e["kind"] == "llm")
        got = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            res = _query(prom, "sum(agentwatch_llm_cost_usd_total)")["data"]["result"]
            if res:
                got = float(res[0]["value"][1])
                if got == pytest.approx(want):
                    break
            time.sleep(0.5)
        assert got == pytest.approx(want), (got, want, (tmp_path / "prometheus.log").read_text())
        up = _query(prom, 'up{job="agentwatch"}')["data"]["result"]
        assert up and up[0]["value"][1] == "1"
        # Every query of the Grafana dashboard is valid PromQL for this Prometheus.
        dash = json.loads(DASHBOARD.read_text())
        for p in dash["panels"]:
            for t in p["targets"]:
                expr = (
                    t["expr"]
                    .replace("$__rate_interval", "1m")
                    .replace("$__range", "1h")
                    .replace("$agent", ".*")
                )
                body = _query(prom, expr)
                assert body["status"] == "success", (p["title"], body)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        srv.stop()
