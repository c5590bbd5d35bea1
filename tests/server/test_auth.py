"""API keys and scopes against real servers, the real CLI, on SQLite and PostgreSQL.

Every route the app has (read from the app itself, so routes added later are
covered by the same matrix) is tried with no key, a bogus key and a key of
each scope. Keys are created and revoked with `agentwatch keys` while servers
run; the database is searched for the secrets afterwards.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentwatch.server.auth import KEY_PATTERN, PUBLIC, SCOPE_FIELD
from tests.conftest import BACKENDS, ServerProcess, backend_db
from tests.server.test_ingest import ev

# ---------------------------------------------------------------- helpers


def keys_cli(db: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`agentwatch keys ARGS --db DB` as a user runs it."""
    r = subprocess.run(
        [sys.executable, "-m", "agentwatch", "keys", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


def create_key(db: str, scope: str, name: str) -> str:
    out = keys_cli(db, "create", "--scope", scope, "--name", name).stdout
    return out.rstrip("\n").splitlines()[-1]


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until cond() held; fails after `timeout`."""
    t0 = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)


def stored(url: str, key: str | None = None, **params: object) -> list[dict[str, Any]]:
    r = httpx.get(url + "/api/events", params={"limit": 1000, **params}, headers=bearer(key))
    assert r.status_code == 200, r.text
    return r.json()["events"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the app's routes


def _walk(routes: list[Any], out: list[tuple[str, str, str]]) -> None:
    """Routes outside the OpenAPI schema (pages), through included routers."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            _walk(inner.routes, out)
        elif getattr(r, "include_in_schema", True) is False or type(r).__name__ == "Route":
            for m in sorted(getattr(r, "methods", None) or ()):
                if m != "HEAD":
                    out.append((m, r.path, "?"))


def app_routes() -> list[tuple[str, str, str]]:
    """(method, path, declared scope) of every route of a real app."""
    from agentwatch.server.app import create_app
    from agentwatch.server.settings import Settings
    from agentwatch.store import open_store

    d = tempfile.mkdtemp()
    store = open_store(str(Path(d) / "routes.db"), maintenance=False)
    try:
        app = create_app(Settings(), store)
        spec = app.openapi()
        out = [
            (m.upper(), path, op[SCOPE_FIELD])
            for path, ops in spec["paths"].items()
            for m, op in ops.items()
        ]
        _walk(app.router.routes, out)
    finally:
        store.close()
    return out


ROUTES = app_routes()

# The rule for the routes of today. A route added later is checked against
# what it declares (x-agentwatch-scope, or GET = read, POST = ingest, other
# methods = admin), so it is covered without editing this table.
EXPECTED = {
    ("POST", "/api/events"): "ingest",
    ("GET", "/api/events"): "read",
    ("GET", "/api/metrics/summary"): "read",
    ("GET", "/api/metrics/timeseries"): "read",
    ("GET", "/api/metrics/breakdown"): "read",
    ("GET", "/api/stream"): "read",
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/session"): PUBLIC,
    ("POST", "/api/session"): PUBLIC,
    ("DELETE", "/api/session"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
}
GRANTS = {"ingest": {"ingest"}, "read": {"read"}, "admin": {"ingest", "read", "admin"}}


def expected_scope(method: str, path: str, declared: str) -> str:
    if (method, path) in EXPECTED:
        return EXPECTED[(method, path)]
    if declared != "?":
        return declared
    return {"GET": "read", "POST": "ingest"}.get(method, "admin")


def test_the_route_table_is_what_the_app_has() -> None:
    have = {(m, p) for m, p, _ in ROUTES}
    assert set(EXPECTED) <= have, set(EXPECTED) - have
    for m, p, declared in ROUTES:
        if declared != "?" and (m, p) in EXPECTED:
            assert declared == EXPECTED[(m, p)], (m, p)


class Keyed:
    """A running server on a store holding one key of each scope."""

    def __init__(self, srv: ServerProcess, db: str, keys: dict[str, str]) -> None:
        self.srv, self.db, self.keys = srv, db, keys
        self.url = srv.url


@pytest.fixture(scope="module", params=BACKENDS)
def keyed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keyed]:
    d = tmp_path_factory.mktemp("keyed")
    with backend_db(request.param, d) as db:
        keys = {s: create_key(db, s, f"k-{s}") for s in ("ingest", "read", "admin")}
        srv = ServerProcess(db, log_dir=d).start()
        try:
            yield Keyed(srv, db, keys)
        finally:
            srv.stop()


def call(url: str, method: str, path: str, headers: dict[str, str], key: str) -> httpx.Response:
    """One request to a route, with a body that route can take (`key`: a
    read key, for the sign-in route's body)."""
    path = re.sub(r"\{[^}]+\}", "x", path)
    body: Any = None
    if (method, path) == ("POST", "/api/events"):
        body = {"events": [ev()]}
    elif (method, path) == ("POST", "/api/session"):
        body = {"key": key}
        headers = {**headers, "X-Requested-With": "test"}
    elif method in ("POST", "PUT", "PATCH"):
        body = {}
    with httpx.Client(timeout=10) as c:
        if path == "/api/stream":
            with c.stream(method, url + path, headers=headers) as r:
                if r.status_code != 200:
                    r.read()
                return r  # a live stream never ends: its status and headers are enough
        return c.request(method, url + path, json=body, headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "declared"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_every_route_against_every_scope(
    keyed: Keyed, method: str, path: str, declared: str
) -> None:
    need = expected_scope(method, path, declared)
    creds: dict[str, str | None] = {
        "none": None,
        "bogus": "agentwatch_AAAAAAAAAAAA_" + "B" * 40,
        **keyed.keys,
    }
    for cred, key in creds.items():
        r = call(keyed.url, method, path, bearer(key), keyed.keys["read"])
        what = f"{method} {path} with {cred} key: {r.status_code}"
        if need == PUBLIC or (key is not None and cred in GRANTS and need in GRANTS[cred]):
            assert r.status_code not in (401, 403), what + " " + r.text
            continue
        if cred in ("none", "bogus"):
            assert r.status_code == 401, what
            assert r.headers["www-authenticate"].startswith("Bearer")
            detail = r.json()["detail"]
            if cred == "none":
                assert "Authorization: Bearer" in detail and "agentwatch keys create" in detail
            else:
                assert "not valid" in detail
        else:
            assert r.status_code == 403, what
            detail = r.json()["detail"]
            assert f"has scope '{cred}'" in detail and need in detail, detail


def test_allowed_keys_really_work(keyed: Keyed) -> None:
    """The values behind the matrix: what an ingest key sends, a read key sees."""
    e = ev(agent_name="matrix-check")
    r = httpx.post(
        keyed.url + "/api/events", json={"events": [e]}, headers=bearer(keyed.keys["ingest"])
    )
    assert r.json() == {"status": "ok", "count": 1}
    got = stored(keyed.url, keyed.keys["read"], agent_name="matrix-check")
    assert [g["id"] for g in got] == [e["id"]]
    s = httpx.get(keyed.url + "/api/metrics/summary", headers=bearer(keyed.keys["admin"]))
    assert s.status_code == 200 and s.json()["total_requests"] >= 1
    # A read key cannot write, an ingest key cannot read: nothing changed.
    denied = httpx.post(
        keyed.url + "/api/events",
        json={"events": [ev(agent_name="matrix-check")]},
        headers=bearer(keyed.keys["read"]),
    )
    assert denied.status_code == 403
    assert (
        httpx.get(keyed.url + "/api/events", headers=bearer(keyed.keys["ingest"])).status_code
        == 403
    )
    assert len(stored(keyed.url, keyed.keys["read"], agent_name="matrix-check")) == 1


def test_other_schemes_and_malformed_headers(keyed: Keyed) -> None:
    url = keyed.url + "/api/events"
    basic = httpx.get(url, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]
    for bad in ("Bearer", "Bearer short", "bearer " + keyed.keys["read"][:-1]):
        assert httpx.get(url, headers={"Authorization": bad}).status_code == 401, bad
    # The scheme is case-insensitive (RFC 7235).
    ok = httpx.get(url, headers={"Authorization": "bearer " + keyed.keys["read"]})
    assert ok.status_code == 200
    # A key pasted with its line break still fails cleanly, never a 500.
    r = httpx.get(url, headers={"Authorization": "Bearer " + keyed.keys["read"] + " extra"})
    assert r.status_code == 401


# ---------------------------------------------------------------- protected mode


def test_protected_mode_serves_loopback_without_a_key(server: ServerProcess) -> None:
    assert httpx.post(server.url + "/api/events", json={"events": [ev()]}).status_code == 200
    assert len(stored(server.url)) == 1
    info = httpx.get(server.url + "/api/session").json()
    assert info == {
        "auth": "protected",
        "required": False,
        "local": True,
        "signed_in": False,
        "name": None,
        "scope": None,
    }
    assert "protected mode" in server.log()


def test_keys_created_and_revoked_while_serving_reach_every_server(
    server_factory: type[ServerProcess], db_url: str
) -> None:
    """Two servers on one database: a key made by the CLI works on both within
    5 s, and the protected default closes; a revoked key stops working on both."""
    servers = [server_factory().start(), server_factory().start()]
    for s in servers:
        assert httpx.get(s.url + "/api/events").status_code == 200  # loopback, no key yet

    first = create_key(db_url, "read", "first")
    t0 = time.monotonic()
    for s in servers:
        wait_for(lambda s=s: httpx.get(s.url + "/api/events").status_code == 401)
        wait_for(
            lambda s=s: httpx.get(s.url + "/api/events", headers=bearer(first)).status_code == 200
        )
    took = time.monotonic() - t0
    assert took < 5, took
    second = create_key(db_url, "read", "second")

    revoked = keys_cli(db_url, "revoke", "first")
    assert "revoked key 'first'" in revoked.stdout
    t0 = time.monotonic()
    for s in servers:
        wait_for(
            lambda s=s: httpx.get(s.url + "/api/events", headers=bearer(first)).status_code == 401
        )
    assert time.monotonic() - t0 < 5
    for s in servers:
        assert httpx.get(s.url + "/api/events", headers=bearer(second)).status_code == 200

    # Revoking the last key returns to protected mode: loopback is served again.
    out = keys_cli(db_url, "revoke", "second").stdout
    assert "back in protected mode" in out
    for s in servers:
        wait_for(lambda s=s: httpx.get(s.url + "/api/events").status_code == 200)
    assert "an API key exists now" in servers[0].log()


def test_auth_off_serves_everyone_and_warns(
    server_factory: type[ServerProcess], db_url: str
) -> None:
    create_key(db_url, "read", "ignored")
    srv = server_factory(None, "--auth", "off").start()
    assert httpx.get(srv.url + "/api/events").status_code == 200
    assert httpx.post(srv.url + "/api/events", json={"events": [ev()]}).status_code == 200
    assert "authentication is off" in srv.log()
    assert httpx.get(srv.url + "/api/session").json()["auth"] == "off"


def test_bad_auth_value_is_a_one_line_error(tmp_path: Path) -> None:
    from tests.conftest import free_port, serve_cmd

    r = subprocess.run(
        serve_cmd(free_port(), "--db", str(tmp_path / "a.db"), "--auth", "maybe"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip() == "agentwatch: error: --auth must be 'on' or 'off', not 'maybe'"


# ---------------------------------------------------------------- the CLI


def test_keys_cli_create_list_revoke(db_url: str, server_factory: type[ServerProcess]) -> None:
    r = keys_cli(db_url, "create", "--scope", "ingest", "--name", "prod-sdk")
    secret = r.stdout.strip()
    assert r.stdout == secret + "\n"  # alone, on the last (only) line of stdout
    assert re.fullmatch(KEY_PATTERN, secret), secret
    assert "shown only this once" in r.stderr
    other = create_key(db_url, "read", "dashboard")
    assert other != secret and other[:11] == secret[:11] == "agentwatch_"

    srv = server_factory().start()
    post = httpx.post(srv.url + "/api/events", json={"events": [ev()]}, headers=bearer(secret))
    assert post.status_code == 200

    def listed() -> dict[str, list[str]]:
        out = keys_cli(db_url, "list").stdout.splitlines()
        assert out[0].split() == ["NAME", "SCOPE", "ID", "CREATED", "LAST", "USED"]
        return {line.split()[0]: line.split() for line in out[1:]}

    # Last use reaches the table within a refresh (to the minute).
    wait_for(lambda: "never" not in listed()["prod-sdk"], timeout=10)
    rows = listed()
    assert rows["prod-sdk"][1] == "ingest" and rows["dashboard"][1] == "read"
    assert rows["dashboard"][-1] == "never"
    assert rows["prod-sdk"][2] == secret[: 11 + 12] + "_…"  # the public id, not the secret
    listing = keys_cli(db_url, "list").stdout
    assert secret not in listing and secret[24:] not in listing and other[24:] not in listing

    dup = keys_cli(db_url, "create", "--scope", "read", "--name", "dashboard", check=False)
    assert dup.returncode == 1 and "exists already" in dup.stderr
    assert dup.stdout == "" and dup.stderr.count("\n") == 1
    bad = keys_cli(db_url, "create", "--scope", "read", "--name", "no spaces", check=False)
    assert bad.returncode == 1 and "invalid key name" in bad.stderr
    scope = keys_cli(db_url, "create", "--scope", "root", "--name", "x", check=False)
    assert scope.returncode == 2 and "invalid choice" in scope.stderr
    gone = keys_cli(db_url, "revoke", "nobody", check=False)
    assert gone.returncode == 1 and "no key named 'nobody'" in gone.stderr

    keys_cli(db_url, "revoke", "prod-sdk")
    assert set(listed()) == {"dashboard"}
    wait_for(
        lambda: (
            httpx.post(
                srv.url + "/api/events", json={"events": [ev()]}, headers=bearer(secret)
            ).status_code
            == 401
        )
    )


def test_keys_cli_on_a_missing_sqlite_file(tmp_path: Path) -> None:
    for action in (("list",), ("revoke", "x")):
        r = keys_cli(str(tmp_path / "nope.db"), *action, check=False)
        assert r.returncode == 1 and "no such SQLite file" in r.stderr, r.stderr
        assert not (tmp_path / "nope.db").exists()
    empty = tmp_path / "empty.db"
    create_key(str(empty), "read", "first")  # create makes the store, like serve
    assert "first" in keys_cli(str(empty), "list").stdout


def test_no_secret_is_ever_stored(
    server_factory: type[ServerProcess], db_url: str, backend: str, tmp_path: Path
) -> None:
    """Keys created, used (last-used written), one revoked; then every byte of
    the SQLite file and its WAL, or every row of every PostgreSQL table, is
    searched for the secrets and their random parts."""
    from agentwatch.server.auth import hash_secret

    secrets = [create_key(db_url, s, f"key-{s}") for s in ("ingest", "read", "admin")]
    srv = server_factory().start()
    for k in secrets:
        httpx.get(srv.url + "/api/health", headers=bearer(k))
        httpx.get(srv.url + "/api/events", headers=bearer(k))
    session = httpx.post(
        srv.url + "/api/session",
        json={"key": secrets[1]},
        headers={"X-Requested-With": "test"},
    )
    assert session.status_code == 200
    wait_for(lambda: keys_cli(db_url, "list").stdout.count("never") == 0)
    keys_cli(db_url, "revoke", "key-admin")
    srv.stop()

    needles = [s.encode() for s in secrets] + [s[24:].encode() for s in secrets]
    if backend == "sqlite":
        files = [p for p in Path(db_url).parent.glob(Path(db_url).name + "*") if p.is_file()]
        blob = b"".join(p.read_bytes() for p in files)
    else:
        import psycopg

        with psycopg.connect(db_url) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            ]
            assert "api_keys" in tables
            blob = b"".join(
                str(row[0]).encode()
                for t in tables
                for row in conn.execute(f'SELECT t::text FROM "{t}" t').fetchall()
            )
    assert hash_secret(secrets[0]).encode() in blob  # we searched the right place
    for n in needles:
        assert n not in blob


# ---------------------------------------------------------------- the session cookie


def test_session_cookie_sign_in_stream_and_sign_out(keyed: Keyed) -> None:
    url = keyed.url
    xrw = {"X-Requested-With": "test"}
    # No header a cross-site form could send: refused before the key is looked at.
    r = httpx.post(url + "/api/session", json={"key": keyed.keys["read"]})
    assert r.status_code == 403 and "X-Requested-With" in r.json()["detail"]
    r = httpx.post(
        url + "/api/session", content=b'{"key": "x"}', headers={**xrw, "content-type": "text/plain"}
    )
    assert r.status_code == 415
    r = httpx.post(url + "/api/session", json={"key": keyed.keys["read"] + "x"}, headers=xrw)
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    assert "set-cookie" not in r.headers
    r = httpx.post(url + "/api/session", json={"key": keyed.keys["ingest"]}, headers=xrw)
    assert r.status_code == 403 and "ingest key" in r.json()["detail"]

    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/api/session", json={"key": keyed.keys["read"]}, headers=xrw)
        assert r.status_code == 200
        assert r.json()["signed_in"] is True and r.json()["name"] == "k-read"
        cookie = r.headers["set-cookie"]
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite", "path"} <= attrs, cookie
        assert "samesite=strict" in cookie.lower()
        assert "max-age" not in attrs and "expires" not in attrs  # this browser session only
        assert "secure" not in attrs  # plain HTTP here; set over HTTPS
        info = c.get("/api/session").json()
        assert info["signed_in"] and info["scope"] == "read" and info["required"]
        assert c.get("/api/events").status_code == 200
        # The live stream, signed in by the cookie alone.
        with c.stream("GET", "/api/stream") as s:
            assert s.status_code == 200
            lines = s.iter_lines()
            assert next(lines).startswith("retry:")
            e = ev(agent_name="cookie-stream")
            posted = httpx.post(
                url + "/api/events", json={"events": [e]}, headers=bearer(keyed.keys["ingest"])
            )
            assert posted.status_code == 200
            for line in lines:
                if line.startswith("data:") and e["id"] in line:
                    break
        # Read scope: the cookie cannot write.
        w = c.post("/api/events", json={"events": [ev()]}, headers=xrw)
        assert w.status_code == 403
        out = c.delete("/api/session")
        assert out.status_code == 200 and out.json()["signed_in"] is False
        assert (
            'agentwatch_session=""' in out.headers["set-cookie"]
            or "max-age=0" in out.headers["set-cookie"].lower()
        )
        assert c.get("/api/events").status_code == 401


def test_cookie_writes_need_the_custom_header(keyed: Keyed) -> None:
    """An admin signed in to the dashboard: a state-changing request made with
    the cookie alone (what another page could trigger) is refused."""
    cookies = {"agentwatch_session": keyed.keys["admin"]}
    body = {"events": [ev(agent_name="csrf")]}
    r = httpx.post(keyed.url + "/api/events", json=body, cookies=cookies)
    assert r.status_code == 403 and "X-Requested-With" in r.json()["detail"]
    r = httpx.post(
        keyed.url + "/api/events", json=body, cookies=cookies, headers={"X-Requested-With": "x"}
    )
    assert r.status_code == 200
    assert len(stored(keyed.url, keyed.keys["read"], agent_name="csrf")) == 1


def test_revoking_a_key_ends_its_sessions(server_factory: type[ServerProcess], db_url: str) -> None:
    key = create_key(db_url, "read", "dash")
    create_key(db_url, "read", "spare")
    srv = server_factory().start()
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        assert (
            c.post("/api/session", json={"key": key}, headers={"X-Requested-With": "t"}).status_code
            == 200
        )
        assert c.get("/api/events").status_code == 200
        keys_cli(db_url, "revoke", "dash")
        took = wait_for(lambda: c.get("/api/events").status_code == 401)
        assert took < 5
        assert "session's key is not valid" in c.get("/api/events").json()["detail"]
        assert c.get("/api/session").json()["signed_in"] is False
