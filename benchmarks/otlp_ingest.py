"""OTLP ingest throughput: spans per second through POST /v1/traces (protobuf and JSON),
side by side with POST /api/events carrying the same events.

The load is agent runs as an instrumented framework exports them: per trace an
agent span, a tool span and two LLM calls (one under the tool), all stored,
plus one HTTP client span under each call that is not. Requests hold 512
spans, as the OpenTelemetry SDK's BatchSpanProcessor sends them. The
/api/events bodies hold exactly the events the server maps those spans to.
Each encoding gets a fresh server on a temporary SQLite file; several client
processes post over keep-alive connections; a 200 means committed.

"decode" times the server's decoding alone, in this process: the protobuf
decoder, the JSON reader, and protobuf's own json_format (which the JSON path
does not use) for comparison.

    python benchmarks/otlp_ingest.py [--traces 20000] [--clients 2] [--batch 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).parent))
from _common import AGENTS, Server, machine

from agentwatch.otlp.decode import decode_json, decode_protobuf
from agentwatch.otlp.mapping import Mapper


def _kv(key: str, v: Any) -> dict[str, Any]:
    if isinstance(v, int):
        return {"key": key, "value": {"intValue": str(v)}}
    return {"key": key, "value": {"stringValue": v}}


def make_traces(n: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    """n traces of 7 spans (5 stored), OTLP JSON span objects, in export order."""
    rng = random.Random(seed)
    now = time.time_ns() - 600 * 10**9
    names = list(AGENTS)
    out = []
    for i in range(n):
        agent = rng.choice(names)
        tasks, models = AGENTS[agent]
        trace = rng.randbytes(16).hex()
        t0 = now + i * 10**7
        ids = [rng.randbytes(8).hex() for _ in range(7)]

        def sp(
            k: int,
            parent: int | None,
            name: str,
            start: int,
            dur: int,
            attrs: dict,
            trace: str = trace,
            ids: list[str] = ids,
            t0: int = t0,
        ) -> dict:
            s = {
                "traceId": trace,
                "spanId": ids[k],
                "name": name,
                "kind": 1,
                "startTimeUnixNano": str(t0 + start * 10**6),
                "endTimeUnixNano": str(t0 + (start + dur) * 10**6),
                "attributes": [_kv(a, v) for a, v in attrs.items()],
            }
            if parent is not None:
                s["parentSpanId"] = ids[parent]
            return s

        def chat(model: str, i: int = i) -> dict:
            return {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": int(rng.lognormvariate(6.5, 0.8)),
                "gen_ai.usage.output_tokens": int(rng.lognormvariate(5, 0.7)),
                "gen_ai.response.id": f"chatcmpl-{i}",
            }

        http_attrs = {"http.request.method": "POST", "url.full": "https://api.example/v1/chat"}
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
        run = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
        # children first, as spans end
        out.append(
            [
                sp(3, 2, "POST", 11, 300, http_attrs),
                sp(2, 0, f"chat {models[0]}", 10, 320, chat(models[0])),
                sp(6, 5, "POST", 401, 500, http_attrs),
                sp(5, 4, f"chat {models[1]}", 400, 520, chat(models[1])),
                sp(4, 0, "execute_tool search", 350, 600, tool),
                sp(1, 0, "step", 1000, 5, {}),
                sp(0, None, rng.choice(tasks), 0, 1100, run),
            ]
        )
    return out


def requests_json(traces: list[list[dict]], batch: int) -> list[dict[str, Any]]:
    spans = [s for t in traces for s in t]
    return [
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_kv("service.name", "bench-svc")]},
                    "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans[i : i + batch]}],
                }
            ]
        }
        for i in range(0, len(spans), batch)
    ]


def to_protobuf(doc: dict[str, Any]) -> bytes:
    doc = json.loads(json.dumps(doc))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()


def _client(port: int, path: str, ctype: str, bodies: list[bytes], start: Any, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start.wait()
    for body in bodies:
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"{path}: HTTP {r.status}")
    out.put(len(bodies))


def run_load(path: str, ctype: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(str(Path(tmp) / "bench.db"))
        try:
            ctx = mp.get_context("fork")
            out: mp.Queue = ctx.Queue()
            start = ctx.Event()
            procs = [
                ctx.Process(
                    target=_client, args=(srv.port, path, ctype, bodies[k::clients], start, out)
                )
                for k in range(clients)
            ]
            for p in procs:
                p.start()
            time.sleep(0.5)
            t0 = time.perf_counter()
            start.set()
            for _ in procs:
                out.get()
            for p in procs:
                p.join()
            elapsed = time.perf_counter() - t0
            stored = httpx.get(srv.url + "/api/health").json()["events"]
        finally:
            srv.stop()
    return {"seconds": round(elapsed, 3), "stored": stored}


def rate(fn: Any, items: list[Any], n: int) -> float:
    t = time.perf_counter()
    for x in items:
        fn(x)
    return round(n / (time.perf_counter() - t))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=512, help="spans per OTLP request")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the three loads this many times in turn and keep each one's best (a busy "
        "machine's noise hits every kind alike)",
    )
    a = ap.parse_args()
    traces = make_traces(a.traces)
    docs = requests_json(traces, a.batch)
    n_spans = sum(len(t) for t in traces)
    json_bodies = [orjson.dumps(d) for d in docs]
    pb_bodies = [to_protobuf(d) for d in docs]
    # The same events for /api/events: what the server maps these requests to.
    mapper = Mapper()
    api_bodies = []
    n_events = 0
    for body in json_bodies:
        evs = mapper.map(decode_json(body)).events
        n_events += len(evs)
        api_bodies.append(
            orjson.dumps({"events": [e.model_dump(mode="json", exclude_none=True) for e in evs]})
        )

    decode = {
        "protobuf_spans_per_second": rate(decode_protobuf, pb_bodies, n_spans),
        "json_spans_per_second": rate(decode_json, json_bodies, n_spans),
        "json_format_spans_per_second": rate(
            lambda b: json_format.Parse(b, ExportTraceServiceRequest(), ignore_unknown_fields=True),
            # json_format wants base64 ids: give it the protobuf's own JSON
            [json_format.MessageToJson(ExportTraceServiceRequest.FromString(b)) for b in pb_bodies],
            n_spans,
        ),
        "map_spans_per_second": rate(
            Mapper().map, [decode_protobuf(b) for b in pb_bodies], n_spans
        ),
    }
    loads = (
        ("otlp_protobuf", "/v1/traces", "application/x-protobuf", pb_bodies),
        ("otlp_json", "/v1/traces", "application/json", json_bodies),
        ("api_events", "/api/events", "application/json", api_bodies),
    )
    results: dict[str, dict[str, Any]] = {}
    for _ in range(a.repeat):
        for name, path, ctype, bodies in loads:
            r = run_load(path, ctype, bodies, a.clients)
            if r["stored"] != n_events:
                raise SystemExit(f"{name}: stored {r['stored']} of {n_events} events")
            if name in results and results[name]["seconds"] <= r["seconds"]:
                continue
            r["spans_per_second"] = round(n_spans / r["seconds"])
            r["events_per_second"] = round(n_events / r["seconds"])
            r["request_bytes_avg"] = round(sum(map(len, bodies)) / len(bodies))
            results[name] = r
    print(
        json.dumps(
            {
                "benchmark": "otlp_ingest",
                "traces": a.traces,
                "spans": n_spans,
                "events": n_events,
                "batch_spans": a.batch,
                "clients": a.clients,
                "repeat": a.repeat,
                "decode": decode,
                "ingest": results,
                "machine": {**machine(), "load": os.getloadavg()[0]},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
