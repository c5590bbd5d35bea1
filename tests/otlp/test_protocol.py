"""POST /v1/traces as the OTLP/HTTP specification describes it, and hostile payloads.

Every bad body gets a 4xx with a google.rpc.Status naming the problem, or a
200 partial success that counts the rejected spans; never a 500.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from build import JSON, PROTOBUF, agent, events, llm, new_span, new_trace, post, request, span
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from scenario import to_protobuf

from tests.conftest import BACKENDS


def status_message(r: Any) -> str:
    if r.headers["content-type"] == PROTOBUF:
        return str(status_pb2.Status.FromString(r.content).message)
    return str(r.json()["message"])


def one_llm() -> tuple[dict[str, Any], str]:
    t = new_trace()
    return request(span(t, new_span(), name="chat gpt-4o", attrs=llm())), t


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_protobuf_gzip_and_retry_stores_once(server: Any) -> None:
    doc, trace = one_llm()
    body = gzip.compress(to_protobuf(doc))
    for _ in range(3):  # a retried export stores nothing twice
        r = post(server.url, body, PROTOBUF, **{"content-encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == PROTOBUF
        assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    evs = events(server.url, trace_id=trace)
    assert len(evs) == 1
    assert evs[0]["model"] == "gpt-4o" and evs[0]["cost_usd"] == pytest.approx(0.0035)
    assert evs[0]["timestamp"] == "2025-10-09T08:53:20+00:00"


def test_json_deflate_and_content_type_parameters(server: Any) -> None:
    doc, trace = one_llm()
    body = zlib.compress(json.dumps(doc).encode())
    r = post(server.url, body, "application/json; charset=utf-8", **{"content-encoding": "deflate"})
    assert r.status_code == 200 and r.json() == {}
    assert len(events(server.url, trace_id=trace)) == 1


def test_empty_request_is_a_success(server: Any) -> None:
    assert post(server.url, b"", PROTOBUF).status_code == 200
    assert post(server.url, {}).json() == {}
    assert post(server.url, {"resourceSpans": []}).status_code == 200


def test_unsupported_content_type_and_encoding(server: Any) -> None:
    r = post(server.url, b"x", "text/plain")
    assert r.status_code == 415 and "text/plain" in status_message(r)
    r = post(server.url, b"x", PROTOBUF, **{"content-encoding": "br"})
    assert r.status_code == 415 and "br" in status_message(r)


def test_undecodable_bodies_get_400(server: Any) -> None:
    doc, _ = one_llm()
    pb = to_protobuf(doc)
    cases = [
        (pb[: len(pb) // 2], PROTOBUF, {}),  # truncated protobuf
        (b"\xff\xff\xff\xff", PROTOBUF, {}),
        (b"{not json", JSON, {}),
        (b"[1, 2]", JSON, {}),
        (json.dumps({"resourceSpans": "x"}).encode(), JSON, {}),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}).encode(), JSON, {}),
        (b"not gzip at all", PROTOBUF, {"content-encoding": "gzip"}),
        (gzip.compress(pb)[:-10], PROTOBUF, {"content-encoding": "gzip"}),  # truncated gzip
    ]
    for body, ctype, headers in cases:
        r = post(server.url, body, ctype, **headers)
        assert r.status_code == 400, (body[:40], r.status_code, r.text)
        assert r.headers["content-type"] == ctype
        assert status_message(r)
    assert events(server.url) == []


def test_body_limits_before_and_after_decompression(server_factory: Any) -> None:
    srv = server_factory(None, "--max-body-bytes", "20000").start()
    doc, _ = one_llm()
    r = post(srv.url, b"\0" * 30_000, PROTOBUF)
    assert r.status_code == 413 and "20000" in status_message(r)
    # A gzip bomb: 100 bytes that inflate to 10 MB are stopped at the limit.
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    r = post(srv.url, bomb, PROTOBUF, **{"content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in status_message(r)
    assert post(srv.url, doc).status_code == 200


def test_ids_of_the_wrong_length_are_rejected_alone(server: Any) -> None:
    t = new_trace()
    good = span(t, new_span(), name="chat", attrs=llm())
    bad = [
        span(t[:30], new_span(), name="short trace", attrs=llm()),
        span(t, new_span()[:14], name="short span", attrs=llm()),
        span(t, new_span(), parent="abcd", name="short parent", attrs=llm()),
        span("0" * 32, new_span(), name="zero trace", attrs=llm()),
        span(t, "zz" * 8, name="not hex", attrs=llm()),
        span(t, new_span(), name="no start", attrs=llm(), startTimeUnixNano="0"),
    ]
    r = post(server.url, request(good, *bad))
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "6"  # int64 as a string, per the JSON mapping
    msg = partial["errorMessage"]
    assert msg.startswith("6 of 7 spans rejected: resourceSpans[0].scopeSpans[0].spans[1]: traceId")
    assert "(and 1 more)" in msg
    assert [e["metadata"]["otel.span_name"] for e in events(server.url)] == ["chat"]

    # The same through protobuf (the JSON-only cases aside): rejected in the response too.
    pb = to_protobuf(request(good, *bad[:4]))
    r = post(server.url, pb, PROTOBUF)
    partial_pb = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial_pb.rejected_spans == 4 and "spanId must be 8 bytes" in partial_pb.error_message


def test_wrong_types_reject_the_span_not_the_request(server: Any) -> None:
    t = new_trace()
    good = span(t, new_span(), name="chat", attrs=llm())
    wrong = [
        {**span(t, new_span(), name="kind"), "kind": "server"},
        {**span(t, new_span(), name="start"), "startTimeUnixNano": "soon"},
        {**span(t, new_span(), name="name"), "name": 12},
        {**span(t, new_span(), name="attrs"), "attributes": {"a": 1}},
        {
            **span(t, new_span(), name="int"),
            "attributes": [{"key": "x", "value": {"intValue": "1e3"}}],
        },
        {**span(t, new_span(), name="status"), "status": {"code": "bad"}},
        {**span(t, new_span(), name="id"), "traceId": 12345},
        "not a span",
    ]
    r = post(server.url, request(good, *wrong))
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == str(len(wrong))
    # Token counts of the wrong type are ignored, and said so, not guessed.
    t2 = new_trace()
    odd = span(t2, new_span(), name="chat", attrs=llm(**{"gen_ai.usage.input_tokens": "many"}))
    assert post(server.url, request(odd)).json() == {}
    (ev,) = events(server.url, trace_id=t2)
    assert ev["input_tokens"] == 0 and ev["metadata"]["otel.ignored_attributes"] == [
        "gen_ai.usage.input_tokens"
    ]
    assert ev["output_tokens"] == 100


def test_ten_thousand_attributes_and_huge_strings(server: Any) -> None:
    t = new_trace()
    many = {f"attr.{i}": "v" * 50 for i in range(10_000)}
    huge = "x" * 2_000_000
    spans = [
        span(t, new_span(), name="many", attrs={**llm(), **many}),
        span(t, new_span(), name=huge, attrs={**llm(model=huge), "prompt": huge}),
        span(t, new_span(), name="deep", attrs={**llm(), "deep": _nested(40)}),
    ]
    body = json.dumps(request(*spans, service=huge)).encode()
    for payload, ctype in ((body, JSON), (to_protobuf(json.loads(body)), PROTOBUF)):
        r = post(server.url, payload, ctype)
        assert r.status_code == 200, r.text
    # Nesting deeper than protobuf allows, in JSON: cut, not a crash.
    deeper = span(t, new_span(), name="deeper", attrs={**llm(), "deep": _nested(150)})
    assert post(server.url, request(deeper)).status_code == 200
    evs = {e["metadata"]["otel.span_id"]: e for e in events(server.url, trace_id=t)}
    assert len(evs) == 4
    for e in evs.values():
        assert len(json.dumps(e["metadata"])) < 20_000
        assert len(e["agent_name"]) <= 256 and len(e["task_name"]) <= 256 and len(e["model"]) <= 256
    m = evs[spans[0]["spanId"]]["metadata"]
    assert m["otel.dropped_attributes"] > 9000 and m["attr.0"] == "v" * 50
    assert len(evs[spans[1]["spanId"]]["metadata"]["prompt"]) <= 1024


def _nested(depth: int) -> Any:
    v: Any = "leaf"
    for _ in range(depth):
        v = [v]
    return v


def test_too_many_spans_in_one_request(server_factory: Any) -> None:
    srv = server_factory(None, "--max-batch-events", "3").start()
    t = new_trace()
    r = post(srv.url, request(*(span(t, new_span(), attrs=llm()) for _ in range(4))))
    assert r.status_code == 413 and "4 spans" in status_message(r)


def test_json_accepts_base64_ids_and_enum_names(server: Any) -> None:
    """Some exporters write protobuf's standard JSON (base64 ids, enum names)."""
    doc, trace = one_llm()
    std = json_format.MessageToDict(
        __import__(
            "opentelemetry.proto.collector.trace.v1.trace_service_pb2", fromlist=["x"]
        ).ExportTraceServiceRequest.FromString(to_protobuf(doc))
    )
    std["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"] = {"code": "STATUS_CODE_ERROR"}
    assert post(server.url, std).json() == {}
    (ev,) = events(server.url, trace_id=trace)
    assert ev["status"] == "error" and ev["metadata"]["otel.span_kind"] == "internal"


def test_error_status_and_exception_event(server: Any) -> None:
    t = new_trace()
    exc = {
        "name": "exception",
        "timeUnixNano": "1760000000005000000",
        "attributes": [
            {"key": "exception.type", "value": {"stringValue": "RateLimitError"}},
            {"key": "exception.message", "value": {"stringValue": "slow down"}},
        ],
    }
    s = span(t, new_span(), name="chat", attrs=llm(), status={"code": 2}, events=[exc])
    run = span(t, new_span(), name="agent", attrs={**agent(), "error.type": "Timeout"})
    post(server.url, request(s, run))
    evs = {e["kind"]: e for e in events(server.url, trace_id=t)}
    assert evs["llm"]["status"] == "error"
    assert evs["llm"]["error_message"] == "RateLimitError: slow down"
    assert evs["task"]["status"] == "error" and evs["task"]["error_message"] == "Timeout"


def test_a_wide_nested_value_is_stored_cut(server: Any) -> None:
    t = new_trace()
    wide = [[["x" * 20] * 64] * 64] * 8  # ~650 KB of JSON in one attribute
    post(server.url, request(span(t, new_span(), name="wide", attrs={**llm(), "wide": wide})))
    (ev,) = events(server.url, trace_id=t)
    stored = ev["metadata"]["wide"]
    assert isinstance(stored, str) and len(stored) <= 1024 and stored.startswith('[[["xxx')
