"""Access control in a real Chromium (issues 11 and 17).

- The dashboard and /docs under the Content-Security-Policy: no violations,
  no console errors (the `page` fixture fails on any).
- Signing in with keys on: the form, a wrong key, an ingest key, a read key;
  the live feed signed in; the cookie's attributes; signing out; a revoked key.
- Attacks from another site (attacker.test) and through DNS rebinding
  (rebind.test), both resolved to 127.0.0.1 by Chromium's own resolver
  (--host-resolver-rules), so the browser applies its real origin, CORS and
  cookie rules: nothing is stored, nothing is readable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.browser.conftest import CHROMIUM_ARGS, DESKTOP, _watch
from tests.browser.test_dashboard import llm_event, open_dashboard
from tests.conftest import CHROMIUM, ServerProcess, free_port
from tests.server.test_auth import bearer, create_key, keys_cli, wait_for

pytestmark = pytest.mark.browser

# Collects CSP violations the page reports (some are not console errors).
CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def post(url: str, key: str | None, *events: dict[str, Any]) -> None:
    r = httpx.post(
        url + "/api/events", json={"events": list(events)}, headers=bearer(key), timeout=10
    )
    assert r.status_code == 200, r.text


def count(url: str, key: str | None = None) -> int:
    r = httpx.get(url + "/api/events", params={"limit": 1000}, headers=bearer(key), timeout=10)
    assert r.status_code == 200, r.text
    return len(r.json()["events"])


# ---------------------------------------------------------------- CSP


def test_dashboard_and_docs_work_under_the_csp(page: Any, server: ServerProcess) -> None:
    page.add_init_script(CSP_WATCH)
    post(server.url, None, llm_event(), llm_event(agent_name="second-agent", status="error"))
    open_dashboard(page, server)
    page.wait_for_selector("#conn[data-state='connected']")
    assert page.locator("#feed li").count() == 2
    assert page.locator("#cost-chart").bounding_box()["height"] > 50
    assert page.evaluate("window.__csp") == []
    csp = page.evaluate("fetch('/').then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self';" in csp

    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/events" in p for p in paths)
    assert page.locator("button.authorize").count() == 1  # the bearer scheme is documented
    assert page.evaluate("window.__csp") == []


# ---------------------------------------------------------------- signing in


@pytest.fixture
def keyed(
    server_factory: type[ServerProcess], db_url: str
) -> tuple[ServerProcess, dict[str, str], str]:
    keys = {s: create_key(db_url, s, f"ui-{s}") for s in ("ingest", "read")}
    srv = server_factory().start()
    post(srv.url, keys["ingest"], llm_event(agent_name="before-sign-in"))
    return srv, keys, db_url


def submit_key(page: Any, key: str) -> None:
    page.fill("#signin-key", key)
    page.click(".signin-submit")


def sign_in(page: Any, url: str, key: str, ready: str = "true") -> None:
    """Open the dashboard, meet the form, sign in, wait for the data."""
    page.goto(url + "/")
    page.wait_for_selector("#signin[open]")
    submit_key(page, key)
    page.wait_for_selector(f'html[data-ready="{ready}"]')


def _only_auth_refusals(page: Any, statuses: tuple[int, ...]) -> None:
    """Chromium logs each refused fetch as a console error; accept those, and
    only those, for the attempts the test makes on purpose."""
    w = page.watch
    marks = tuple(f"status of {s}" for s in statuses)
    unexpected = [e for e in w.console_errors if not any(m in e for m in marks)]
    assert not unexpected, unexpected
    w.console_errors.clear()


def test_sign_in_live_feed_and_sign_out(
    page: Any, keyed: tuple[ServerProcess, dict[str, str], str]
) -> None:
    srv, keys, _ = keyed
    page.goto(srv.url + "/")
    page.wait_for_selector("#signin[open]")
    assert page.evaluate("document.documentElement.dataset.auth") == "required"
    assert page.locator("#signin-lead").inner_text().startswith("This server requires an API key")
    # Nothing but the session check was asked for before signing in.
    api_calls = [u for u in page.watch.requests if "/api/" in u]
    assert all(u.endswith("/api/session") for u in api_calls), api_calls

    submit_key(page, keys["read"] + "x")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "not accepted" in page.locator("#signin-error").inner_text()
    submit_key(page, keys["ingest"])
    # (a locator, not wait_for_function: the page's CSP forbids evaluating strings)
    page.locator("#signin-error", has_text="ingest key").wait_for()
    _only_auth_refusals(page, (401, 403))

    submit_key(page, keys["read"])
    page.wait_for_selector('html[data-ready="true"]')
    assert not page.locator("#signin").evaluate("d => d.open")
    assert page.locator("#feed li").count() == 1
    page.wait_for_selector("#conn[data-state='connected']")
    ev = llm_event(task_name="seen-signed-in")
    post(srv.url, keys["ingest"], ev)
    page.wait_for_selector(f"#feed li[data-id='{ev['id']}']", timeout=5_000)

    # The key lives in an HttpOnly, SameSite=Strict session cookie only.
    [cookie] = [c for c in page.context.cookies() if c["name"] == "agentwatch_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["expires"] == -1  # gone when the browser closes
    assert "agentwatch_session" not in page.evaluate("document.cookie")
    storage = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert keys["read"] not in storage
    assert not [u for u in page.watch.requests if keys["read"] in u or "agentwatch_" in u]

    assert page.locator("#signout").is_visible()
    page.click("#signout")
    page.wait_for_selector("#signin[open]")
    assert not [c for c in page.context.cookies() if c["name"] == "agentwatch_session"]
    page.reload()
    page.wait_for_selector("#signin[open]")


def test_a_revoked_key_asks_to_sign_in_again(
    page: Any, keyed: tuple[ServerProcess, dict[str, str], str]
) -> None:
    srv, keys, db = keyed
    sign_in(page, srv.url, keys["read"])
    keys_cli(db, "revoke", "ui-read")
    wait_for(
        lambda: (
            httpx.get(
                srv.url + "/api/events", cookies={"agentwatch_session": keys["read"]}
            ).status_code
            == 401
        )
    )
    page.watch.allow_network_errors = True  # the stream is refused too
    page.evaluate("window.agentwatch.refresh()")
    page.wait_for_selector("#signin[open]")
    assert "session has ended" in page.locator("#signin-lead").inner_text()
    _only_auth_refusals(page, (401,))


def test_protected_mode_explains_itself_to_a_remote_browser(
    page: Any, server: ServerProcess
) -> None:
    """A browser behind a proxy on this machine that names the real client
    (X-Forwarded-For, which uvicorn trusts from 127.0.0.1): not loopback, so
    the page shell loads and says how to get in instead of failing."""
    page.set_extra_http_headers({"X-Forwarded-For": "203.0.113.7"})
    page.goto(server.url + "/")
    page.wait_for_selector("#signin[open]")
    assert page.evaluate("document.documentElement.dataset.auth") == "protected"
    assert "no API keys yet" in page.locator("#signin-lead").inner_text()
    assert "agentwatch keys create" in page.locator("#signin").inner_text()


# ---------------------------------------------------------------- attacks from other sites


ATTACKER = "attacker.test"
REBIND = "rebind.test"


@pytest.fixture(scope="module")
def resolving_browser(browser: Any) -> Iterator[Any]:
    """Chromium whose resolver maps the attacker's names to 127.0.0.1."""
    rules = f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1, MAP {REBIND} 127.0.0.1"
    b = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules])
    yield b
    b.close()


class Attacker:
    """A web site on its own origin (http://attacker.test:PORT) serving pages."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not found").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.origin = f"http://{ATTACKER}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    a = Attacker()
    yield a
    a.close()


@pytest.fixture
def victim(resolving_browser: Any) -> Iterator[Any]:
    """A page of the attacker's browser tab (its console errors are expected:
    CORS refusals are the point)."""
    ctx = resolving_browser.new_context(viewport=DESKTOP)
    p = ctx.new_page()
    p.set_default_timeout(10_000)
    p.watch = _watch(p)
    yield p
    ctx.close()
    assert not p.watch.page_errors, p.watch.page_errors


def _form(target: str) -> str:
    # The classic: a text/plain form whose one field spells out a JSON body
    # ('{"events":[...],"x":"' + '=' + '"}'), submitted without any script
    # being able to stop it, no preflight involved.
    name = (
        '{"events":[{"agent_name":"csrf-form","task_name":"t","model":"gpt-4o",'
        '"input_tokens":1,"output_tokens":1,"latency_ms":1}],"x":"'
    )
    return (
        "<!doctype html><body>"
        f'<form id="f" method="POST" action="{target}/api/events" enctype="text/plain">'
        f"<input name='{name}' value='\"}}'></form>"
        "<script>document.getElementById('f').submit()</script></body>"
    )


def _try(page: Any, script: str) -> str:
    return str(
        page.evaluate(
            f"async () => {{ try {{ {script} }} catch (e) {{ return 'blocked: ' + e.name; }} }}"
        )
    )


EVENT_JSON = (
    'JSON.stringify({events: [{agent_name: "csrf-fetch", task_name: "t", model: "gpt-4o",'
    " input_tokens: 1, output_tokens: 1, latency_ms: 1}]})"
)


def test_another_site_can_neither_write_nor_read(
    victim: Any, attacker: Attacker, server: ServerProcess
) -> None:
    target = server.url  # http://127.0.0.1:PORT, loopback, no key: the quick start
    attacker.pages["/form"] = _form(target)
    attacker.pages["/"] = "<!doctype html><title>innocent</title>"

    # 1. The HTML form (enctype=text/plain): the server refuses the body.
    with victim.expect_navigation():
        victim.goto(attacker.origin + "/form")
    assert victim.url.startswith(target)
    assert "application/json" in victim.locator("body").inner_text()  # the 415 detail
    assert count(target) == 0

    victim.goto(attacker.origin + "/")
    # 2. A text/plain fetch is a "simple" request: it is sent without a
    # preflight, refused by the server (415), and even that answer is withheld
    # from the page (Cross-Origin-Resource-Policy: same-origin).
    r = _try(
        victim,
        f"await fetch('{target}/api/events', {{method: 'POST', mode: 'no-cors',"
        f" headers: {{'Content-Type': 'text/plain'}}, body: {EVENT_JSON}}}); return 'sent';",
    )
    assert r == "blocked: TypeError"
    # 3. A JSON fetch needs a preflight, which gets no CORS approval: never sent.
    r = _try(
        victim,
        f"await fetch('{target}/api/events', {{method: 'POST',"
        f" headers: {{'Content-Type': 'application/json'}}, body: {EVENT_JSON}}}); return 'sent';",
    )
    assert r == "blocked: TypeError"
    # 4. Reading: CORS is closed by default.
    r = _try(victim, f"const resp = await fetch('{target}/api/events'); return await resp.text();")
    assert r == "blocked: TypeError"
    r = _try(
        victim,
        f"const resp = await fetch('{target}/api/metrics/summary'); return await resp.text();",
    )
    assert r == "blocked: TypeError"
    assert count(target) == 0


def test_cors_origins_opens_reads_to_one_site_only(
    victim: Any, attacker: Attacker, server_factory: type[ServerProcess]
) -> None:
    srv = server_factory(None, "--cors-origins", attacker.origin).start()
    post(srv.url, None, llm_event(agent_name="shared"))
    attacker.pages["/"] = "<!doctype html><title>partner</title>"
    victim.goto(attacker.origin + "/")
    r = _try(
        victim,
        f"const resp = await fetch('{srv.url}/api/events');"
        " return (await resp.json()).events[0].agent_name;",
    )
    assert r == "shared"
    # Still JSON only: the allowed origin's text/plain write is refused too.
    _try(
        victim,
        f"await fetch('{srv.url}/api/events', {{method: 'POST', mode: 'no-cors',"
        f" headers: {{'Content-Type': 'text/plain'}}, body: {EVENT_JSON}}});",
    )
    assert count(srv.url) == 1


def test_a_signed_in_admin_is_not_used_by_another_site(
    victim: Any, attacker: Attacker, server_factory: type[ServerProcess], db_url: str
) -> None:
    """The victim signed in to the dashboard with an admin key, in the same
    browser: the attacker's form and fetches still store nothing (SameSite
    keeps the cookie home; the body type and the missing header are refused)."""
    admin = create_key(db_url, "admin", "victim-admin")
    srv = server_factory().start()
    sign_in(victim, srv.url, admin, ready="empty")  # signed in; no events yet
    # The dashboard itself, signed in, could write (it sends the header):
    same = _try(
        victim,
        f"const r = await fetch('/api/events', {{method: 'POST', headers: {{'Content-Type':"
        f" 'application/json', 'X-Requested-With': 'AgentWatch'}}, body: {EVENT_JSON}}});"
        " return r.status;",
    )
    assert same == "200"
    assert count(srv.url, admin) == 1

    attacker.pages["/form"] = _form(srv.url)
    with victim.expect_navigation():
        victim.goto(attacker.origin + "/form")
    attacker.pages["/"] = "<!doctype html>"
    victim.goto(attacker.origin + "/")
    _try(
        victim,
        f"await fetch('{srv.url}/api/events', {{method: 'POST', mode: 'no-cors',"
        " credentials: 'include',"
        f" headers: {{'Content-Type': 'text/plain'}}, body: {EVENT_JSON}}});",
    )
    r = _try(
        victim,
        f"const resp = await fetch('{srv.url}/api/events', {{credentials: 'include'}});"
        " return await resp.text();",
    )
    assert r == "blocked: TypeError"
    assert count(srv.url, admin) == 1


def test_dns_rebinding_reaches_nothing(victim: Any, server: ServerProcess) -> None:
    """rebind.test resolves to the server: the page's origin is rebind.test,
    same-origin with the server as far as the browser knows, so only the
    server's Host check stands between it and the data."""
    post(server.url, None, llm_event(agent_name="private"))
    origin = f"http://{REBIND}:{server.port}"
    resp = victim.goto(origin + "/")
    assert resp.status == 400
    assert "DNS rebinding" in victim.locator("body").inner_text()
    r = _try(
        victim,
        "const resp = await fetch('/api/events'); return resp.status + ' ' + await resp.text();",
    )
    assert r.startswith("400 ") and "private" not in r
    r = _try(
        victim,
        f"const resp = await fetch('/api/events', {{method: 'POST', headers: {{'Content-Type':"
        f" 'application/json'}}, body: {EVENT_JSON}}}); return String(resp.status);",
    )
    assert r == "400"
    r = _try(victim, "const resp = await fetch('/api/stream'); return String(resp.status);")
    assert r == "400"
    assert count(server.url) == 1
