"""Shared pieces of the benchmark scripts: a server process and a data generator."""

from __future__ import annotations

import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

AGENTS = {
    "research-bot": (["search", "summarize", "cite"], ["gpt-4o", "claude-sonnet-4-20250514"]),
    "support-agent": (["triage", "reply"], ["gpt-4o-mini", "claude-haiku-3-5-20241022"]),
    "code-reviewer": (["review", "explain"], ["claude-opus-4-20250514", "gpt-4o"]),
    "data-pipeline": (["extract", "classify"], ["gpt-3.5-turbo", "gpt-4o-mini"]),
    "sales-assistant": (["draft-email", "qualify-lead"], ["gpt-4o-mini", "gpt-4o"]),
}


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "agentwatch",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            db,
            "--log-level",
            "warning",
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def _event_id(ts: float, rng: random.Random, random_ids: bool) -> str:
    if random_ids:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    n = (int(ts * 1000) << 80) | rng.getrandbits(80)
    n = (n & ~(0xF << 76)) | (0x7 << 76)  # version 7
    n = (n & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=n))


def make_events(
    n: int,
    days: float,
    seed: int = 7,
    end: float | None = None,
    ordered: bool = False,
    random_ids: bool = False,
) -> list[dict]:
    """n LLM-call events spread over `days` days ending now, realistic shapes.

    ordered=True sorts them by time, as a live system sends them; otherwise
    they come in random time order, as a backfill or an import would.
    """
    rng = random.Random(seed)
    end = end or time.time()
    span = days * 86400
    names = list(AGENTS)
    out = []
    for _ in range(n):
        agent = rng.choice(names)
        tasks, models = AGENTS[agent]
        ts = end - rng.random() * span
        err = rng.random() < 0.04
        out.append(
            {
                # UUIDv7 layout, as the SDK makes them: Unix ms, then random bits
                # (version and variant bits set). --random-ids sends v4-style ones.
                "id": _event_id(ts, rng, random_ids),
                "task_name": rng.choice(tasks),
                "agent_name": agent,
                "model": rng.choice(models),
                "input_tokens": int(rng.lognormvariate(6.5, 0.8)),
                "output_tokens": int(rng.lognormvariate(5, 0.7)),
                "latency_ms": round(rng.lognormvariate(6.8, 0.5), 2),
                "status": "error" if err else "success",
                "error_message": "RateLimitError: 429" if err else None,
                "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
                "metadata": {"run": rng.randint(1, 1000)},
            }
        )
    if ordered:
        out.sort(key=lambda e: e["timestamp"])
    return out


def load(url: str, events: list[dict], batch: int = 1000) -> None:
    with httpx.Client(timeout=120) as c:
        for i in range(0, len(events), batch):
            r = c.post(url + "/api/events", json={"events": events[i : i + batch]})
            r.raise_for_status()


def empty_pg(url: str) -> None:
    """Empty an AgentWatch PostgreSQL database before a run (schema kept)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        has = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
        if has and has[0]:
            conn.execute("TRUNCATE events, rollups")


def db_size(path: str | Path) -> int:
    """Bytes on disk of a SQLite file (with its WAL) or of a PostgreSQL database."""
    if "://" in str(path):
        import psycopg

        url = str(path).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    p = Path(path)
    return sum(f.stat().st_size for f in p.parent.glob(p.name + "*") if f.is_file())
