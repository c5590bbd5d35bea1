"""Export rate (issue 14): GET /api/export at N events, CSV and JSONL.

    python benchmarks/export_rate.py --events 1000000

Loads N events into a fresh SQLite store through the HTTP API, then
downloads the whole store in each format, reading as fast as the client
can. Reports rows/s, MB/s, the time to the first byte and the server's
resident memory before and at its peak during the download (sampled from
/proc while it streams). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import Server, load, machine, make_events


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_export(url: str, pid: int, fmt: str) -> dict[str, float]:
    base = rss_mb(pid)
    peak = base
    size = 0
    lines = 0
    t0 = time.perf_counter()
    first = None
    with httpx.stream("GET", url + "/api/export", params={"format": fmt}, timeout=600) as r:
        r.raise_for_status()
        for n, part in enumerate(r.iter_raw()):
            if first is None:
                first = time.perf_counter() - t0
            size += len(part)
            lines += part.count(b"\n")
            if n % 50 == 0:
                peak = max(peak, rss_mb(pid))
    took = time.perf_counter() - t0
    rows = lines - (1 if fmt == "csv" else 0)
    return {
        "rows": rows,
        "seconds": round(took, 2),
        "rows_per_s": round(rows / took),
        "mb": round(size / 1e6, 1),
        "mb_per_s": round(size / 1e6 / took, 1),
        "first_byte_ms": round((first or 0) * 1000, 1),
        "rss_before_mb": round(base, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(peak - base, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        srv = Server(str(Path(d) / "export.db"))
        try:
            t = time.perf_counter()
            left = a.events
            seed = 1
            while left > 0:  # in slices, so the generator never holds all N dicts
                n = min(left, 200_000)
                load(srv.url, make_events(n, a.days, seed=seed), batch=10_000)
                left -= n
                seed += 1
            load_s = time.perf_counter() - t
            # Let the rollup builder catch up so it does not share the CPU.
            for _ in range(600):
                p = httpx.get(srv.url + "/api/health", timeout=30).json()["rollups_pending"]
                if p["events"] == 0:
                    break
                time.sleep(0.5)
            out: dict[str, object] = {
                "benchmark": "export_rate",
                "machine": machine(),
                "events": a.events,
                "load_seconds": round(load_s, 1),
            }
            for fmt in ("csv", "jsonl"):
                runs = [run_export(srv.url, srv.proc.pid, fmt) for _ in range(a.repeat)]
                out[fmt] = max(runs, key=lambda r: r["rows_per_s"])
        finally:
            srv.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
