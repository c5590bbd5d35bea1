"""Checks on every request's query string, before any route sees it.

A NUL character cannot be stored or compared on every backend (PostgreSQL
refuses it in text, which made `?agent_name=%00` a 500), and no parameter of
the API can legitimately hold one. Rather than a check beside every parameter
of every route (and every route added later), this middleware answers 422 for
any query string that carries one, in FastAPI's own shape for a bad
parameter, naming it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from agentwatch.schema import NUL_MESSAGE


def nul_parameter(query_string: bytes) -> tuple[str, str] | None:
    """The first (name, value) of the query string holding a NUL, or None."""
    # Cheap test first: a NUL can only arrive percent-encoded (the HTTP parser
    # refuses a raw one), so a query without "%00" needs no parsing.
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    # Decoded as Starlette does for the routes (latin-1 bytes, UTF-8 escapes).
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name, value
    return None


class QueryGuard:
    """ASGI middleware: 422 for a NUL in any query parameter."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            bad = nul_parameter(scope.get("query_string", b""))
            if bad is not None:
                name, value = bad
                detail = [
                    {
                        "type": "string_nul",
                        "loc": ["query", name],
                        "msg": NUL_MESSAGE,
                        "input": value,
                    }
                ]
                body = orjson.dumps({"detail": detail})
                await send(
                    {
                        "type": "http.response.start",
                        "status": 422,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
