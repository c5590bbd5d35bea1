"""Sending to the server: ``POST /api/events`` with the standard library, like any client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


class DemoError(RuntimeError):
    """The server could not be reached or refused a batch."""


def post_events(server: str, events: list[dict[str, Any]], timeout: float = 30.0) -> int:
    """POST one batch to ``/api/events``; returns the count the server acknowledged."""
    body = json.dumps({"events": events}).encode()
    req = urllib.request.Request(
        server.rstrip("/") + "/api/events",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise DemoError(f"server answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(
            f"cannot reach {server} ({reason}); is `agentwatch serve` running?"
        ) from None
    return int(payload.get("count", len(events)))


def _batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


def batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]
