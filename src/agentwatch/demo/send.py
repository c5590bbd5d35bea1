"""Sending to the server: ``POST /api/events`` with the standard library, like any client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


class DemoError(RuntimeError):
    """The server could not be reached or refused a batch."""


def post_events(
    server: str,
    events: list[dict[str, Any]],
    timeout: float = 30.0,
    api_key: str | None = None,
) -> int:
    """POST one batch to ``/api/events``; returns the count the server acknowledged."""
    body = json.dumps({"events": events}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(
        server.rstrip("/") + "/api/events", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        if exc.code in (401, 403):
            hint = "" if api_key else " (no key given: pass --api-key or set AGENTWATCH_API_KEY)"
            raise DemoError(f"the server refused the key ({exc.code}): {detail}{hint}") from None
        raise DemoError(f"server answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(
            f"cannot reach {server} ({reason}); is `agentwatch serve` running?"
        ) from None
    return int(payload.get("count", len(events)))


def batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]
