"""A 200,000-event export with the server's resident memory sampled while
it streams (issue 14: an export must not grow the server by more than 50 MB
whatever its size). SQLite; the store's reads are the same on PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import ServerProcess
from tests.server.test_ingest import post

N = 200_000
BATCH = 10_000
LIMIT_MB = 50


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_200k_export_streams_in_flat_memory(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "big.db").start()
    try:
        assert srv.proc is not None
        pid = srv.proc.pid
        t0 = datetime.now(UTC) - timedelta(days=2)
        for b in range(N // BATCH):
            evs = [
                {
                    "id": str(uuid.uuid4()),
                    "task_name": f"task-{i % 50}",
                    "agent_name": f"agent-{i % 7}",
                    "model": "gpt-4o",
                    "input_tokens": 100 + i % 900,
                    "output_tokens": 20 + i % 300,
                    "latency_ms": 100.0 + i % 5000,
                    "status": "error" if i % 20 == 0 else "success",
                    "error_message": "rate limited, retry" if i % 20 == 0 else None,
                    "timestamp": (t0 + timedelta(milliseconds=i * 500)).isoformat(),
                    "metadata": {"request": f"req-{i}", "note": 'a "quoted", multi\nline text'},
                    "session_id": f"s-{i % 1000}",
                }
                for i in range(b * BATCH, (b + 1) * BATCH)
            ]
            assert post(srv.url, evs).status_code == 200
        # The import's old days are recounted by the writer once ingest goes
        # quiet; that upkeep has its own memory. Measure the export alone.
        settled = time.monotonic() + 300
        while httpx.get(srv.url + "/api/health").json()["rollups_pending"] != {
            "events": 0,
            "dirty_days": 0,
        }:
            assert time.monotonic() < settled, "rollups never caught up"
            time.sleep(0.25)
        # Warm the paths (imports, pools, caches) with a small export first.
        for fmt in ("csv", "jsonl"):
            r = httpx.get(srv.url + "/api/export", params={"format": fmt, "agent_name": "agent-1"})
            assert r.status_code == 200
        for fmt in ("jsonl", "csv"):
            base = rss_mb(pid)
            peak = base
            lines = 0
            size = 0
            with httpx.stream(
                "GET", srv.url + "/api/export", params={"format": fmt}, timeout=120
            ) as r:
                assert r.status_code == 200
                first = True
                for n, part in enumerate(r.iter_bytes()):
                    if first and fmt == "jsonl":
                        assert json.loads(part.split(b"\n", 1)[0])["agent_name"] == "agent-0"
                    first = False
                    lines += part.count(b"\n")
                    size += len(part)
                    if n % 20 == 0:
                        peak = max(peak, rss_mb(pid))
            peak = max(peak, rss_mb(pid))
            # CSV: a header, then one line per row (metadata's line break is
            # escaped inside its JSON).
            assert lines == (N if fmt == "jsonl" else N + 1)
            print(f"{fmt}: {size / 1e6:.0f} MB sent, server RSS {base:.0f} -> {peak:.0f} MB")
            assert size > N * 200
            assert peak - base < LIMIT_MB, f"{fmt}: RSS {base:.0f} -> {peak:.0f} MB"
    finally:
        srv.stop()
