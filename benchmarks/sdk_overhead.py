"""SDK overhead: what a patched call adds, what log_event costs, memory while the server is down.

Prints one JSON object. Run: ``python benchmarks/sdk_overhead.py [--quick]``.

* patched_call: the real openai/anthropic clients over an httpx2 MockTransport
  that answers from memory, so the call itself is pure client work. Patched and
  unpatched calls are measured in interleaved rounds (instrument/uninstrument
  between rounds) to cancel drift; the figure is the difference of medians.
* log_event: the caller-thread cost of agentwatch.log_event while the sender
  thread drains concurrently (to an exporter that discards, so no network).
* memory_server_down: 1,000,000 log_event calls against a closed port with the
  default queue bound; RSS growth and how many events were dropped.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx2

import agentwatch

CHAT = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
).encode()
CHAT_SSE = (
    "".join(
        "data: "
        + json.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}],
            }
        )
        + "\n\n"
        for t in ("a", "b", "c", "d")
    )
    + "data: "
    + json.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-2024-08-06",
            "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
        }
    )
    + "\n\ndata: [DONE]\n\n"
).encode()
MSG = json.dumps(
    {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }
).encode()


def handler(request: httpx2.Request) -> httpx2.Response:
    path = request.url.path
    if path.endswith("/messages"):
        return httpx2.Response(200, content=MSG, headers={"content-type": "application/json"})
    if b'"stream":true' in request.content:
        return httpx2.Response(200, content=CHAT_SSE, headers={"content-type": "text/event-stream"})
    return httpx2.Response(200, content=CHAT, headers={"content-type": "application/json"})


def per_call_ns(fn: Callable[[], Any], n: int) -> list[int]:
    out = []
    pc = time.perf_counter_ns
    for _ in range(n):
        t = pc()
        fn()
        out.append(pc() - t)
    return out


def patched_overhead(rounds: int, per_round: int) -> dict[str, Any]:
    import anthropic
    import openai

    oc = openai.OpenAI(
        api_key="k",
        base_url="http://f/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    ac = anthropic.Anthropic(
        api_key="k",
        base_url="http://f",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    msgs: Any = [{"role": "user", "content": "hi"}]
    cases: dict[str, Callable[[], Any]] = {
        "openai_chat_create": lambda: oc.chat.completions.create(model="gpt-4o", messages=msgs),
        "openai_chat_stream": lambda: list(
            oc.chat.completions.create(
                model="gpt-4o",
                messages=msgs,
                stream=True,
                stream_options={"include_usage": True},  # same request patched or not
            )
        ),
        "anthropic_messages_create": lambda: ac.messages.create(
            model="claude-sonnet-4-0", max_tokens=5, messages=msgs
        ),
    }
    client = agentwatch.init(server_url="http://127.0.0.1:9", exporter=lambda batch: None)
    result: dict[str, Any] = {}
    for name, fn in cases.items():
        for _ in range(50):  # warm caches, pydantic validators, lazy imports
            fn()
        plain: list[int] = []
        patched: list[int] = []
        for _ in range(rounds):
            agentwatch.uninstrument()
            plain += per_call_ns(fn, per_round)
            agentwatch.instrument(client)
            patched += per_call_ns(fn, per_round)
        mp, mu = statistics.median(patched), statistics.median(plain)
        result[name] = {
            "calls_each": len(plain),
            "unpatched_median_us": round(mu / 1000, 2),
            "patched_median_us": round(mp / 1000, 2),
            "overhead_us": round((mp - mu) / 1000, 2),
        }
    client.flush(10)
    result["events_sent"] = client.stats()["sent"]
    agentwatch.shutdown()
    return result


def wrapper_only(n: int) -> dict[str, Any]:
    """The patch wrapper around a stub that returns a ready response object.

    Isolates exactly what the SDK adds per call (context lookup, timing, usage
    extraction, event dict, enqueue) from the HTTP client's own variance.
    """
    from anthropic.types import Message
    from openai.types.chat import ChatCompletion

    from agentwatch.integrations import anthropic as aw_anthropic
    from agentwatch.integrations import openai as aw_openai
    from agentwatch.integrations._wrap import Endpoint, wrap_call

    completion = ChatCompletion.model_validate_json(CHAT)
    message = Message.model_validate_json(MSG)

    class Resource:
        _client = None

    res = Resource()
    client = agentwatch.init(
        server_url="http://127.0.0.1:9", exporter=lambda batch: None, max_queue=10**7
    )
    out: dict[str, Any] = {}
    stubs: dict[str, tuple[Callable[..., Any], Endpoint]] = {
        "openai_chat_create": (lambda self, **kw: completion, aw_openai.endpoint("chat", ())),
        "anthropic_messages_create": (lambda self, **kw: message, aw_anthropic.CREATE),
    }
    for name, (stub, endpoint) in stubs.items():
        wrapped = wrap_call(stub, endpoint, is_async=False)
        kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": []}
        plain = [statistics.median(per_call_ns(functools.partial(stub, res, **kwargs), 1000))]
        patched = [statistics.median(per_call_ns(functools.partial(wrapped, res, **kwargs), 1000))]
        for _ in range(n - 1):
            plain.append(
                statistics.median(per_call_ns(functools.partial(stub, res, **kwargs), 1000))
            )
            patched.append(
                statistics.median(per_call_ns(functools.partial(wrapped, res, **kwargs), 1000))
            )
        out[name] = {
            "calls_each": n * 1000,
            "stub_median_us": round(statistics.median(plain) / 1000, 3),
            "wrapped_median_us": round(statistics.median(patched) / 1000, 3),
            "overhead_us": round((statistics.median(patched) - statistics.median(plain)) / 1000, 3),
        }
    client.flush(30)
    agentwatch.shutdown()
    return out


def log_event_cost(n: int) -> dict[str, Any]:
    client = agentwatch.init(
        server_url="http://127.0.0.1:9",
        exporter=lambda batch: None,
        max_queue=n + 10,
        auto_patch=False,
    )
    log = agentwatch.log_event
    meta = {"step": 1}
    gc.collect()
    samples: list[float] = []
    cpu: list[float] = []
    chunk = 1000
    pc = time.perf_counter_ns
    tt = time.thread_time_ns  # this thread's CPU only: not inflated when other work runs
    for _ in range(n // chunk):
        t, c = pc(), tt()
        for _ in range(chunk):
            log(task_name="t", model="gpt-4o", input_tokens=10, output_tokens=2, metadata=meta)
        cpu.append((tt() - c) / chunk)
        samples.append((pc() - t) / chunk)
    client.flush(60)
    sent = client.stats()["sent"]
    agentwatch.shutdown()

    # Drop path: the queue is full (server down), every call is a counted drop.
    client = agentwatch.init(server_url="http://127.0.0.1:9", max_queue=1, auto_patch=False)
    log(model="m")
    log(model="m")
    t = pc()
    for _ in range(n // 10):
        log(task_name="t", model="gpt-4o", input_tokens=10, output_tokens=2)
    drop_ns = (pc() - t) / (n // 10)
    agentwatch.shutdown(timeout=0.5)
    return {
        "calls": n,
        "median_us": round(statistics.median(samples) / 1000, 3),
        "best_chunk_us": round(min(samples) / 1000, 3),
        "p95_us": round(sorted(samples)[int(len(samples) * 0.95)] / 1000, 3),
        "cpu_median_us": round(statistics.median(cpu) / 1000, 3),
        "cpu_best_chunk_us": round(min(cpu) / 1000, 3),
        "events_sent_by_thread": sent,
        "queue_full_drop_us": round(drop_ns / 1000, 3),
    }


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_server_down(n: int) -> dict[str, Any]:
    gc.collect()
    client = agentwatch.init(server_url="http://127.0.0.1:9", auto_patch=False)
    before = rss_kib()
    peak = before
    for i in range(n):
        agentwatch.log_event(task_name="t", model="gpt-4o", input_tokens=i, metadata={"i": i})
        if i % 100_000 == 0:
            peak = max(peak, rss_kib())
    peak = max(peak, rss_kib())
    st = client.stats()
    agentwatch.shutdown(timeout=0.5)
    return {
        "events_logged": n,
        "max_queue": client._sender.max_queue,
        "queued_at_end": st["queued"],
        "dropped_queue_full": st["dropped_queue_full"],
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - before) / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = ap.parse_args()
    q = args.quick
    out = {
        "benchmark": "sdk_overhead",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "patched_call": patched_overhead(rounds=4 if q else 20, per_round=100 if q else 250),
        "patch_wrapper_only": wrapper_only(5 if q else 50),
        "log_event": log_event_cost(20_000 if q else 200_000),
        "memory_server_down": memory_server_down(100_000 if q else 1_000_000),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)  # keep the expected "server down" warnings out
    main()
