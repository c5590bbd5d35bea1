"""Access control: API keys, scopes, protected mode, and the door every request passes.

Keys. A secret is `agentwatch_<id>_<secret>`: a recognisable prefix (so that
secret scanners can find a leaked one), a 12-character public id and 40
random characters (238 bits). The store keeps the id, the name, the scope and
the SHA-256 of the whole secret, never the secret (store/keys.py). A fast
hash is enough because secrets are random and long: there is nothing to
guess, so a slow password hash would only cost time on every request. A
request's key is found by its id in a per-server cache and its hash compared
in constant time (`hmac.compare_digest`).

The cache. Every server holds every key in memory and reloads the table
every `REFRESH_S` seconds on a worker thread, so a request never waits on the
database and a key created or revoked by `agentwatch keys` (on this server's
database, from any machine) is seen by every server sharing it within
REFRESH_S plus one query. Last-used times are noted in memory and written by
the same thread, at most once a minute per key and server.

Scopes. `ingest` may send events, `read` may use every GET route and the live
stream, `admin` may do both and whatever later routes reserve for it. The
rule for a request comes from the route's OpenAPI operation: its
`x-agentwatch-scope` (set with `requires(...)`), else GET/HEAD = read, POST =
ingest, any other method = admin. Paths outside the schema get the same
method default, so nothing is open unless it is declared public (`/api/health`,
the session routes, `/docs`, `/openapi.json`) or is a file of the dashboard
shell. See docs/security.md.

Protected mode (`--auth on`, the default). While no key exists, loopback
clients are served as before and any other address gets 403 naming `agentwatch
keys create`. Once a key exists, every non-public request needs one.
`--auth off` serves everyone.

Browser-facing rules, enforced here for every route:
- while no key protects the server (protected mode, or --auth off), a Host
  header that is not an IP address, a loopback name, this machine's name or
  an `--allowed-hosts` entry gets 400: a page on a DNS-rebinding domain cannot
  talk to a server that has no key;
- a request body must have one of the operation's declared content types
  (default application/json), else 415: a cross-site form or a `text/plain`
  fetch cannot write, and a JSON write needs a CORS preflight that is refused;
- a request authenticated by the dashboard's session cookie that changes
  anything must carry `X-Requested-With`, which no cross-site form can send;
- security headers on every response (CSP, nosniff, frame-ancestors, no-referrer).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import socket
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agentwatch.store.base import Store
from agentwatch.store.keys import ApiKey

log = logging.getLogger("agentwatch.auth")

# -- keys ------------------------------------------------------------------

PREFIX = "agentwatch_"
ID_LEN = 12
SECRET_LEN = 40  # 40 characters of 62: 238 bits
KEY_LEN = len(PREFIX) + ID_LEN + 1 + SECRET_LEN
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = rf"{PREFIX}[A-Za-z0-9]{{{ID_LEN}}}_[A-Za-z0-9]{{{SECRET_LEN}}}"

SCOPES = ("ingest", "read", "admin")
PUBLIC = "public"
# What each key scope may do.
GRANTS: dict[str, frozenset[str]] = {
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"ingest", "read", "admin"}),
}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(name: str, scope: str, now: int | None = None) -> tuple[ApiKey, str]:
    """A new key record (to store) and its secret (to show once)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid key name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    key_id = _random(ID_LEN)
    secret = f"{PREFIX}{key_id}_{_random(SECRET_LEN)}"
    created = int(time.time()) if now is None else now
    return ApiKey(key_id, name, scope, hash_secret(secret), created, None), secret


def key_id_of(token: str) -> str | None:
    """The public id of a well-formed secret, else None."""
    if len(token) != KEY_LEN or not token.startswith(PREFIX):
        return None
    if token[len(PREFIX) + ID_LEN] != "_":
        return None
    return token[len(PREFIX) : len(PREFIX) + ID_LEN]


_DUMMY_HASH = hash_secret("not a key")


class KeyCache:
    """Every key of the store, in memory, reloaded every REFRESH_S seconds."""

    # 2 s: a created or revoked key takes effect on every server within 5 s
    # (the promise in docs/security.md) even when a reload takes a while,
    # for one small query per server every 2 s.
    REFRESH_S = 2.0
    # Last-used times are kept to the minute: at most one write per key per
    # minute and server, however busy the key.
    TOUCH_EVERY_S = 60

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_id: dict[str, ApiKey] = {}
        self.loaded = False
        self._used: dict[str, int] = {}
        self._failing = False

    @property
    def any(self) -> bool:
        return bool(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def check(self, token: str) -> ApiKey | None:
        """The key this secret belongs to, or None. Constant-time in the secret."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        rec = self._by_id.get(key_id)
        ok = hmac.compare_digest(hash_secret(token), rec.secret_hash if rec else _DUMMY_HASH)
        if not ok or rec is None:
            return None
        now = int(time.time())
        if rec.last_used_at is None or now - rec.last_used_at >= self.TOUCH_EVERY_S:
            self._used[rec.key_id] = now
        return rec

    def refresh(self) -> bool:
        """Write pending last-used times, then reload the keys (worker thread).
        On a database error the last good set stays in force; False then."""
        used, self._used = self._used, {}
        try:
            if used:
                self.store.touch_keys(used)
            keys = self.store.list_keys()
        except Exception as e:
            for k, v in used.items():  # try again next time
                self._used.setdefault(k, v)
            if not self._failing:
                log.warning("cannot read the API keys (keeping the last known set): %s", e)
            self._failing = True
            return False
        if self._failing:
            log.info("API keys readable again")
        self._failing = False
        had = self.any if self.loaded else None
        self._by_id = {k.key_id: k for k in keys}
        self.loaded = True
        if had is not None and had != self.any:
            if self.any:
                log.info("an API key exists now: every request needs one")
            else:
                log.warning("the last API key was revoked: back to protected mode")
        return True

    def flush(self) -> None:
        """Write pending last-used times (at shutdown); nothing if there are none."""
        used, self._used = self._used, {}
        if used:
            try:
                self.store.touch_keys(used)
            except Exception as e:  # the database is gone: only last-use times are lost
                log.warning("cannot record the keys' last use: %s", e)

    async def run(self) -> None:
        """Reload forever (a task of the server's lifespan)."""
        while True:
            await asyncio.sleep(self.REFRESH_S)
            await asyncio.to_thread(self.refresh)


# -- the route rules --------------------------------------------------------

SCOPE_FIELD = "x-agentwatch-scope"
# A route that answers an unexpected content type itself, in its protocol's
# own error format (OTLP's google.rpc.Status), sets this in openapi_extra;
# the gate then leaves the content type to it.
OWN_CONTENT_TYPE = "x-agentwatch-own-content-type"


def requires(scope: str) -> dict[str, Any]:
    """`openapi_extra` for a route that needs `scope` (or PUBLIC) instead of
    its method's default, e.g. `@router.post(..., openapi_extra=requires("admin"))`."""
    if scope not in (*SCOPES, PUBLIC):
        raise ValueError(f"unknown scope {scope!r}")
    return {SCOPE_FIELD: scope}


def default_scope(method: str) -> str:
    if method in ("GET", "HEAD"):
        return "read"
    if method == "POST":
        return "ingest"
    return "admin"


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_ONLY = ("application/json",)
# Pages of the server that are not API operations; both are static shells.
PUBLIC_PAGES = frozenset({"/docs", "/openapi.json"})


@dataclass(frozen=True, slots=True)
class Rule:
    scope: str  # PUBLIC or one of SCOPES
    accepts: tuple[str, ...] | None  # media types a body may have; None: not checked
    label: str  # "GET /api/events", for messages


def _template_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    body = "".join(
        ("[^/]+" if p[1:-1].split(":")[0] == p[1:-1] else ".*")
        if p.startswith("{")
        else re.escape(p)
        for p in parts
    )
    return re.compile(f"^{body}$")


def _static_paths(static_dir: Path | None) -> frozenset[str]:
    """URL paths of the dashboard's files (served without a key)."""
    if static_dir is None or not static_dir.is_dir():
        return frozenset()
    out = {"/"}
    for p in static_dir.rglob("*"):
        if p.is_file():
            rel = "/" + p.relative_to(static_dir).as_posix()
            out.add(rel)
            if rel.endswith("/index.html"):
                out.add(rel[: -len("index.html")])
    return frozenset(out)


class Rules:
    """Path and method -> Rule, from the OpenAPI operations (built once at start)."""

    MEMO_MAX = 4096  # distinct (method, path) pairs remembered; cleared when full

    def __init__(self, static_dir: Path | None) -> None:
        self.static = _static_paths(static_dir)
        self.exact: dict[tuple[str, str], Rule] = {}
        self.templated: list[tuple[re.Pattern[str], str, Rule]] = []
        self._memo: dict[tuple[str, str], Rule] = {}

    def load(self, spec: dict[str, Any]) -> None:
        exact: dict[tuple[str, str], Rule] = {}
        templated = []
        for path, ops in spec.get("paths", {}).items():
            for method, op in ops.items():
                m = method.upper()
                if not isinstance(op, dict):
                    continue
                rule = self._rule_of(m, path, op)
                if "{" in path:
                    templated.append((_template_regex(path), m, rule))
                else:
                    exact[(m, path)] = rule
                if m == "GET":
                    head = Rule(rule.scope, None, f"HEAD {path}")
                    if "{" in path:
                        templated.append((_template_regex(path), "HEAD", head))
                    else:
                        exact.setdefault(("HEAD", path), head)
        self.exact, self.templated = exact, templated
        self._memo = {}

    @staticmethod
    def _rule_of(method: str, path: str, op: dict[str, Any]) -> Rule:
        scope = op.get(SCOPE_FIELD) or default_scope(method)
        content = (op.get("requestBody") or {}).get("content")
        if op.get(OWN_CONTENT_TYPE):
            return Rule(scope, None, f"{method} {path}")
        if content:
            accepts: tuple[str, ...] | None = tuple(t.lower() for t in content)
        else:
            accepts = JSON_ONLY if method in BODY_METHODS else None
        return Rule(scope, accepts, f"{method} {path}")

    def rule(self, method: str, path: str) -> Rule:
        k = (method, path)
        r = self._memo.get(k)
        if r is None:
            r = self._find(method, path)
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            self._memo[k] = r
        return r

    def _find(self, method: str, path: str) -> Rule:
        r = self.exact.get((method, path))
        if r is not None:
            return r
        for rx, m, rule in self.templated:
            if m == method and rx.match(path):
                return rule
        if path in PUBLIC_PAGES and method in ("GET", "HEAD"):
            return Rule(PUBLIC, None, f"{method} {path}")
        if method in ("GET", "HEAD") and path in self.static:
            return Rule(PUBLIC, None, f"{method} {path}")
        # Not an operation of the schema: a default by method, never open.
        return Rule(
            default_scope(method), JSON_ONLY if method in BODY_METHODS else None, f"{method} {path}"
        )

    def operations(self) -> Iterable[tuple[str, str, Rule]]:
        """(method, path template, rule) of every operation (for the docs and tests)."""
        for (m, p), r in self.exact.items():
            yield m, p, r
        for _, m, r in self.templated:
            yield m, r.label.split(" ", 1)[1], r


def document(spec: dict[str, Any]) -> None:
    """Add the bearer scheme and each operation's scope to an OpenAPI document."""
    comps = spec.setdefault("components", {})
    comps.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An AgentWatch API key (`agentwatch keys create`); see docs/security.md.",
    }
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            scope = Rules._rule_of(method.upper(), path, op).scope
            op[SCOPE_FIELD] = scope
            if scope != PUBLIC:
                op.setdefault("security", [{"apiKey": []}])
                need = f"Needs a key with scope `{scope}`" + (
                    "" if scope == "admin" else " or `admin`"
                )
                op["description"] = (op.get("description") or "").rstrip() + f"\n\n{need}."


# -- hosts and clients -------------------------------------------------------


def host_name(raw: str) -> str:
    """The name in a Host header, lowercased, without port or trailing dot."""
    h = raw.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else h
    if h.count(":") == 1:
        h = h.rsplit(":", 1)[0]
    return h.rstrip(".")


class HostPolicy:
    """Which Host names are served while no key protects the server."""

    MEMO_MAX = 1024

    def __init__(self, allowed: str, bind_host: str) -> None:
        items = [h.strip().lower() for h in allowed.split(",") if h.strip()]
        self.any = "*" in items
        self.names = {"localhost", *(h for h in items if not h.startswith(("*.", ".")))}
        self.suffixes = tuple("." + h.lstrip("*.") for h in items if h.startswith(("*.", ".")))
        self.suffixes += (".localhost",)
        try:
            own = socket.gethostname().lower()
        except OSError:
            own = ""
        if own:
            self.names.add(own)
            self.names.add(own.split(".")[0])
        if bind_host and bind_host not in ("0.0.0.0", "::", ""):
            self.names.add(host_name(bind_host))
        self._memo: dict[bytes, bool] = {}

    def allows(self, raw: bytes) -> bool:
        ok = self._memo.get(raw)
        if ok is None:
            ok = self._decide(raw.decode("latin-1"))
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            self._memo[raw] = ok
        return ok

    def _decide(self, raw: str) -> bool:
        if self.any:
            return True
        name = host_name(raw)
        # An address cannot be rebound: a page that reached us by IP has our
        # own origin. Only names can be pointed at us by somebody else's DNS.
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        return name in self.names or name.endswith(self.suffixes)


_loopback_memo: dict[str, bool] = {}


def is_loopback(client: tuple[str, int] | list[Any] | None) -> bool:
    if client is None:  # a Unix socket: on this machine
        return True
    host = client[0]
    ok = _loopback_memo.get(host)
    if ok is None:
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
            mapped = getattr(ip, "ipv4_mapped", None)
            ok = bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))
        except ValueError:
            ok = False
        if len(_loopback_memo) >= 1024:
            _loopback_memo.clear()
        _loopback_memo[host] = ok
    return ok


# -- security headers ---------------------------------------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_CSP_NAME = b"content-security-policy"
_ALL_HEADERS = [(_CSP_NAME, CSP.encode()), *SECURITY_HEADERS]


def csp_with_inline_scripts(html: str) -> str:
    """CSP for a page with inline <script> blocks (FastAPI's Swagger UI page):
    the default policy plus the hash of each block, so nothing else inline runs."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    ]
    return CSP.replace("script-src 'self'", "script-src 'self' " + " ".join(hashes))


# -- the gate -----------------------------------------------------------------

COOKIE = "agentwatch_session"
CSRF_HEADER = "X-Requested-With"
MODES = ("on", "off")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Access:
    """Everything the gate and the session routes need to decide."""

    def __init__(self, store: Store, mode: str, allowed_hosts: str, bind_host: str,
                 static_dir: Path | None) -> None:  # fmt: skip
        if mode not in MODES:
            raise ValueError(f"--auth must be 'on' or 'off', not {mode!r}")
        self.on = mode == "on"
        self.keys = KeyCache(store)
        self.rules = Rules(static_dir)
        self.hosts = HostPolicy(allowed_hosts, bind_host)

    @property
    def state(self) -> str:
        """'off', 'protected' (no key yet) or 'keys'."""
        if not self.on:
            return "off"
        return "keys" if self.keys.any else "protected"

    def credentials(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, bool, bool]:
        """(token, from the session cookie, Authorization present but not Bearer)."""
        auth = cookie = None
        for k, v in headers:
            if k == b"authorization":
                auth = v
            elif k == b"cookie":
                cookie = v if cookie is None else cookie + b"; " + v
        if auth is not None:
            scheme, _, token = auth.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer":
                return None, False, True
            return token.strip(), False, False
        if cookie is not None:
            for part in cookie.decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE and value:
                    return value, True, False
        return None, False, False


def _json_response(status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_ALL_HEADERS,
        *(extra or []),
    ]
    start = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": body}


CREATE_HINT = "agentwatch keys create --scope read --name NAME"
WWW_AUTH = (b"www-authenticate", b'Bearer realm="agentwatch"')
WWW_AUTH_BAD = (b"www-authenticate", b'Bearer realm="agentwatch", error="invalid_token"')


class Gate:
    """ASGI middleware: Host check, keys and scopes, content types, security headers."""

    def __init__(self, app: Any, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        refusal = self._check(scope)
        if refusal is not None:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[1]})
                return
            start, body = _json_response(*refusal)
            await send(start)
            await send(body)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                # A route may set its own policy (/docs); Starlette's header
                # names are lowercase already.
                for k, _ in headers:
                    if k == _CSP_NAME:
                        headers.extend(SECURITY_HEADERS)
                        break
                else:
                    headers.extend(_ALL_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers if kind == "http" else send)

    def _check(self, scope: dict[str, Any]) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """None to serve the request, else (status, detail, extra headers)."""
        a = self.access
        method = scope.get("method", "GET")
        headers = scope["headers"]
        keys_on = a.on and a.keys.any
        if not keys_on:
            for k, v in headers:
                if k == b"host":
                    if not a.hosts.allows(v):
                        return 400, _host_detail(v), []
                    break
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root + "/"):
            path = path[len(root) :]
        rule = a.rules.rule(method, path)
        if a.on and rule.scope != PUBLIC:
            if not a.keys.loaded:
                return 503, "the API keys could not be read from the database yet; retry", []
            if keys_on:
                token, via_cookie, other_scheme = a.credentials(headers)
                if token is None:
                    if other_scheme:
                        detail = "send the API key as `Authorization: Bearer <key>`"
                    else:
                        detail = (
                            f"{rule.label} needs an API key: send `Authorization: Bearer <key>`. "
                            f"Create one on the server with `{CREATE_HINT}` (scope ingest to "
                            "send events, read for queries and the dashboard)"
                        )
                    return 401, detail, [WWW_AUTH]
                key = a.keys.check(token)
                if key is None:
                    what = "session's key" if via_cookie else "API key"
                    return (
                        401,
                        f"the {what} is not valid (unknown or revoked); check it, "
                        "or create a new one with `agentwatch keys create`",
                        [WWW_AUTH_BAD],
                    )
                if rule.scope not in GRANTS[key.scope]:
                    need = rule.scope if rule.scope == "admin" else f"{rule.scope} or admin"
                    return (
                        403,
                        f"the key {key.name!r} has scope {key.scope!r}; {rule.label} needs "
                        f"a key with scope {need} (agentwatch keys create --scope {rule.scope})",
                        [],
                    )
                if (
                    via_cookie
                    and method not in SAFE_METHODS
                    and not _has(headers, b"x-requested-with")
                ):
                    return (
                        403,
                        f"a request signed in with the session cookie must send the "
                        f"{CSRF_HEADER} header (so that other web pages cannot make it)",
                        [],
                    )
            elif not is_loopback(scope.get("client")):
                return 403, PROTECTED_DETAIL, []
        if rule.accepts is not None and method in BODY_METHODS:
            ctype = _header(headers, b"content-type")
            media = ctype.split(";", 1)[0].strip().lower() if ctype else ""
            if media not in rule.accepts:
                got = f"got {ctype!r}" if ctype else "got none"
                return (
                    415,
                    f"{rule.label} takes Content-Type: {', '.join(rule.accepts)} ({got})",
                    [],
                )
        return None


PROTECTED_DETAIL = (
    "AgentWatch is in protected mode: no API key exists yet, so it serves only clients on "
    f"its own machine. On the server, create a key (`{CREATE_HINT}`, or --scope ingest for "
    "an SDK) and send it as `Authorization: Bearer <key>`; or start the server with "
    "`--auth off` to serve everyone without keys"
)


def _host_detail(raw: bytes) -> str:
    name = host_name(raw.decode("latin-1"))
    return (
        f"the Host header names {name!r}, which is not this server's name or address. "
        "Open the server by its address or as localhost, add the name with --allowed-hosts, "
        "or create an API key (`agentwatch keys create`): with keys, any name is served. "
        "(Unknown names are refused so that a page on another domain cannot reach a server "
        "that has no key through DNS rebinding.)"
    )


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


def _has(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k == name for k, _ in headers)
