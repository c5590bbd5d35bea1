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


def preflight(url: str, origin: str, headers: str = "content-type") -> httpx.Response:
    return httpx.options(
        url + "/api/events",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_cors_closed_by_default(server: ServerProcess) -> None:
    """No page of another origin may read the API unless --cors-origins says so
    (issue 11): neither a preflight nor a plain request gets an allow-origin."""
    r = preflight(server.url, "http://example.test")
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(server.url + "/api/health", headers={"Origin": "http://example.test"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_origins_configurable(server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--cors-origins", "http://good.test").start()
    ok = httpx.get(srv.url + "/api/health", headers={"Origin": "http://good.test"})
    assert ok.headers["access-control-allow-origin"] == "http://good.test"
    bad = httpx.get(srv.url + "/api/health", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in bad.headers
    pre = preflight(srv.url, "http://good.test", "content-type, authorization")
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "http://good.test"


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
