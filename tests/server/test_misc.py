"""Health, OpenAPI docs, CORS, the dashboard route, and the configuration doc."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from agentwatch._version import __version__
from agentwatch.server.settings import SETTINGS
from tests.conftest import ServerProcess
from tests.server.test_ingest import ev, post

ROOT = Path(__file__).resolve().parents[2]


def test_health(server: ServerProcess, backend: str) -> None:
    assert post(server.url, [ev(), ev()]).status_code == 200
    h = httpx.get(server.url + "/api/health").json()
    assert h["status"] == "ok" and h["version"] == __version__
    assert h["backend"] == backend and h["events"] == 2


def test_openapi_docs(server: ServerProcess) -> None:
    page = httpx.get(server.url + "/docs").text
    assert "swagger" in page.lower()
    # Every asset the page loads is served by us: the API page works offline.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
    assert assets
    for a in assets:
        assert a.startswith("/"), a
        assert httpx.get(server.url + a).status_code == 200, a
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in (
        "/api/events",
        "/api/metrics/summary",
        "/api/metrics/timeseries",
        "/api/metrics/breakdown",
        "/api/stream",
        "/api/health",
    ):
        assert path in spec["paths"], path
    assert "Event" in spec["components"]["schemas"]


def test_cors_preflight_and_headers(server: ServerProcess) -> None:
    r = httpx.options(
        server.url + "/api/events",
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "http://example.test")
    r = httpx.get(server.url + "/api/health", headers={"Origin": "http://example.test"})
    assert r.headers["access-control-allow-origin"] == "*"


def test_cors_origins_configurable(server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--cors-origins", "http://good.test").start()
    ok = httpx.get(srv.url + "/api/health", headers={"Origin": "http://good.test"})
    assert ok.headers["access-control-allow-origin"] == "http://good.test"
    bad = httpx.get(srv.url + "/api/health", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in bad.headers


def test_dashboard_served_at_root(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "AgentWatch" in r.text


# Variables the test suite reads, documented with the settings.
TEST_SWITCHES = ("AGENTWATCH_STRICT", "AGENTWATCH_REQUIRE_ALL", "AGENTWATCH_HYPOTHESIS_EXAMPLES")


def test_every_setting_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for s in SETTINGS:
        assert s.flag in doc, s.flag
        assert s.env in doc, s.env
    documented = set(re.findall(r"AGENTWATCH_[A-Z_]+", doc))
    server_envs = {s.env for s in SETTINGS}
    sdk_doc = (ROOT / "docs" / "sdk.md").read_text() if (ROOT / "docs" / "sdk.md").exists() else ""
    for env in documented - server_envs:
        assert env in sdk_doc or env in TEST_SWITCHES, env
