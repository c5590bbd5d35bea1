"""The cost of access control per request (issue 11), two ways.

gate: the gate middleware (server/auth.py) alone, in process, around an ASGI
app that answers at once, for the requests that matter: an ingest POST and a
metrics GET, each with --auth off, in protected mode from loopback, and with
a Bearer key (and the session cookie) once keys exist. The difference to the
bare app is what auth adds to every request, without HTTP noise. No database
is touched per request: the keys are in the gate's cache (the refresh thread
is not running here, so nothing else competes).

http: real servers (--auth off, protected mode, keys with a Bearer key) on
temporary SQLite files holding the same events; one keep-alive connection
sends the same requests to each in turn, in rounds, so that a busy machine
bends every mode alike. Reports the median latency per request and mode.

    python benchmarks/auth_overhead.py [--calls 200000] [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import Server, machine, make_events

from agentwatch.server.auth import Access, Gate, new_key
from agentwatch.store import open_store

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "agentwatch" / "server" / "static"

# What a client sends (uvicorn's scope: lowercased header names, bytes).
BASE_HEADERS = [
    (b"host", b"127.0.0.1:8787"),
    (b"user-agent", b"agentwatch-sdk/0.1"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept", b"*/*"),
    (b"connection", b"keep-alive"),
]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


def _scope(method: str, path: str, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    headers = list(BASE_HEADERS) + extra
    if method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", b"512")]
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }


def gate_bench(calls: int) -> dict[str, Any]:
    d = tempfile.mkdtemp()
    with_keys = open_store(str(Path(d) / "keys.db"), maintenance=False)
    keyed_key: dict[str, str] = {}
    for scope in ("ingest", "read"):
        rec, secret = new_key(f"bench-{scope}", scope)
        with_keys.add_key(rec)
        keyed_key[scope] = secret
    no_keys = open_store(str(Path(d) / "none.db"), maintenance=False)

    # The rules come from the real app's OpenAPI document.
    from agentwatch.server.app import create_app
    from agentwatch.server.settings import Settings

    spec = create_app(Settings(), no_keys).openapi()

    def gate(store: Any, mode: str) -> Gate:
        a = Access(store, mode, "", "0.0.0.0", STATIC)
        a.keys.refresh()
        a.rules.load(spec)
        return Gate(_app, a)

    gates = {
        "off": gate(no_keys, "off"),
        "protected": gate(no_keys, "on"),
        "keys": gate(with_keys, "on"),
    }

    async def sink(message: dict[str, Any]) -> None:
        pass

    async def run(app: Any, scope: dict[str, Any], n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            await app(scope, None, sink)
        return (time.perf_counter() - t) / n * 1e6

    def auth(key: str) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {key}".encode())]

    cases: list[tuple[str, str, str, list[tuple[bytes, bytes]]]] = [
        ("ingest", "POST", "/api/events", []),
        ("query", "GET", "/api/metrics/summary", []),
    ]
    out: dict[str, Any] = {}

    async def main() -> None:
        for label, method, path, _ in cases:
            key = keyed_key["ingest" if method == "POST" else "read"]
            variants: dict[str, tuple[Any, list[tuple[bytes, bytes]]]] = {
                "bare": (_app, []),
                "off": (gates["off"], []),
                "protected (loopback, no key)": (gates["protected"], []),
                "keys (Bearer)": (gates["keys"], auth(key)),
            }
            if method == "GET":
                variants["keys (session cookie)"] = (
                    gates["keys"],
                    [(b"cookie", f"agentwatch_session={key}".encode())],
                )
            res: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(5):  # interleaved repeats; the median of each
                for name, (app, extra) in variants.items():
                    sc = _scope(method, path, extra)
                    await run(app, sc, max(100, calls // 50))  # warm the memo
                    res[name].append(await run(app, sc, calls // 5))
            med = {k: statistics.median(v) for k, v in res.items()}
            out[label] = {
                "us_per_request": {k: round(v, 2) for k, v in med.items()},
                "auth_cost_us": {
                    k: round(v - med["bare"], 2) for k, v in med.items() if k != "bare"
                },
            }

    asyncio.run(main())
    with_keys.close()
    no_keys.close()
    return out


def _requests(
    port: int, key: str | None, method: str, path: str, bodies: list[bytes | None]
) -> list[float]:
    """Send each body in turn over one keep-alive connection; seconds per request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    lat = []
    for body in bodies:
        t = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"{method} {path}: HTTP {r.status}")
        lat.append(time.perf_counter() - t)
    conn.close()
    return lat


def _keys_create(db: str, scope: str) -> str:
    import subprocess

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentwatch",
            "keys",
            "create",
            "--scope",
            scope,
            "--name",
            f"bench-{scope}",
            "--db",
            db,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return p.stdout.strip().splitlines()[-1]


def http_bench(requests: int, rounds: int) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp())
    seed = make_events(2000, 1)
    servers: dict[str, tuple[Server, str | None, str | None]] = {}
    try:
        for mode in ("off", "protected", "keys"):
            db = str(d / f"{mode}.db")
            ingest = read = None
            if mode == "keys":
                ingest, read = _keys_create(db, "ingest"), _keys_create(db, "read")
            srv = Server(db, "--auth", "off" if mode == "off" else "on")
            # The same events in every store, so the queries do the same work.
            bodies = [orjson.dumps({"events": seed[i : i + 500]}) for i in range(0, len(seed), 500)]
            _requests(srv.port, ingest, "POST", "/api/events", list(bodies))
            servers[mode] = (srv, ingest, read)

        fresh = make_events(10 * requests * rounds, 0.01, seed=11, ordered=True)
        lat: dict[str, dict[str, list[float]]] = {
            k: {m: [] for m in servers} for k in ("ingest (10 events)", "summary 24h")
        }
        for r in range(rounds):
            part = fresh[r * requests * 10 : (r + 1) * requests * 10]
            batches: list[bytes | None] = [
                orjson.dumps({"events": part[i : i + 10]}) for i in range(0, len(part), 10)
            ]
            for mode, (srv, ingest, read) in servers.items():
                # Every mode gets the same new events (a separate store each).
                lat["ingest (10 events)"][mode] += _requests(
                    srv.port, ingest, "POST", "/api/events", batches
                )
                lat["summary 24h"][mode] += _requests(
                    srv.port, read, "GET", "/api/metrics/summary?period=24h", [None] * requests
                )
        out: dict[str, Any] = {}
        for what, by_mode in lat.items():
            med = {m: statistics.median(v) * 1e6 for m, v in by_mode.items()}
            out[what] = {
                "median_us": {m: round(v, 1) for m, v in med.items()},
                "keys_minus_off_us": round(med["keys"] - med["off"], 1),
                "protected_minus_off_us": round(med["protected"] - med["off"], 1),
                "requests_per_mode": len(by_mode["off"]),
            }
        return out
    finally:
        for srv, _, _ in servers.values():
            srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000, help="gate calls per case")
    ap.add_argument("--requests", type=int, default=2000, help="HTTP requests per round and mode")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    t = time.perf_counter()
    result = {
        "benchmark": "auth_overhead",
        "machine": machine(),
        "gate": gate_bench(a.calls),
        "http": http_bench(a.requests, a.rounds),
        "seconds": round(time.perf_counter() - t, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
