"""What a web page could do to the server (issues 11 and 17): security headers,
JSON-only bodies, and the Host check that stops DNS rebinding while no key
protects the server. Real servers, both backends; the browser's own view is
in tests/browser/test_auth.py."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.server.test_auth import bearer, create_key, stored, wait_for
from tests.server.test_ingest import ev


def test_security_headers_on_every_kind_of_response(server: ServerProcess) -> None:
    for path in ("/", "/js/main.js", "/api/events", "/api/health", "/api/nothing", "/openapi.json"):
        r = httpx.get(server.url + path)
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", path
        assert h["referrer-policy"] == "no-referrer", path
        assert h["x-frame-options"] == "DENY", path
        csp = h["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert csp.count("content-security-policy") == 0
    refused = httpx.post(
        server.url + "/api/events", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert refused.status_code == 415 and refused.headers["x-content-type-options"] == "nosniff"


def test_docs_page_allows_exactly_its_inline_script(server: ServerProcess) -> None:
    import base64
    import hashlib
    import re

    r = httpx.get(server.url + "/docs")
    csp = r.headers["content-security-policy"]
    assert len(r.headers.get_list("content-security-policy")) == 1
    [script] = re.findall(r"<script>(.*?)</script>", r.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in csp
    assert "unsafe-inline" not in csp
    assert '"validatorUrl": null' in script  # no badge fetched from the internet


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",  # what an HTML form with enctype=text/plain sends
        "text/plain;charset=UTF-8",  # what fetch() with a string body sends
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
        "application/xml",
    ],
)
def test_ingest_takes_json_only(server: ServerProcess, ctype: str | None) -> None:
    body = b'{"events": [{"agent_name": "form", "task_name": "t", "model": "gpt-4o"}]}'
    headers = {"content-type": ctype} if ctype else {}
    r = httpx.post(server.url + "/api/events", content=body, headers=headers)
    assert r.status_code == 415, r.text
    detail = r.json()["detail"]
    assert "application/json" in detail and ("got none" if ctype is None else repr(ctype)) in detail
    assert stored(server.url) == []


def test_json_with_a_charset_is_json(server: ServerProcess) -> None:
    r = httpx.post(
        server.url + "/api/events",
        content=b'{"events": [{"agent_name": "a", "task_name": "t", "model": "gpt-4o"}]}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200 and r.json()["count"] == 1


def _host(
    url: str, host: str, method: str = "GET", path: str = "/api/events", **kw: object
) -> httpx.Response:
    return httpx.request(method, url + path, headers={"Host": host, **kw.pop("headers", {})}, **kw)  # type: ignore[arg-type]


def test_foreign_host_is_refused_while_no_key_exists(server: ServerProcess) -> None:
    """A DNS-rebinding page (attacker.example resolving to 127.0.0.1) reads
    nothing and writes nothing; the server's own names still work."""
    port = server.port
    for host in (
        f"attacker.example:{port}",
        "attacker.example",
        f"localhost.attacker.example:{port}",
    ):
        r = _host(server.url, host)
        assert r.status_code == 400, host
        detail = r.json()["detail"]
        assert "Host" in detail and "--allowed-hosts" in detail and "DNS rebinding" in detail
        w = _host(server.url, host, "POST", json={"events": [ev()]})
        assert w.status_code == 400
        for path in ("/", "/api/health", "/api/stream"):
            assert _host(server.url, host, path=path).status_code == 400, path
    assert stored(server.url) == []
    own = socket.gethostname()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                 f"app.localhost:{port}", f"{own}:{port}", "10.1.2.3", "localhost."):  # fmt: skip
        assert _host(server.url, host).status_code == 200, host


def test_allowed_hosts_setting(server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--allowed-hosts", "agentwatch.internal, *.corp.example").start()
    for host in (
        "agentwatch.internal",
        "agentwatch.internal:8787",
        "a.corp.example",
        "x.y.corp.example",
    ):
        assert _host(srv.url, host).status_code == 200, host
    for host in ("corp.example.evil", "evilcorp.example", "agentwatch.internal.evil"):
        assert _host(srv.url, host).status_code == 400, host
    anyhost = server_factory(None, "--allowed-hosts", "*").start()
    assert _host(anyhost.url, "whatever.example").status_code == 200


def test_auth_off_still_checks_the_host(server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--auth", "off").start()
    assert _host(srv.url, "attacker.example").status_code == 400
    assert _host(srv.url, "localhost").status_code == 200


def test_with_keys_any_host_is_served_to_a_key(
    server_factory: type[ServerProcess], db_url: str
) -> None:
    """Behind a proxy with its own name: once keys exist, the key is the
    protection, so the Host check no longer applies."""
    srv = server_factory().start()
    key = create_key(db_url, "read", "proxy")
    wait_for(lambda: httpx.get(srv.url + "/api/events").status_code == 401)
    assert _host(srv.url, "agentwatch.example.com").status_code == 401
    assert _host(srv.url, "agentwatch.example.com", headers=bearer(key)).status_code == 200
