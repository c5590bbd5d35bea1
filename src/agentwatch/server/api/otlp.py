"""POST /v1/traces: OTLP/HTTP trace export (protobuf or JSON, optionally gzip).

Answers as the OTLP specification says: 200 with an ExportTraceServiceResponse
(``partial_success`` counts the spans rejected and says why), 400 for a body
that cannot be decoded, 413 over --max-body-bytes (after decompression too),
415 for other content types or encodings, 503 (retryable) when the store
cannot commit. Every answer is in the request's encoding: protobuf for
protobuf, JSON for JSON; error bodies are google.rpc.Status messages.

Mapped events take the same path as POST /api/events: rows built by
validate.to_rows, committed by the group-commit writer; the 200 comes after
the commit. A plain route under the app: whatever protects the other ingest
routes (a dependency, a middleware) protects this one too.
"""

from __future__ import annotations

import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentwatch.otlp.decode import DecodeError, decode_json, decode_protobuf
from agentwatch.otlp.mapping import Mapper
from agentwatch.server.api.common import state
from agentwatch.server.api.events import read_body
from agentwatch.server.auth import OWN_CONTENT_TYPE
from agentwatch.server.ingest import StorageUnavailable
from agentwatch.server.validate import BatchError, to_rows

router = APIRouter(tags=["otlp"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# "application/protobuf" is sent by a few exporters; it is the same encoding.
_MEDIA = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}


class _Fail(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
}


def _status_response(media: str, status: int, message: str) -> Response:
    """A google.rpc.Status body, as the spec asks of every 4xx and 5xx answer."""
    st = status_pb2.Status(code=_CODES.get(status, code_pb2.UNAVAILABLE), message=message)
    headers = {"Retry-After": "1"} if status == 503 else None
    return _encode(st, media, status, headers)


def _encode(
    msg: Any, media: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    if media == PROTOBUF:
        body = msg.SerializeToString()
    else:
        body = json_format.MessageToJson(msg, indent=None).encode()
    return Response(body, status_code=status, media_type=media, headers=headers)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """gzip or deflate, never past `limit` bytes out (a small bomb stays small)."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit:
            raise _Fail(413, f"request body exceeds the limit of {limit} bytes once decompressed")
        if not d.eof:
            raise _Fail(400, f"{encoding} body is truncated")
    except zlib.error as e:
        raise _Fail(400, f"body is not valid {encoding} data: {e}") from None
    return out


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export (OpenTelemetry in)",
    responses={
        200: {"description": "Committed; `partialSuccess` counts the spans rejected and why"},
        400: {"description": "Body cannot be decoded (a google.rpc.Status says why)"},
        413: {"description": "Body over --max-body-bytes, before or after decompression"},
        415: {"description": "Content-Type other than application/x-protobuf or application/json"},
        503: {"description": "Storage unavailable; retry (ingest is idempotent per span)"},
    },
    openapi_extra={
        OWN_CONTENT_TYPE: True,  # 415 as a google.rpc.Status, as OTLP wants
        "requestBody": {
            "required": True,
            "description": "An ExportTraceServiceRequest (opentelemetry-proto), see docs/otlp.md",
            "content": {
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                JSON: {"schema": {"type": "object"}},
            },
        },
    },
)
async def export_traces(request: Request) -> Response:
    """Map LLM, agent/chain and tool spans into events (docs/otlp.md), commit, then answer."""
    st = state(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    media = _MEDIA.get(ctype)
    if media is None:
        return _status_response(
            JSON,
            415,
            f"Content-Type {ctype or '(none)'!r} is not supported; send {PROTOBUF} or {JSON}",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        return _status_response(
            media, 415, f"Content-Encoding {encoding!r} is not supported; send gzip or none"
        )
    limit = st.settings.max_body_bytes
    try:
        try:
            body = await read_body(request, limit)
        except BatchError as e:
            raise _Fail(e.status, e.message) from None
        if encoding in ("gzip", "deflate"):
            body = _decompress(body, encoding, limit)
        try:
            records = decode_protobuf(body) if media == PROTOBUF else decode_json(body)
        except DecodeError as e:
            raise _Fail(400, str(e)) from None
        if len(records) > st.settings.max_batch_events:
            raise _Fail(
                413,
                f"request has {len(records)} spans; the limit is "
                f"{st.settings.max_batch_events} per request (--max-batch-events)",
            )
    except _Fail as f:
        return _status_response(media, f.status, f.message)

    mapper = _mapper(request)
    result = mapper.map(records)
    rows = to_rows(result.events, st.prices)
    if rows:
        try:
            await st.writer.submit(rows)
        except StorageUnavailable as e:
            return _status_response(media, 503, str(e))
    resp = ExportTraceServiceResponse()
    if result.rejected:
        resp.partial_success.rejected_spans = result.rejected
        resp.partial_success.error_message = result.message()
    return _encode(resp, media)


def _mapper(request: Request) -> Mapper:
    """The app's mapper (its span memory lives as long as the app)."""
    mapper: Mapper | None = getattr(request.app.state, "otlp_mapper", None)
    if mapper is None:
        mapper = request.app.state.otlp_mapper = Mapper()
    return mapper
