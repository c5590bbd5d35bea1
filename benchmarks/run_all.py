"""Run every benchmark script and collect their JSON into one document.

    python benchmarks/run_all.py            # full size (the figures in docs/performance.md)
    python benchmarks/run_all.py --smoke    # tiny sizes, seconds: proves the scripts still run
    python benchmarks/run_all.py --out results.json

Each script is run as its own process and must print one JSON document on
stdout. A script that fails or prints something else makes this exit 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

# (script, full-size arguments, smoke arguments)
SCRIPTS: list[tuple[str, list[str], list[str]]] = [
    (
        "ingest_http.py",
        ["--events", "200000", "--mode", "live"],
        ["--events", "2000", "--mode", "live"],
    ),
    (
        "ingest_http.py",
        ["--events", "100000", "--mode", "backfill"],
        ["--events", "2000", "--mode", "backfill"],
    ),
    # The scale issue's ingest target: batches of 1,000 from 4 clients while
    # the dashboard's queries run beside it.
    (
        "ingest_http.py",
        [
            *("--events", "200000", "--mode", "live"),
            *("--batch", "1000", "--clients", "4", "--with-queries"),
        ],
        ["--events", "2000", "--mode", "live", "--with-queries"],
    ),
    (
        "query_metrics.py",
        ["--events", "100000", "--days", "7", "--repeat", "30"],
        ["--events", "2000", "--days", "7", "--repeat", "2"],
    ),
    ("sdk_overhead.py", [], ["--quick"]),
    ("framework_overhead.py", [], ["--quick"]),
    ("dashboard_load.py", ["--events", "100000"], ["--events", "2000", "--runs", "1"]),
    (
        "scale.py",
        ["--events", "1000000", "--under-load", "20"],
        ["--events", "5000", "--repeat", "2", "--under-load", "2", "--load-batch", "500"],
    ),
    # OpenTelemetry in: spans/s through /v1/traces, protobuf and JSON, beside /api/events.
    ("otlp_ingest.py", ["--traces", "20000", "--repeat", "3"], ["--traces", "200"]),
    # Access control: the gate alone (microseconds per request) and real
    # servers with --auth off, protected mode and keys.
    (
        "auth_overhead.py",
        [],
        ["--calls", "20000", "--requests", "100", "--rounds", "1"],
    ),
    # The storage issue: every traffic shape over HTTP, disk and RSS sampled
    # while ingesting, queries during and after.
    (
        "shapes.py",
        ["--events", "300000,1000000"],
        ["--shapes", "friendly,import,wide", "--events", "3000", "--repeat", "2"],
    ),
    # Export (issue 14): rows/s of GET /api/export, CSV and JSONL, and the
    # server's RSS while it streams; what /metrics adds per ingested event.
    ("export_rate.py", ["--events", "1000000"], ["--events", "3000"]),
    ("metrics_overhead.py", ["--events", "200000"], ["--events", "5000"]),
    (
        "sse_fanout.py",
        ["--clients", "200", "--rate", "2000", "--seconds", "10"],
        ["--clients", "5", "--rate", "200", "--seconds", "1"],
    ),
    # Alerts: 1,000 rules evaluated over 1M events, and ingest beside the evaluator.
    (
        "alerts_eval.py",
        ["--events", "1000000", "--rules", "1000"],
        ["--events", "2000", "--rules", "50", "--repeat", "1", "--ingest", "1000"],
    ),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; checks the scripts run")
    ap.add_argument("--out", help="also write the collected JSON here")
    ap.add_argument("--only", help="run only scripts whose name contains this")
    a = ap.parse_args()
    results = []
    failed = False
    for script, full, smoke in SCRIPTS:
        if a.only and a.only not in script:
            continue
        args = smoke if a.smoke else full
        t = time.perf_counter()
        p = subprocess.run(
            [sys.executable, str(HERE / script), *args], capture_output=True, text=True
        )
        took = round(time.perf_counter() - t, 1)
        try:
            data = json.loads(p.stdout)
        except ValueError:
            data = None
        ok = p.returncode == 0 and data is not None
        failed |= not ok
        print(f"{'ok ' if ok else 'FAIL'} {script} {' '.join(args)} ({took} s)", file=sys.stderr)
        if not ok:
            print(p.stdout[-2000:], p.stderr[-4000:], sep="\n", file=sys.stderr)
        results.append({"script": script, "args": args, "seconds": took, "result": data})
    doc = json.dumps({"smoke": a.smoke, "results": results}, indent=2)
    print(doc)
    if a.out:
        Path(a.out).write_text(doc)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
