"""GET, POST and DELETE /api/session: the dashboard's sign-in with an API key.

Signing in checks a read or admin key and sets it as a session cookie:
HttpOnly (page scripts cannot read it), SameSite=Strict (never sent by
another site's page), no expiry (the browser forgets it when it closes),
Secure over HTTPS. The live stream then works signed in, since EventSource
sends cookies but cannot send headers. Revoking the key ends every session
that uses it within seconds. See server/auth.py for the rules.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agentwatch.server.auth import (
    COOKIE,
    CREATE_HINT,
    CSRF_HEADER,
    PUBLIC,
    Access,
    is_loopback,
    requires,
)

router = APIRouter(prefix="/api", tags=["session"])
log = logging.getLogger("agentwatch.auth")


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=256, description="A read or admin API key")


def _access(request: Request) -> Access:
    a: Access = request.app.state.access
    return a


def _session_key(request: Request) -> Any:
    a = _access(request)
    token, via_cookie, _ = a.credentials(request.scope["headers"])
    if token is None or not via_cookie or a.state != "keys":
        return None
    return a.keys.check(token)


def _info(a: Access, request: Request, key: Any) -> dict[str, Any]:
    local = is_loopback(request.scope.get("client"))
    return {
        "auth": a.state,
        "required": a.on and (a.keys.any or not local),
        "local": local,
        "signed_in": key is not None,
        "name": key.name if key else None,
        "scope": key.scope if key else None,
    }


@router.get(
    "/session",
    summary="Whether this browser must sign in, and as whom it is signed in",
    openapi_extra=requires(PUBLIC),
)
async def session(request: Request) -> dict[str, Any]:
    """`auth` is `off`, `protected` (no key exists yet: only this machine is
    served) or `keys`; `required` says whether this client needs a key."""
    return _info(_access(request), request, _session_key(request))


@router.post(
    "/session",
    summary="Sign in with a read or admin key (sets the session cookie)",
    openapi_extra=requires(PUBLIC),
    responses={
        401: {"description": "Unknown or revoked key"},
        403: {"description": "An ingest key, or the X-Requested-With header is missing"},
        409: {"description": "Authentication is off on this server"},
    },
)
async def sign_in(request: Request, body: SignIn) -> Any:
    """Needs the `X-Requested-With` header (any value), which a page of
    another site cannot send."""
    a = _access(request)
    if CSRF_HEADER not in request.headers:
        return _refuse(403, f"signing in needs the {CSRF_HEADER} header")
    if not a.on:
        return _refuse(
            409, "authentication is off on this server (--auth off): nothing to sign in to"
        )
    if not a.keys.any:
        return _refuse(
            401, f"this server has no API keys yet; create one on it with `{CREATE_HINT}`"
        )
    key = a.keys.check(body.key.strip())
    if key is None:
        log.info("dashboard sign-in refused: unknown key (client %s)", _client(request))
        return _refuse(401, "that key is not valid: it is unknown or has been revoked")
    if key.scope == "ingest":
        return _refuse(
            403,
            f"the key {key.name!r} is an ingest key: it may only send events. "
            "Sign in with a read or admin key",
        )
    log.info("dashboard sign-in with key %r (client %s)", key.name, _client(request))
    resp = JSONResponse(_info(a, request, key))
    resp.set_cookie(
        COOKIE,
        body.key.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return resp


@router.delete(
    "/session", summary="Sign out (forgets the session cookie)", openapi_extra=requires(PUBLIC)
)
async def sign_out(request: Request) -> Any:
    a = _access(request)
    resp = JSONResponse(_info(a, request, None))
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _client(request: Request) -> str:
    c = request.scope.get("client")
    return c[0] if c else "local"
