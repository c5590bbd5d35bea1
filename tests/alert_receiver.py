"""A real local webhook receiver for the alert tests: an http.server on a
thread that records every POST and answers 500 to the first `fail` ones."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest


class Receiver:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append((dict(self.headers.items()), body))
                    failing = outer.fail > 0
                    if failing:
                        outer.fail -= 1
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            got = [json.loads(b) for _, b in self.requests]
        return [b for b in got if name is None or b["alert"]["name"] == name]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    got = {k.lower(): v for k, v in headers.items()}.get("x-agentwatch-signature", "")
    return hmac.compare_digest(want, got)


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def call(agent: str, age_s: float = 5.0, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "task_name": "t",
        "agent_name": agent,
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 50,
        "latency_ms": 100.0,
        "status": "success",
        "cost_usd": 0.01,
        "timestamp": (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(),
    }
    e.update(kw)
    return e


def rule(name: str, webhook: str, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "name": name,
        "metric": "cost",
        "window": "5m",
        "operator": ">",
        "threshold": 0.5,
        "filters": {},
        "webhook_url": webhook,
    }
    r.update(kw)
    return r


def alerts(url: str, headers: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    r = httpx.get(url + "/api/alerts", headers=headers, timeout=10)
    r.raise_for_status()
    return {a["name"]: a for a in r.json()["alerts"]}
