"""An OTLP/HTTP trace export body -> plain span records.

Protobuf bodies are decoded by the official definitions (the
``opentelemetry-proto`` package, upb underneath). JSON bodies follow the OTLP
JSON mapping (lowerCamelCase keys, hex trace and span ids, 64-bit integers as
decimal strings or numbers, enums as integers) and are read from orjson's
output: protobuf's own ``json_format`` does not speak the OTLP deviations (hex
ids) and decodes several times slower (docs/performance.md).

Both produce the same ``SpanRecord`` list, so the mapping has one input. What
cannot be decoded at all is a ``DecodeError`` (the request gets 400). A span
whose own fields are wrong (an id of the wrong length, a value of the wrong
type) gets its ``problem`` set instead: it alone is rejected, and the export
gets a partial success.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentwatch.otlp.attributes import EXCEPTION_EVENT, FIRST_TOKEN_EVENT, MAPPED

# Bounds on what one span costs to read, whatever its size: past these,
# attributes are not converted (only the mapped names are still looked for),
# arrays keep their first items and nesting is cut. They are far above what
# any instrumentation emits (tens of attributes, shallow values), so only
# hostile or broken payloads meet them.
MAX_ATTRIBUTES = 1024
MAX_ITEMS = 64
MAX_DEPTH = 8
CUT = "…"  # stands in for a value nested deeper than MAX_DEPTH
# Span events read: the exception (status message) and OpenInference's first
# token mark; others are dropped. A span rarely has more than a few.
KEPT_EVENTS = frozenset({EXCEPTION_EVENT, FIRST_TOKEN_EVENT})
MAX_EVENTS = 128

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile(r"-?[0-9]{1,20}").fullmatch
UINT64_MAX = 2**64 - 1


class DecodeError(ValueError):
    """The body is not an ExportTraceServiceRequest in the declared encoding."""


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attrs: dict[str, Any]


@dataclass(slots=True)
class SpanRecord:
    """One span, as the mapping needs it."""

    where: str  # e.g. "resourceSpans[0].scopeSpans[1].spans[4]", for messages
    trace_id: bytes = b""
    span_id: bytes = b""
    parent_span_id: bytes = b""
    name: str = ""
    kind: int = 0
    start_ns: int = 0
    end_ns: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0
    status_message: str = ""
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    dropped_attributes: int = 0
    problem: str | None = None  # set: this span is rejected, with this reason


# -- protobuf ---------------------------------------------------------------------


def decode_protobuf(body: bytes) -> list[SpanRecord]:
    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (_ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError(
            f"body is not a valid ExportTraceServiceRequest protobuf: {exc}"
        ) from None
    out: list[SpanRecord] = []
    append = out.append
    for ri, rs in enumerate(req.resource_spans):
        resource, _ = _pb_attributes(rs.resource.attributes)
        for si, ss in enumerate(rs.scope_spans):
            scope = ss.scope.name
            for i, s in enumerate(ss.spans):
                attrs, dropped = _pb_attributes(s.attributes)
                events: list[SpanEvent] = []
                for ev in s.events:
                    if ev.name in KEPT_EVENTS and len(events) < MAX_EVENTS:
                        events.append(
                            SpanEvent(ev.name, ev.time_unix_nano, _pb_attributes(ev.attributes)[0])
                        )
                append(
                    SpanRecord(
                        f"resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]",
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                        s.name,
                        s.kind,
                        s.start_time_unix_nano,
                        s.end_time_unix_nano,
                        attrs,
                        s.status.code,
                        s.status.message,
                        events,
                        resource,
                        scope,
                        dropped + s.dropped_attributes_count,
                    )
                )
    return out


def _pb_attributes(kvs: Any) -> tuple[dict[str, Any], int]:
    """KeyValue list -> {key: value}, and how many were not converted."""
    out: dict[str, Any] = {}
    dropped = 0
    for n, kv in enumerate(kvs):
        if n >= MAX_ATTRIBUTES and kv.key not in MAPPED:
            dropped += 1
            continue
        out[kv.key] = _pb_value(kv.value, 0)
    return out, dropped


def _pb_value(v: Any, depth: int) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if depth >= MAX_DEPTH:
        return CUT
    if which == "array_value":
        return [_pb_value(x, depth + 1) for x in v.array_value.values[:MAX_ITEMS]]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in v.kvlist_value.values[:MAX_ITEMS]}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None  # pragma: no cover - a value type newer than this code


# -- JSON ---------------------------------------------------------------------------


class _Bad(ValueError):
    """A field of one span is wrong; the message names it."""


def decode_json(body: bytes) -> list[SpanRecord]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise DecodeError("body must be a JSON object (an ExportTraceServiceRequest)")
    out: list[SpanRecord] = []
    for ri, rs in enumerate(_list(doc, "resourceSpans", "resource_spans", where="")):
        rwhere = f"resourceSpans[{ri}]"
        if not isinstance(rs, dict):
            raise DecodeError(f"{rwhere} must be an object")
        res = _get(rs, "resource")
        try:
            resource = _json_attributes(res, rwhere + ".resource")[0] if res is not None else {}
        except _Bad as e:
            raise DecodeError(str(e)) from None
        for si, ss in enumerate(_list(rs, "scopeSpans", "scope_spans", where=rwhere)):
            swhere = f"{rwhere}.scopeSpans[{si}]"
            if not isinstance(ss, dict):
                raise DecodeError(f"{swhere} must be an object")
            sc = _get(ss, "scope")
            scope = sc.get("name") if isinstance(sc, dict) else None
            scope = scope if isinstance(scope, str) else ""
            for i, s in enumerate(_list(ss, "spans", "spans", where=swhere)):
                rec = SpanRecord(f"{swhere}.spans[{i}]", resource=resource, scope=scope)
                try:
                    _json_span(s, rec)
                except _Bad as e:
                    rec.problem = str(e)
                out.append(rec)
    return out


def _get(d: dict[str, Any], camel: str, snake: str | None = None) -> Any:
    # The OTLP JSON mapping uses lowerCamelCase keys; the proto field names are
    # accepted too, as protobuf's own JSON parser does.
    v = d.get(camel)
    if v is None and snake is not None:
        v = d.get(snake)
    return v


def _list(d: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    v = _get(d, camel, snake)
    if v is None:
        return []
    if not isinstance(v, list):
        raise DecodeError(f"{where + '.' if where else ''}{camel} must be an array")
    return v


def _json_span(s: Any, rec: SpanRecord) -> None:
    w = rec.where
    if not isinstance(s, dict):
        raise _Bad(f"{w} must be an object")
    rec.trace_id = _id(_get(s, "traceId", "trace_id"), f"{w}.traceId")
    rec.span_id = _id(_get(s, "spanId", "span_id"), f"{w}.spanId")
    rec.parent_span_id = _id(_get(s, "parentSpanId", "parent_span_id"), f"{w}.parentSpanId")
    name = s.get("name", "")
    if not isinstance(name, str):
        raise _Bad(f"{w}.name must be a string")
    rec.name = name
    rec.kind = _enum(s.get("kind", 0), _SPAN_KINDS, f"{w}.kind")
    rec.start_ns = _int(
        _get(s, "startTimeUnixNano", "start_time_unix_nano"), f"{w}.startTimeUnixNano"
    )
    rec.end_ns = _int(_get(s, "endTimeUnixNano", "end_time_unix_nano"), f"{w}.endTimeUnixNano")
    rec.attrs, rec.dropped_attributes = _json_attributes(s, w)
    dropped = _get(s, "droppedAttributesCount", "dropped_attributes_count")
    rec.dropped_attributes += _int(dropped, f"{w}.droppedAttributesCount", 0, 2**32 - 1)
    status = s.get("status")
    if status is not None:
        if not isinstance(status, dict):
            raise _Bad(f"{w}.status must be an object")
        rec.status_code = _enum(status.get("code", 0), _STATUS_CODES, f"{w}.status.code")
        msg = status.get("message", "")
        if not isinstance(msg, str):
            raise _Bad(f"{w}.status.message must be a string")
        rec.status_message = msg
    events = s.get("events")
    if events is not None:
        if not isinstance(events, list):
            raise _Bad(f"{w}.events must be an array")
        for j, e in enumerate(events):
            ew = f"{w}.events[{j}]"
            if not isinstance(e, dict):
                raise _Bad(f"{ew} must be an object")
            ename = e.get("name")
            if ename in KEPT_EVENTS and len(rec.events) < MAX_EVENTS:
                t = _int(_get(e, "timeUnixNano", "time_unix_nano"), f"{ew}.timeUnixNano")
                rec.events.append(SpanEvent(ename, t, _json_attributes(e, ew)[0]))


def _id(v: Any, where: str) -> bytes:
    """A trace or span id: hex as the OTLP JSON mapping says, or base64 as
    protobuf's standard JSON mapping (which some exporters send) says."""
    if v is None or v == "":
        return b""
    if not isinstance(v, str):
        raise _Bad(f"{where} must be a hex string")
    if len(v) % 2 == 0:
        try:
            return bytes.fromhex(v)
        except ValueError:
            pass
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{where} must be a hex string") from None


# Enums are integers in OTLP JSON; the names, which protobuf's JSON mapping
# also allows and some encoders write, are accepted too.
_SPAN_KINDS = {
    f"SPAN_KIND_{n}": i
    for i, n in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(v: Any, names: dict[str, int], where: str) -> int:
    if type(v) is str and v in names:
        return names[v]
    return _int(v, where, 0, 2**31 - 1)


def _int(v: Any, where: str, lo: int = 0, hi: int = UINT64_MAX) -> int:
    """An integer field: a JSON number or a decimal string (64-bit values)."""
    if v is None:
        return 0
    if type(v) is int:
        n = v
    elif (type(v) is str and _DECIMAL(v)) or (type(v) is float and v.is_integer()):
        n = int(v)
    else:
        raise _Bad(f"{where} must be an integer")
    if not lo <= n <= hi:
        raise _Bad(f"{where} is out of range")
    return n


def _json_attributes(d: dict[str, Any], where: str) -> tuple[dict[str, Any], int]:
    kvs = d.get("attributes")
    if kvs is None:
        return {}, 0
    if not isinstance(kvs, list):
        raise _Bad(f"{where}.attributes must be an array")
    out: dict[str, Any] = {}
    dropped = 0
    for n, kv in enumerate(kvs):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Bad(f"{where}.attributes[{n}] must be an object with a string key")
        key = kv["key"]
        if n >= MAX_ATTRIBUTES and key not in MAPPED:
            dropped += 1
            continue
        out[key] = _json_value(kv.get("value"), 0, f"{where}.attributes[{n}] ({key})")
    return out, dropped


def _json_value(v: Any, depth: int, where: str) -> Any:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _Bad(f"{where}: value must be an AnyValue object")
    if "stringValue" in v:
        s = v["stringValue"]
        if not isinstance(s, str):
            raise _Bad(f"{where}: stringValue must be a string")
        return s
    if "intValue" in v:
        return _int(v["intValue"], f"{where}: intValue", INT64_MIN, INT64_MAX)
    if "doubleValue" in v:
        x = v["doubleValue"]
        if type(x) is int or type(x) is float:
            return float(x)
        if x in ("NaN", "Infinity", "-Infinity"):
            return math.nan  # kept as null in metadata
        raise _Bad(f"{where}: doubleValue must be a number")
    if "boolValue" in v:
        b = v["boolValue"]
        if type(b) is not bool:
            raise _Bad(f"{where}: boolValue must be true or false")
        return b
    if "arrayValue" in v or "kvlistValue" in v:
        if depth >= MAX_DEPTH:
            return CUT
        is_array = "arrayValue" in v
        inner = v["arrayValue" if is_array else "kvlistValue"]
        values = inner.get("values", []) if isinstance(inner, dict) else None
        if not isinstance(values, list):
            raise _Bad(
                f"{where}: {'arrayValue' if is_array else 'kvlistValue'}.values must be an array"
            )
        if is_array:
            return [_json_value(x, depth + 1, where) for x in values[:MAX_ITEMS]]
        out = {}
        for kv in values[:MAX_ITEMS]:
            if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
                raise _Bad(f"{where}: kvlistValue entries must have a string key")
            out[kv["key"]] = _json_value(kv.get("value"), depth + 1, where)
        return out
    if "bytesValue" in v:
        b64 = v["bytesValue"]
        if not isinstance(b64, str):
            raise _Bad(f"{where}: bytesValue must be a base64 string")
        return b64
    return None  # an empty AnyValue, or a value type newer than this code
